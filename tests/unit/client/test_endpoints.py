"""A member's endpoint: one address or a list, validated where members files and registry
documents are parsed, written back in the same shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from node.core.errors import ConfigError, InvalidInput
from node.core.members import MAX_ENDPOINTS, Member, parse_address, parse_endpoint
from node.federation.members_file import member_to_json, parse_members
from node.federation.registry import RegistryError, parse_registry, parse_signed
from node.federation.registry_edit import SetEndpoint, diff, draft_next
from tests.unit.federation._support import NOW, World, doc_bytes

KEY = "A" * 43 + "="  # 32 zero-ish bytes, base64


@pytest.mark.parametrize("address", [
    "127.0.0.1:50051", "kaz-bs.example.gov:50051", "localhost:1", "[::1]:50051",
    "[2001:db8::7]:443", "dns:///kaz-bs.example.gov:50051", "dns:///[::1]:50051",
    "dns:///10.0.0.7:50051", "127.0.0.1:0", "KAZ-BS.Example.GOV:65535",
])
def test_addresses_grpc_takes(address: str) -> None:
    assert parse_address(address) == address


@pytest.mark.parametrize(("value", "problem"), [
    ("", "endpoint: is empty"),
    ("kaz-bs.example.gov", "endpoint: needs a port: host:port"),
    ("kaz-bs.example.gov:", "endpoint: port '' must be a number 0..65535"),
    ("kaz-bs.example.gov:65536", "endpoint: port '65536' must be a number 0..65535"),
    ("kaz-bs.example.gov:+80", "endpoint: port '+80' must be a number 0..65535"),
    ("::1:50051", "endpoint: an IPv6 address must be in brackets: [::1]:50051"),
    ("[::1]", "endpoint: a bracketed IPv6 address needs a port: [::1]:50051"),
    ("[::g]:1", "endpoint: [::g] is not an IPv6 address"),
    ("256.1.1.1:1", "endpoint: 256.1.1.1 is not an IPv4 address"),
    (":50051", "endpoint: needs a host before the port"),
    ("kaz_bs.example.gov:1", "endpoint: 'kaz_bs.example.gov' is not a host name (letters, "
     "digits, hyphens, dot-separated labels of 1-63 characters)"),
    ("-kaz.example:1", "endpoint: '-kaz.example' is not a host name (letters, digits, "
     "hyphens, dot-separated labels of 1-63 characters)"),
    ("a:1,b:2", "endpoint: 'a:1,b:2' holds a space or comma (list several addresses as a "
     "JSON list)"),
    (" a:1", "endpoint: ' a:1' holds a space or comma (list several addresses as a JSON list)"),
    ("unix:/run/bxnode.sock", "endpoint: 'unix:/run/bxnode.sock': only host:port, "
     "[IPv6]:port and dns:///host:port are accepted"),
    ("ipv4:127.0.0.1:1", "endpoint: 'ipv4:127.0.0.1:1': only host:port, [IPv6]:port and "
     "dns:///host:port are accepted"),
    ("dns://8.8.8.8/kaz.example:1", "endpoint: 'dns://8.8.8.8/kaz.example:1': only host:port, "
     "[IPv6]:port and dns:///host:port are accepted"),
    ("https://kaz.example:443", "endpoint: 'https://kaz.example:443': only host:port, "
     "[IPv6]:port and dns:///host:port are accepted"),
    ("k." * 127 + "e:1", "endpoint: is longer than 256 characters"),
    (7, "endpoint: must be an address or a list of addresses"),
    ([], "endpoint: is an empty list (give at least one address)"),
    ([f"10.0.0.{i}:1" for i in range(MAX_ENDPOINTS + 1)], "endpoint: lists 9 addresses; at "
     "most 8"),
    (["a.example:1", "b.example:1", "A.example:1"], "endpoint[2]: 'A.example:1' repeats "
     "endpoint[0]"),
    (["a.example:1", "dns:///a.example:1"], "endpoint[1]: 'dns:///a.example:1' repeats "
     "endpoint[0]"),
    (["a.example:1", "b.example"], "endpoint[1]: needs a port: host:port"),
    (["a.example:1", None], "endpoint[1]: must be a string"),
])
def test_bad_endpoints_are_named_precisely(value: object, problem: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_endpoint(value)
    assert (err.value.reason, str(err.value)) == ("bad_endpoint", problem)


def test_host_names_are_bounded_at_253_characters() -> None:
    at_limit = "k." * 126 + "e"  # 253 characters
    assert parse_address(at_limit + ":1") == at_limit + ":1"
    with pytest.raises(InvalidInput) as err:
        parse_address(at_limit + "e:1")
    assert str(err.value).startswith(f"endpoint: '{at_limit}e' is not a host name")
    with pytest.raises(InvalidInput):
        parse_address("k" * 64 + ".example:1")  # a label of 64
    assert parse_address("k" * 63 + ".example:1") == "k" * 63 + ".example:1"


def test_one_address_or_up_to_eight_in_order() -> None:
    assert parse_endpoint("a.example:1") == ("a.example:1",)
    many = [f"10.0.0.{i}:50051" for i in range(MAX_ENDPOINTS)]
    assert parse_endpoint(many) == tuple(many)
    assert parse_endpoint("", allow_none=True) == ()
    assert Member(node_id="KAZ-BS", country="KAZ", agency="", endpoint="a.example:1",
                  roles=("node",), keys=(), tls_cert_sha256=()).endpoint == ("a.example:1",)


# --- the members file -------------------------------------------------------------------------


def members_file(endpoint: Any, roles: list[str] | None = None) -> bytes:
    entry = {"node_id": "KGZ-BS", "country": "KGZ", "agency": "Border Service",
             "endpoint": endpoint, "roles": roles or ["node"],
             "signing_keys": [{"public_key": KEY}], "tls_cert_sha256": ["ab" * 32]}
    return json.dumps({"version": 1, "members": [entry]}).encode()


@pytest.mark.parametrize(("endpoint", "problem"), [
    ([], "KGZ-BS endpoint: is an empty list (give at least one address)"),
    ([f"10.0.0.{i}:1" for i in range(9)], "KGZ-BS endpoint: lists 9 addresses; at most 8"),
    (["10.0.0.1:1", "kgz-bs.example:50051:7"],
     "KGZ-BS endpoint[1]: an IPv6 address must be in brackets: [::1]:50051"),
    (["10.0.0.1:1", "10.0.0.1:1"], "KGZ-BS endpoint[1]: '10.0.0.1:1' repeats KGZ-BS endpoint[0]"),
    ("", "KGZ-BS endpoint: is empty"),  # a node must be reachable
    ({"primary": "10.0.0.1:1"}, "KGZ-BS endpoint: must be an address or a list of addresses"),
])
def test_members_file_names_the_bad_endpoint(endpoint: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_members(members_file(endpoint))
    assert (err.value.reason, str(err.value)) == ("bad_endpoint", f"members file: {problem}")


def test_members_file_reads_and_writes_both_shapes() -> None:
    one = parse_members(members_file("kgz-bs.example:50051")).member("KGZ-BS")
    two = parse_members(members_file(["[::1]:50051", "dns:///kgz-b.example:50051"])
                        ).member("KGZ-BS")
    assert one.endpoint == ("kgz-bs.example:50051",)
    assert two.endpoint == ("[::1]:50051", "dns:///kgz-b.example:50051")
    assert member_to_json(one)["endpoint"] == "kgz-bs.example:50051"  # unchanged shape
    assert member_to_json(two)["endpoint"] == ["[::1]:50051", "dns:///kgz-b.example:50051"]


def test_an_auditor_that_takes_no_calls_has_no_address() -> None:
    auditor = parse_members(members_file("", roles=["auditor"])).member("KGZ-BS")
    assert auditor.endpoint == ()
    assert member_to_json(auditor)["endpoint"] == ""


# --- the signed registry ----------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "problem"), [
    ([], "KAZ-BS endpoint: is an empty list (give at least one address)"),
    ([f"10.0.0.{i}:1" for i in range(9)], "KAZ-BS endpoint: lists 9 addresses; at most 8"),
    (["10.0.0.1:1", "kaz.example:99999"], "KAZ-BS endpoint[1]: port '99999' must be a number "
     "0..65535"),
    (["kaz.example:1", "KAZ.example:1"], "KAZ-BS endpoint[1]: 'KAZ.example:1' repeats "
     "KAZ-BS endpoint[0]"),
    ("", "KAZ-BS endpoint: is empty"),
    (["kaz.example:1", 443], "KAZ-BS endpoint[1]: must be a string"),
])
def test_registry_names_the_bad_endpoint(endpoint: Any, problem: str) -> None:
    w = World()
    signed = w.signed()
    signed["members"][0]["endpoint"] = endpoint
    with pytest.raises(RegistryError) as err:
        parse_signed(signed)
    assert (err.value.reason, str(err.value)) == ("bad_endpoint", problem)


def test_a_signed_registry_lists_several_addresses() -> None:
    w = World()
    signed = w.signed()
    signed["members"][1]["endpoint"] = ["10.1.0.5:50051", "dns:///kgz-b.example:50051"]
    reg = w.sign(signed, "KAZ", "KGZ", "UZB")
    again = parse_registry(doc_bytes(reg.document()))
    kgz = again.node("KGZ-BS")
    assert kgz is not None and kgz.endpoint == ("10.1.0.5:50051", "dns:///kgz-b.example:50051")
    kaz = again.node("KAZ-BS")
    assert kaz is not None and kaz.endpoint == ("127.0.0.1:50051",)


def test_propose_lists_one_address_per_endpoint_change_in_order() -> None:
    w = World()
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    v2 = draft_next(v1, [SetEndpoint("KGZ-BS", "10.1.0.5:50051"),
                         SetEndpoint("KGZ-BS", "10.1.0.6:50051")], now_ms=NOW)
    assert v2.node("KGZ-BS").endpoint == ("10.1.0.5:50051", "10.1.0.6:50051")  # type: ignore[union-attr]
    assert v2.signed["members"][1]["endpoint"] == ["10.1.0.5:50051", "10.1.0.6:50051"]
    assert "~ KGZ-BS endpoint: 127.0.0.1:50052 -> 10.1.0.5:50051, 10.1.0.6:50051" in diff(v1, v2)
    v3 = draft_next(v2, [SetEndpoint("KGZ-BS", "kgz.example:443")], now_ms=NOW)
    assert v3.signed["members"][1]["endpoint"] == "kgz.example:443"  # one: a plain string again
    with pytest.raises(RegistryError) as err:
        draft_next(v1, [SetEndpoint("KGZ-BS", "10.1.0.5:50051"),
                        SetEndpoint("KGZ-BS", "10.1.0.5:50051")], now_ms=NOW)
    assert (err.value.reason, str(err.value)) == (
        "bad_endpoint", "KGZ-BS endpoint[1]: '10.1.0.5:50051' repeats KGZ-BS endpoint[0]")
