"""A node entry's optional ``log_origin`` (a log reset recorded by governance).

Additive: a registry without it stays valid (epoch 1); with it, the field is part of
``signed``, so JCS covers it (a signature over the document without it does not verify with
it); it names an epoch of this node's log; ``registry propose --log-origin`` drafts it; an
update may not move it back (``log_origin_rollback``); the directory hands the epoch to the
witness.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from node.federation.registry import (
    RegistryError,
    canonical,
    parse_registry,
    signature_report,
    verify_update,
)
from node.federation.registry_directory import RegistryDirectory
from node.federation.registry_edit import SetLogOrigin, diff, draft_next
from tests.unit.federation._support import NOW, World, doc_bytes

ORIGIN2 = "bxnode/KAZ-BS/log-2"


@pytest.fixture
def w() -> World:
    return World()


def test_an_old_registry_without_the_field_stays_valid(w: World) -> None:
    reg = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    again = parse_registry(reg.to_bytes())
    assert again.digest == reg.digest
    assert all(m.log_origin is None and m.log_epoch == 1 for m in again.members)
    assert "log_origin" not in again.to_bytes().decode()


def test_the_field_is_signed_and_canonicalised(w: World) -> None:
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    signed = w.signed(version=2)
    signed["members"][0]["log_origin"] = ORIGIN2
    v2 = w.sign(signed, "KAZ", "KGZ", "UZB")
    assert b'"log_origin":"bxnode/KAZ-BS/log-2"' in v2.canonical_signed
    assert v2.canonical_signed == canonical(v2.signed)
    parsed = parse_registry(v2.to_bytes())
    node = parsed.node("KAZ-BS")
    assert node is not None and (node.log_origin, node.log_epoch) == (ORIGIN2, 2)
    verify_update(v1, parsed, now_ms=NOW)
    # the signatures cover it: the same signatures over another origin do not verify
    doc = json.loads(v2.to_bytes())
    doc["signed"]["members"][0]["log_origin"] = "bxnode/KAZ-BS/log-3"
    forged = parse_registry(doc_bytes(doc))
    report = signature_report(forged, v1)
    assert report.valid_keys == frozenset() and len(report.invalid) == 3


@pytest.mark.parametrize("origin", ["bxnode/KGZ-BS/log-2", "bxnode/KAZ-BS/log-1",
                                    "bxnode/KAZ-BS/log-02", "KAZ-BS", "", 7, None,
                                    "bxnode/KAZ-BS/log-2/log-3", "bxnode/KAZ-BS/log-" + "9" * 7])
def test_a_log_origin_must_name_an_epoch_of_this_node(w: World, origin: object) -> None:
    signed = w.signed()
    signed["members"][0]["log_origin"] = origin
    doc = {"signed": signed, "signatures": []}
    with pytest.raises(RegistryError) as exc:
        parse_registry(doc_bytes(doc))
    assert exc.value.reason == "malformed"


def test_propose_records_the_origin_and_show_names_it(w: World) -> None:
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    draft = draft_next(v1, [SetLogOrigin("KAZ-BS", ORIGIN2)], now_ms=NOW)
    assert draft.version == 2 and not draft.signatures
    assert draft.node("KAZ-BS").log_epoch == 2  # type: ignore[union-attr]
    assert diff(v1, draft) == ["~ version 1 -> 2",
                               f"~ KAZ-BS log_origin: bxnode/KAZ-BS -> {ORIGIN2}"]
    with pytest.raises(RegistryError) as exc:
        draft_next(v1, [SetLogOrigin("TJK-BS", ORIGIN2)], now_ms=NOW)
    assert exc.value.reason == "not_in_registry"
    with pytest.raises(RegistryError) as exc:
        draft_next(v1, [SetLogOrigin("KAZ-BS", "bxnode/KGZ-BS/log-2")], now_ms=NOW)
    assert exc.value.reason == "malformed"


def test_an_origin_never_moves_back(w: World) -> None:
    signed = w.signed(version=2)
    signed["members"][0]["log_origin"] = ORIGIN2
    v2 = w.sign(signed, "KAZ", "KGZ", "UZB")
    with pytest.raises(RegistryError) as exc:  # drafting it
        draft_next(v2, [SetLogOrigin("KAZ-BS", "bxnode/KAZ-BS")], now_ms=NOW)
    assert exc.value.reason == "log_origin_rollback"
    back = copy.deepcopy(w.signed(version=3))  # and a signed version doing it anyway
    with pytest.raises(RegistryError) as exc:
        verify_update(v2, w.sign(back, "KAZ", "KGZ", "UZB"), now_ms=NOW)
    assert exc.value.reason == "log_origin_rollback"


def test_the_directory_hands_the_epoch_to_the_witness(w: World) -> None:
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    directory = RegistryDirectory(registry=v1, clock_ms=lambda: NOW)
    assert directory.member("KAZ-BS").log_epoch == 1
    directory.swap(draft_next(v1, [SetLogOrigin("KAZ-BS", ORIGIN2)], now_ms=NOW))
    assert directory.member("KAZ-BS").log_epoch == 2
    assert directory.member("KGZ-BS").log_epoch == 1


def test_a_members_file_may_list_the_origin_too(tmp_path: Path) -> None:
    from node.core.errors import ConfigError
    from node.federation.members_file import member_to_json, parse_members

    doc = json.loads((Path(__file__).parents[3] / "keys/dev/members.json").read_text())
    doc["members"][0]["log_origin"] = f"bxnode/{doc['members'][0]['node_id']}/log-3"
    m = parse_members(json.dumps(doc).encode()).members()[0]
    assert m.log_epoch == 3 and member_to_json(m)["log_origin"].endswith("/log-3")
    doc["members"][0]["log_origin"] = "bxnode/SOMEONE-ELSE/log-3"
    with pytest.raises(ConfigError) as exc:
        parse_members(json.dumps(doc).encode())
    assert exc.value.reason == "bad_members_file"
