"""One harness per fuzz target: ``check(data: bytes) -> None``.

Each feeds the bytes to one decoder or parser that a peer or an operator file can reach,
exactly as the node does, and lets only the errors that parser documents come out: any
other exception (IndexError, UnicodeDecodeError, KeyError, RecursionError, ...) is a bug
and propagates, as does a documented error of the wrong class (:class:`Undocumented`).
Where there is a serialiser, a value that parsed is serialised and parsed again and must
come back equal (parse ∘ serialise is stable; for the strict text formats the bytes are
reproduced exactly).

The same functions run under atheris (``make fuzz``), under the mutation loop that
replaces it where atheris is missing, and under pytest (``test_corpus.py``).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from google.protobuf.message import DecodeError

from node.audit.bundle import BundleError, verify_bundle
from node.audit.checkpoint import (
    Checkpoint,
    Cosignature,
    MalformedCheckpoint,
    open_checkpoint,
)
from node.audit.checkpoint_witness import (
    AddCheckpointRequest,
    BadWitnessRequest,
    Witness,
    WitnessedCheckpoint,
    WitnessError,
)
from node.audit.note import (
    BadVerifierKey,
    MalformedNote,
    NoteVerificationError,
    VerifierKey,
    parse_note,
    parse_signature_lines,
    verify_note,
)
from node.core import envelope as env_mod
from node.core.errors import ConfigError, InvalidInput, Unauthenticated
from node.core.model import Refusal
from node.crossings.importer import parse_crossings_file
from node.federation import registry as reg_mod
from node.federation.members_file import member_to_json, parse_members
from node.matching.mrz import parse_mrz, read_mrz_fields
from node.watchlist.importer import parse_file
from node.wire import audit as wire_audit
from node.wire import convert
from node.wire import crossings as wire_x
from node.wire import registry as wire_reg
from node.wire.convert import pb
from tests.fuzz import keys

__all__ = ["TARGETS", "Undocumented", "check"]

Check = Callable[[bytes], None]


class Undocumented(AssertionError):
    """A parser raised an error it does not document (a bug to fix in the parser)."""


@contextlib.contextmanager
def documented(*allowed: type[BaseException]) -> Iterator[None]:
    """Let ``allowed`` errors end the case quietly; anything else is a failure.

    Exceptions outside the project's hierarchy propagate unchanged (with their traceback);
    a project error of another class becomes :class:`Undocumented`.
    """
    try:
        yield
    except allowed:
        pass
    except (ConfigError, InvalidInput, Unauthenticated) as exc:
        raise Undocumented(f"{type(exc).__name__}({exc.reason}): {exc}") from exc


_TMP = Path(tempfile.mkdtemp(prefix="bxnode-fuzz-"))
atexit.register(shutil.rmtree, _TMP, True)  # the scratch folder goes with the process


def _file(name: str, data: bytes) -> Path:
    """Write ``data`` to a scratch file (one directory per process, overwritten each case)."""
    path = _TMP / name
    path.write_bytes(data)
    return path


def _text(data: bytes) -> str:
    """Bytes as the text an operator or a config hands over (invalid UTF-8 replaced)."""
    return data.decode("utf-8", errors="replace")


# --- envelopes and payloads (node/core/envelope.py, node/wire/) -----------------------------

_MAX_ITEMS = 500


def check_envelope(data: bytes) -> None:
    """A LookupRequest as the server receives it: outer message, envelope, signature."""
    with documented(DecodeError, InvalidInput, Unauthenticated):
        msg = pb.LookupRequest.FromString(data)  # DecodeError: the server's malformed_request
        if not msg.HasField("envelope"):
            return
        env = convert.envelope_from_pb(msg.envelope)
        again = convert.envelope_from_pb(pb.SignedEnvelope.FromString(
            convert.envelope_to_pb(env).SerializeToString()))
        assert again == env and env_mod.digest(again) == env_mod.digest(env)
        env_mod.verify(env, keys.public_key("kgz"), expected_type=env_mod.REQUEST_TYPE)
        req = convert.decode_request(env.payload, max_items=_MAX_ITEMS)
        assert req.header.requester  # a verified, parsed request is complete


def check_lookup_request(data: bytes) -> None:
    with documented(InvalidInput):
        header = convert.decode_request_header(data)
        assert convert.header_from_pb(convert.header_to_pb(header)) == header
    with documented(InvalidInput):
        req = convert.decode_request(data, max_items=_MAX_ITEMS)
        assert convert.decode_request(convert.encode_request(req), max_items=_MAX_ITEMS) == req


def check_lookup_response(data: bytes) -> None:
    with documented(InvalidInput):
        convert.decode_response_head(data)
    with documented(InvalidInput):
        resp = convert.decode_response(data)
        encoded = (convert.encode_refusal(resp) if isinstance(resp, Refusal)
                   else convert.encode_answer(resp))
        assert convert.decode_response(encoded) == resp


def check_crossing_request(data: bytes) -> None:
    with documented(InvalidInput):
        req = wire_x.decode_crossing_request(data, max_questions=100)
        again = wire_x.decode_crossing_request(wire_x.encode_crossing_request(req),
                                               max_questions=100)
        assert again == req


def check_crossing_response(data: bytes) -> None:
    with documented(InvalidInput):
        resp = wire_x.decode_crossing_response(data)
        assert wire_x.decode_crossing_response(wire_x.encode_crossing_response(resp)) == resp


def check_followup_file(data: bytes) -> None:
    with documented(InvalidInput):
        f = wire_x.decode_followup_file(data)
        assert wire_x.decode_followup_file(wire_x.encode_followup_file(f)) == f


def check_followup_get(data: bytes) -> None:
    with documented(InvalidInput):
        g = wire_x.decode_followup_get(data)
        assert wire_x.decode_followup_get(wire_x.encode_followup_get(g)) == g


def check_followup_decision(data: bytes) -> None:
    with documented(InvalidInput):
        d = wire_x.decode_followup_decision(data)
        assert wire_x.decode_followup_decision(wire_x.encode_followup_decision(d)) == d


def check_followup_status(data: bytes) -> None:
    with documented(InvalidInput):
        s = wire_x.decode_followup_status(data)
        assert wire_x.decode_followup_status(wire_x.encode_followup_status(s)) == s


def check_proof_rpc(data: bytes) -> None:
    """AuditService.GetInclusionProof payloads (request, and the answer a requester reads)."""
    with documented(InvalidInput):
        r = wire_audit.decode_proof_request(data)
        assert wire_audit.decode_proof_request(wire_audit.encode_proof_request(r)) == r
    with documented(Unauthenticated):  # a peer's answer that does not parse: bad_response
        wire_audit.decode_proof_answer(data)


def check_registry_rpc(data: bytes) -> None:
    """RegistryService.GetRegistry request and response messages."""
    with documented(InvalidInput):
        version = wire_reg.decode_get_request(data)
        assert wire_reg.decode_get_request(wire_reg.encode_get_request(version)) == version
    with documented(Unauthenticated):  # a peer's answer that does not parse: bad_response
        doc = wire_reg.decode_get_response(data)
        assert wire_reg.decode_get_response(wire_reg.encode_get_response(doc, 1)) == doc


# --- the federation registry and the members file --------------------------------------------


def check_registry_json(data: bytes) -> None:
    """A registry document from a peer or a file: parse, RFC 8785, the TUF update rules."""
    with documented(reg_mod.RegistryError):
        reg = reg_mod.parse_registry(data)
        assert reg_mod.canonical(reg.signed) == reg.canonical_signed
        again = reg_mod.parse_registry(reg.to_bytes())
        assert again == reg and again.digest == reg.digest
        trusted = keys.dev_registry()
        reg_mod.signature_report(reg, trusted, reg)
        if reg.version == trusted.version + 1:
            reg_mod.verify_update(trusted, reg, now_ms=keys.NOW_MS)
        else:
            reg_mod.verify_self_signed(reg)


def check_members_file(data: bytes) -> None:
    with documented(ConfigError):
        directory = parse_members(data)
        again = parse_members(json.dumps({"version": 1, "members": [
            member_to_json(m) for m in directory.members()]}).encode())
        assert again.members() == directory.members()


# --- signed notes, checkpoints, cosignatures, witnessing, proof bundles --------------------


def check_signed_note(data: bytes) -> None:
    with documented(MalformedNote):
        note = parse_note(data)
        assert note.to_bytes() == data  # strict: one encoding per note
        assert parse_note(note.to_bytes()) == note
    with documented(MalformedNote, NoteVerificationError):
        verify_note(data, verifiers=[keys.log_verifier()], required=())
    with documented(MalformedNote):
        for sig in parse_signature_lines(data):
            assert parse_signature_lines(sig.line().encode()) == (sig,)


def check_vkey(data: bytes) -> None:
    """A verifier key as an operator configures it (``<name>+<hex id>+<base64>``)."""
    with documented(BadVerifierKey):
        key = VerifierKey.parse(_text(data))
        assert VerifierKey.parse(key.encode()) == key


def check_checkpoint(data: bytes) -> None:
    """A signed checkpoint from a peer's log (and the cosignature lines on it)."""
    with documented(MalformedNote, MalformedCheckpoint):
        note = parse_note(data)
        cp = Checkpoint.parse(note.text)
        assert cp.body() == note.text and Checkpoint.parse(cp.body()) == cp
        for sig in note.signatures:
            with documented(MalformedCheckpoint):
                cosig = Cosignature.from_note_signature(sig)
                assert cosig.note_signature() == sig
    with documented(MalformedNote, MalformedCheckpoint, NoteVerificationError):
        open_checkpoint(data, log_verifiers=[keys.log_verifier()], origin="bxnode/KAZ-BS",
                        required_cosigners=())
    with documented(MalformedNote, MalformedCheckpoint, NoteVerificationError):
        open_checkpoint(data, log_verifiers=[keys.log_verifier()],
                        required_cosigners=[keys.cosigner_verifier()])


@functools.cache
def _witness() -> tuple[Witness, WitnessedCheckpoint]:
    state = keys.witness_state()
    stored = WitnessedCheckpoint(origin=state["origin"], size=int(state["size"]),
                                 root_hash=base64.b64decode(state["root"]),
                                 note=base64.b64decode(state["note"]))
    witness = Witness(cosigner=keys.cosigner(), logs={state["origin"]: [keys.log_verifier()]})
    return witness, stored


def check_add_checkpoint(data: bytes) -> None:
    """A tlog-witness add-checkpoint body, through the whole witness state machine."""
    with documented(BadWitnessRequest):
        req = AddCheckpointRequest.parse(data)
        assert req.to_bytes() == data
        assert AddCheckpointRequest.parse(req.to_bytes()) == req
        witness, stored = _witness()
        with documented(WitnessError):
            req.origin_hint  # noqa: B018 (the property is what is tested)
        for state in (stored, None):
            with documented(WitnessError):
                result = witness.handle(req, stored=state, timestamp=keys.NOW_MS // 1000)
                assert result.new_state.size == result.checkpoint.size


def check_proof_bundle(data: bytes) -> None:
    """An offline proof bundle (``bxnode audit verify-bundle``)."""
    with documented(BundleError):
        report = verify_bundle(data, directory=keys.directory(), quorum=1)
        assert 1 <= report.seq <= report.tree_size


# --- operator files: watchlist and crossings imports, MRZ, configuration ------------------


def _import_watchlist(data: bytes, fmt: str) -> None:
    with documented():
        result = parse_file(_file(f"watchlist.{fmt}", data), fmt=fmt, today=keys.TODAY)
        assert result.error_count >= len(result.errors) and not result.written
        assert result.error_count or (result.document_count + result.person_count
                                      <= result.rows)


def check_watchlist_csv(data: bytes) -> None:
    _import_watchlist(data, "csv")


def check_watchlist_jsonl(data: bytes) -> None:
    _import_watchlist(data, "jsonl")


def _import_crossings(data: bytes, fmt: str) -> None:
    with documented():
        result = parse_crossings_file(_file(f"crossings.{fmt}", data), own_bcps=keys.OWN_BCPS,
                                      fmt=fmt)
        assert result.error_count >= len(result.errors)


def check_crossings_csv(data: bytes) -> None:
    _import_crossings(data, "csv")


def check_crossings_jsonl(data: bytes) -> None:
    _import_crossings(data, "jsonl")


def check_mrz(data: bytes) -> None:
    text = _text(data)
    with documented(InvalidInput):
        read_mrz_fields(text)
    with documented(InvalidInput):
        result = parse_mrz(text, today=keys.TODAY)
        assert result.document.number and result.person.family_name
    with documented(InvalidInput):
        parse_mrz(text)


def check_config(data: bytes) -> None:
    """``node.toml`` as an operator writes it (relative paths land in the scratch folder)."""
    folder = _TMP / "node"
    folder.mkdir(exist_ok=True)
    (folder / "node.toml").write_bytes(data)
    from node.config import load_config  # late: the configuration schema is being rewritten

    with documented(ConfigError):
        cfg = load_config(folder)
        assert 1 <= cfg.max_batch and cfg.node_id


TARGETS: dict[str, Check] = {
    "envelope": check_envelope,
    "lookup_request": check_lookup_request,
    "lookup_response": check_lookup_response,
    "crossing_request": check_crossing_request,
    "crossing_response": check_crossing_response,
    "followup_file": check_followup_file,
    "followup_get": check_followup_get,
    "followup_decision": check_followup_decision,
    "followup_status": check_followup_status,
    "proof_rpc": check_proof_rpc,
    "registry_rpc": check_registry_rpc,
    "registry_json": check_registry_json,
    "members_file": check_members_file,
    "signed_note": check_signed_note,
    "vkey": check_vkey,
    "checkpoint": check_checkpoint,
    "add_checkpoint": check_add_checkpoint,
    "proof_bundle": check_proof_bundle,
    "watchlist_csv": check_watchlist_csv,
    "watchlist_jsonl": check_watchlist_jsonl,
    "crossings_csv": check_crossings_csv,
    "crossings_jsonl": check_crossings_jsonl,
    "mrz": check_mrz,
    "config": check_config,
}


def check(target: str, data: bytes) -> None:
    TARGETS[target](data)

