"""Seed the fuzz corpus: valid inputs built with the real code, then mutations of them.

``python -m tests.fuzz.seeds [--per-target N]`` writes ``corpus/<target>/<sha1>`` (the
libFuzzer naming, so atheris runs add to the same folders) and ``fixtures/
witness_state.json``.  Valid inputs: envelopes signed with the dev keys in keys/dev,
the demo watchlists and crossing files in deployments/demo, checkpoints, cosignatures,
add-checkpoint bodies and proof bundles from a real :class:`MerkleAuditLog` signed with
KAZ-BS's dev key, registry documents from :mod:`node.federation.devkeys`, MRZs with valid
check digits, ``node.toml`` from :func:`render_config`.  Mutations: byte-level (flips,
inserts, deletions, splices) and structural (protobuf fields with out-of-range values,
JSON values of the wrong type, duplicate keys, deep nesting, lone surrogates, ...).
Deterministic for a given ``--seed`` except where the log draws its salts.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import json
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

if TYPE_CHECKING:
    from google._upb._message import FieldDescriptor as UpbFieldDescriptor

from node.audit.bundle import make_bundle
from node.audit.checkpoint import Checkpoint, CosignatureV1Signer
from node.audit.checkpoint_witness import AddCheckpointRequest
from node.audit.log import MerkleAuditLog
from node.audit.note import sign_note
from node.core import envelope as env_mod
from node.core.model import (
    ActionCode,
    DocumentQuery,
    ItemResult,
    LookupAnswer,
    LookupRequest,
    Outcome,
    PartialDate,
    PersonQuery,
    QueryKind,
    Refusal,
    RequestHeader,
    Sex,
)
from node.crossings.model import (
    CrossingAnswer,
    CrossingQuestion,
    CrossingRequest,
    CrossingResponse,
    Direction,
)
from node.federation.devkeys import dev_registry
from node.matching.mrz import check_digit
from node.store.sqlcipher import Store
from node.wire import audit as wire_audit
from node.wire import convert
from node.wire import crossings as wire_x
from node.wire import registry as wire_reg
from node.wire._gen import audit_pb2, crossings_pb2, registry_pb2
from node.wire.convert import pb
from tests.fuzz import keys
from tests.fuzz.harnesses import TARGETS

Rng = random.Random

# --- generic mutators ------------------------------------------------------------------------

_TOKENS = [b"\x00", b"\n", b"\r\n", b"\n\n", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x80\x94 ",
           b"\"", b"\\", b"{", b"}", b"[", b"]", b",", b":", b"=", b"<", b"+", b"/", b" ",
           b"-1", b"0", b"00", b"9" * 20, b"18446744073709551616", b"1e999", b"NaN",
           b"\\ud800", b"\\u0000", b"true", b"null", b"\t", b"\x1c", b"\xe2\x80\xa8", b"=="]


def mutate_bytes(data: bytes, rng: Rng, others: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        op = rng.randrange(9)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif op == 2:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op == 3 and b:
            del b[pos:pos + rng.randint(1, 16)]
        elif op == 4 and b:
            end = min(len(b), pos + rng.randint(1, 32))
            b[pos:pos] = b[pos:end] * rng.randint(1, 3)
        elif op == 5:
            b[pos:pos] = rng.choice(_TOKENS)
        elif op == 6 and b:
            del b[pos:]
        elif op == 7 and others:
            other = rng.choice(others)
            cut = rng.randrange(len(other) + 1)
            b = b[:pos] + bytearray(other[cut:])
        elif op == 8 and b:
            val = rng.choice((0, 0x7F, 0x80, 0xFF))
            b[min(pos, len(b) - 1)] = val
    return bytes(b)


def mutate_json_value(v: Any, rng: Rng, depth: int = 0) -> Any:
    """One structural change somewhere in a JSON value."""
    if isinstance(v, dict) and v and rng.random() < 0.7:
        k = rng.choice(list(v))
        out = dict(v)
        r = rng.random()
        if r < 0.15:
            del out[k]
        elif r < 0.25:
            out["unknown_" + str(rng.randrange(9))] = _odd_json(rng)
        else:
            out[k] = mutate_json_value(v[k], rng, depth + 1)
        return out
    if isinstance(v, list) and v and rng.random() < 0.7:
        out_l = list(v)
        i = rng.randrange(len(out_l))
        r = rng.random()
        if r < 0.15:
            del out_l[i]
        elif r < 0.3:
            out_l.insert(i, out_l[i])
        else:
            out_l[i] = mutate_json_value(out_l[i], rng, depth + 1)
        return out_l
    if isinstance(v, str) and v and rng.random() < 0.5:
        i = rng.randrange(len(v))
        return v[:i] + rng.choice(["\ud800", "\x00", "é", "+", "Z", " ", "\u2014", "<", "9",
                                   "\n", "😀", "=", "-", ""]) + v[i + 1:]
    return _odd_json(rng)


def _odd_json(rng: Rng) -> Any:
    return rng.choice([None, True, False, 0, -1, 1, 2**53, 2**64, 1.5, "", "x" * 300, [], {},
                       [[[[]]]], {"a": {"b": {}}}, "\ud800", "2027-01-31T00:00:00Z",
                       "AAAA", "0" * 16, "KAZ", "KAZ-BS", 10**30])


def dump_json(v: Any, rng: Rng) -> bytes:
    text = json.dumps(v, indent=rng.choice((None, 1, 2)), ensure_ascii=rng.random() < 0.5)
    return text.encode("utf-8", errors="surrogatepass")


def json_mutants(base: bytes, rng: Rng, n: int, others: list[bytes]) -> list[bytes]:
    value = json.loads(base)
    out = []
    for i in range(n):
        r = i % 6
        if r == 5:
            out.append(mutate_bytes(base, rng, others))
        elif r == 4:  # textual tricks a JSON dump cannot make
            trick: Callable[[bytes], bytes] = rng.choice([
                lambda t: t.replace(b"{", b'{"signed": 1, ', 1),  # a duplicate key
                lambda t: b"[" * 5000 + t,
                lambda t: t.replace(b"1", b"1.0", 1),
                lambda t: t.replace(b"1", b"1e400", 1),
                lambda t: t.replace(b":", b": NaN, \"x\":", 1),
                lambda t: t + b"\n" + t,
                lambda t: b"\xef\xbb\xbf" + t,
                lambda t: t.replace(b'"', b'"\\ud800', 1),
            ])
            out.append(trick(base))
        else:
            v = value
            for _ in range(rng.randint(1, 3)):
                v = mutate_json_value(v, rng)
            out.append(dump_json(v, rng))
    return out


# --- protobuf: random messages straight from the descriptors ---------------------------------


def _odd_string(rng: Rng) -> str:
    return rng.choice(["", "KAZ", "KGZ-BS", "XXX", "UTO", "N0481516", "border_check", "P", "x" * 65,
                       "é", "\u0301", "Иванов", "a\u202eb", "0" * 16, "KAZ-KORDAI", "\x00",
                       "a b", "P<", "refuse_entry", "M", "X", "approved", "name", "9" * 21])


#: a message's field as the descriptors give it (the upb backend's, or the Python one's)
Field: TypeAlias = "FieldDescriptor | UpbFieldDescriptor"


def _repeated(f: Field) -> bool:
    return bool(getattr(f, "is_repeated", False))


def random_message(cls: type[Message], rng: Rng, depth: int = 0) -> Message:
    msg = cls()
    for f in cls.DESCRIPTOR.fields:
        if rng.random() < 0.35:
            continue
        repeated = _repeated(f)
        count = rng.choice((1, 1, 2, 3, 0)) if repeated else 1
        for _ in range(count):
            _set_field(msg, f, rng, depth, repeated)
    return msg


def _scalar(f: Field, rng: Rng) -> Any:
    t = f.type
    if t == FieldDescriptor.TYPE_STRING:
        return _odd_string(rng)
    if t == FieldDescriptor.TYPE_BYTES:
        return rng.choice([b"", bytes(16), bytes(32), bytes(64), rng.randbytes(rng.randrange(70)),
                           b"\xff" * 65])
    if t == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if t == FieldDescriptor.TYPE_ENUM:
        assert f.enum_type is not None, f.full_name
        values = [v.number for v in f.enum_type.values]
        return rng.choice([*values, 99, -1])
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return rng.choice([0, 1, 2, 12, 13, 31, 32, 1900, 2**32 - 1])
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return rng.choice([0, 1, 1_780_000_000_000, 2**63, 2**64 - 1])
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32,
             FieldDescriptor.TYPE_SFIXED32):
        return rng.choice([0, 1, -1, 2, 12, 31, 1850, 1985, 2201, 2**31 - 1, -(2**31)])
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64,
             FieldDescriptor.TYPE_SFIXED64):
        return rng.choice([0, 1, -1, 1_780_000_000_000, 2**63 - 1, -(2**63)])
    return 0


def _set_field(msg: Message, f: Field, rng: Rng, depth: int, repeated: bool) -> None:
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        sub_type = f.message_type
        assert sub_type is not None, f.full_name
        if sub_type.GetOptions().map_entry:
            key_f, val_f = sub_type.fields_by_name["key"], sub_type.fields_by_name["value"]
            if val_f.type != FieldDescriptor.TYPE_MESSAGE:
                getattr(msg, f.name)[_scalar(key_f, rng)] = _scalar(val_f, rng)
            return
        if depth > 3:
            return
        sub_cls = type(getattr(msg, f.name).add() if repeated else getattr(msg, f.name))
        sub = random_message(sub_cls, rng, depth + 1)
        if repeated:
            container = getattr(msg, f.name)
            container[-1].CopyFrom(sub)
        else:
            getattr(msg, f.name).CopyFrom(sub)
        return
    value = _scalar(f, rng)
    try:
        if repeated:
            getattr(msg, f.name).append(value)
        else:
            setattr(msg, f.name, value)
    except (ValueError, TypeError):
        pass


def proto_mutants(cls: type[Message], valid: list[bytes], rng: Rng, n: int) -> list[bytes]:
    """Random messages of ``cls``, field tweaks of valid ones, and byte-level mutations."""
    out = []
    for i in range(n):
        r = i % 4
        if r == 0:
            out.append(random_message(cls, rng).SerializeToString())
        elif r == 1 and valid:
            try:
                m = cls.FromString(rng.choice(valid))
            except DecodeError:  # a seed of the other message type
                m = cls()
            fields: list[Field] = list(cls.DESCRIPTOR.fields)
            f = rng.choice(fields)
            repeated = _repeated(f)
            if rng.random() < 0.3:
                m.ClearField(f.name)
            else:
                _set_field(m, f, rng, 1, repeated)
            out.append(m.SerializeToString())
        else:
            out.append(mutate_bytes(rng.choice(valid) if valid else b"", rng, valid))
    return out


# --- valid values -------------------------------------------------------------------------------

_STATES = ["KAZ", "KGZ", "UZB", "TJK", "RUS", "D", "GBR", "CHN"]
_FAMILY = ["Иванов", "Ivanov", "Асанов", "Nurlanov", "Oʻrinboyev", "O'Brien", "Müller", "Şahin",
           "Toʻxtayev", "ФАМИЛИЯ", "Ли", "Ким", "Ахмедов", "JOHNSON-SMITH", "Ибраһим"]
_GIVEN = ["", "Бакыт", "Ерлан", "Jean Paul", "Ali", "Мария", "Gʻulom"]


def header(rng: Rng, requester: str = "KGZ-BS", folder: str = "kgz") -> RequestHeader:
    return RequestHeader(
        requester=requester, key_id=env_mod.key_id_for(keys.public_key(folder)),
        operator=rng.choice(["officer-7", "kg-0193", "a@b.c"]),
        purpose=rng.choice(["border_check", "visa_application", "migration_control",
                            "criminal_investigation", "counter_terrorism"]),
        legal_basis=rng.choice(["Agreement on border cooperation, art. 7", "art. 7", "x" * 256]),
        case_ref=rng.choice(["CASE-1", "BCP-2026-1123", "К-77"]),
        issued_at_ms=keys.NOW_MS + rng.randrange(-200_000, 200_000),
        nonce=rng.randbytes(rng.choice((16, 24, 32, 64))))


def document(rng: Rng) -> DocumentQuery:
    return DocumentQuery(number=rng.choice(["N0481516", "AC1111111", "AB1234567", "ID0099887",
                                            "X" * 20, "1"]),
                         issuing_state=rng.choice(_STATES), doc_type=rng.choice("PIACV"))


def person(rng: Rng) -> PersonQuery:
    y = rng.randrange(1850, 2200)
    m = rng.choice((None, rng.randint(1, 12)))
    d = None if m is None or rng.random() < 0.3 else rng.randint(1, 28)
    return PersonQuery(family_name=rng.choice(_FAMILY), given_names=rng.choice(_GIVEN),
                       date_of_birth=PartialDate(y, m, d), nationality=rng.choice(_STATES),
                       sex=rng.choice(list(Sex)), patronymic=rng.choice(["", "Ерланович"]))


def lookup_request(rng: Rng) -> LookupRequest:
    kind = rng.choice(list(QueryKind))
    if kind is QueryKind.DOCUMENT:
        items: tuple[Any, ...] = (document(rng),)
    elif kind is QueryKind.PERSON:
        items = (person(rng),)
    else:
        items = tuple(rng.choice((document, person))(rng) for _ in range(rng.randint(1, 6)))
    return LookupRequest(header=header(rng), kind=kind, items=items)


def _digest(rng: Rng) -> bytes:
    return rng.randbytes(32)


def answer(rng: Rng) -> LookupAnswer | Refusal:
    if rng.random() < 0.3:
        return Refusal(responder="KAZ-BS", key_id=env_mod.key_id_for(keys.public_key("kaz")),
                       request_digest=_digest(rng), issued_at_ms=keys.NOW_MS,
                       status="PERMISSION_DENIED", reason="purpose_not_agreed",
                       reasons=("purpose_not_agreed", "quota_exhausted")[:rng.randint(0, 2)],
                       audit_seq=rng.randrange(1000))
    results = tuple(ItemResult(index=i, outcome=rng.choice(list(Outcome)),
                               reference=rng.choice(["", "KAZ-SLTD-2026-000117"]),
                               action=rng.choice([None, *ActionCode]),
                               contact=rng.choice(["", "KAZ-BS duty desk"]))
                    for i in range(rng.randint(0, 5)))
    return LookupAnswer(responder="KAZ-BS", key_id=env_mod.key_id_for(keys.public_key("kaz")),
                        request_digest=_digest(rng), issued_at_ms=keys.NOW_MS, results=results,
                        audit_seq=rng.randrange(1000))


def crossing_request(rng: Rng) -> CrossingRequest:
    qs = []
    for _ in range(rng.randint(1, 4)):
        start = keys.NOW_MS - rng.randrange(1, 20) * 86_400_000
        bcp, section = rng.choice([("KAZ-KORDAI", ""), ("", "KAZ-KGZ"), ("KGZ-AKZHOL", "")])
        qs.append(CrossingQuestion(subject=rng.choice((document, person))(rng),
                                   direction=rng.choice(list(Direction)), window_start_ms=start,
                                   window_end_ms=start + rng.randrange(1, 86_400_000), bcp=bcp,
                                   section=section))
    return CrossingRequest(header=header(rng), questions=tuple(qs))


def crossing_response(rng: Rng) -> CrossingResponse:
    answers = tuple(CrossingAnswer(index=i, confirmed=rng.random() < 0.5,
                                   bcp=rng.choice(["", "KAZ-KORDAI"]),
                                   crossed_at_ms=rng.choice([0, keys.NOW_MS]),
                                   resolution_minutes=rng.choice([0, 1, 60]))
                    for i in range(rng.randint(0, 4)))
    return CrossingResponse(responder="KAZ-BS", key_id="0123456789abcdef",
                            request_digest=_digest(rng), issued_at_ms=keys.NOW_MS,
                            answers=answers, audit_seq=rng.randrange(100))


def signed(payload_type: str, payload: bytes, rng: Rng, folder: str = "kgz",
           signer: str = "KGZ-BS") -> env_mod.Envelope:
    return env_mod.sign(payload_type=payload_type, payload=payload, signer=signer,
                        key=keys.signing_key(folder))


def followups(rng: Rng) -> dict[str, list[bytes]]:
    h = header(rng)
    file = wire_x.FollowUpFile(header=h, hit_request_digest=_digest(rng),
                               hit_item_index=rng.randrange(5),
                               hit_reference=rng.choice(["", "KAZ-SLTD-2026-000117"]),
                               fields=tuple(rng.sample(["name", "date_of_birth", "photo",
                                                        "case_officer", "travel_history"],
                                                       rng.randint(1, 4))))
    get = wire_x.FollowUpGet(header=h, followup_id=rng.choice(["fu-1", "KAZ-BS:17"]))
    state = rng.choice(["approved", "denied"])
    decision = wire_x.FollowUpDecision(
        responder="KAZ-BS", key_id="0123456789abcdef", request_digest=_digest(rng),
        issued_at_ms=keys.NOW_MS, audit_seq=3, followup_id="fu-1", state=state,
        fields={"name": "Иванов"} if state == "approved" else {}, reason="ok",
        hit_reference="KAZ-SLTD-2026-000117")
    dec_bytes = wire_x.encode_followup_decision(decision)
    status_state = rng.choice(["pending", "approved", "denied"])
    status = wire_x.FollowUpStatus(
        responder="KAZ-BS", key_id="0123456789abcdef", request_digest=_digest(rng),
        issued_at_ms=keys.NOW_MS, audit_seq=4, followup_id="fu-1", state=status_state,
        deadline_ms=keys.NOW_MS + 3_600_000, overdue=rng.random() < 0.5,
        decision=None if status_state == "pending" else signed(
            wire_x.FOLLOWUP_DECISION_TYPE, dec_bytes, rng, "kaz", "KAZ-BS"))
    return {"followup_file": [wire_x.encode_followup_file(file)],
            "followup_get": [wire_x.encode_followup_get(get)],
            "followup_decision": [dec_bytes],
            "followup_status": [wire_x.encode_followup_status(status)]}


# --- the audit log: checkpoints, cosignatures, add-checkpoint bodies, bundles ------------------


@dataclasses.dataclass
class LogMaterial:
    notes: list[bytes]
    cosigned: list[bytes]
    add_checkpoint: list[bytes]
    bundles: list[bytes]
    state: dict[str, str]


def audit_log_material(rng: Rng) -> LogMaterial:
    """A real KAZ-BS log (dev key), checkpoints of sizes 1, 2, 3, 5, 8, 13, 21, KGZ cosigning."""
    tmp = Path(tempfile.mkdtemp(prefix="bxnode-seeds-"))
    try:
        store = Store.open(tmp / "node.db", bytes(range(32)), create=True)
        log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=keys.signing_key("kaz"))
        witness: CosignatureV1Signer = keys.cosigner()
        seq, t = 0, keys.NOW_MS - 86_400_000
        sizes = (1, 2, 3, 5, 8, 13, 21)
        for size in sizes:
            with store.transaction():
                while seq < size:
                    seq += 1
                    t += 1000
                    log.append({"event": "lookup", "requester": "KGZ-BS", "seq": seq,
                                "outcome": rng.choice(["answered", "denied", "rejected"]),
                                "reason": rng.choice(["", "bad_signature"])}, time_ms=t)
            head = log.head(size)
            assert head is not None
            cp = Checkpoint.parse(head.note.decode().split("\n\n")[0] + "\n")
            if size % 2:
                line = witness.cosign(cp, timestamp=t // 1000).line()
                with store.transaction():
                    log.add_cosignature(size, "KGZ-BS", line, time_ms=t)
        heads = {h.size: h for h in log.heads()}
        notes = [heads[s].note for s in sizes]
        cosigned = [heads[s].note + "".join(heads[s].cosignatures).encode() for s in sizes]
        stored = heads[3]
        bodies = []
        for new in sizes:
            for old in (0, 3, 1, 2, 5):
                if old > new:
                    continue
                proof = log.consistency_proof(old, new) if 0 < old < new else []
                bodies.append(AddCheckpointRequest(old_size=old, consistency_proof=tuple(proof),
                                                   checkpoint_note=heads[new].note).to_bytes())
        bundles = [make_bundle(log, s, node_id="KAZ-BS") for s in range(1, 22)]
        state = {"origin": "bxnode/KAZ-BS", "size": str(stored.size),
                 "root": base64.b64encode(stored.root).decode(),
                 "note": base64.b64encode(stored.note).decode()}
        store.close()
        return LogMaterial(notes, cosigned, bodies, bundles, state)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def other_notes(rng: Rng) -> list[bytes]:
    """Notes of other shapes: several signers, extension lines, foreign key names."""
    out = []
    for i in range(12):
        origin = "bxnode/KAZ-BS"
        cp = Checkpoint(origin=origin, size=i, root_hash=hashlib.sha256(b"").digest() if i == 0
                        else rng.randbytes(32),
                        extensions=tuple(f"ext {j}" for j in range(rng.randint(0, 2))))
        signers: list[Any] = [keys.log_signer()]
        if rng.random() < 0.5:
            signers.append(keys.log_signer("KGZ-BS", "kgz"))
        out.append(sign_note(cp.body(), signers))
    out.append(sign_note("hello\nworld\n", [keys.log_signer()]))
    return out


# --- operator files ----------------------------------------------------------------------------


def mrz_td3(rng: Rng) -> str:
    state, nat = rng.choice(_STATES[:5]), rng.choice(_STATES[:5])
    number = rng.choice(["N0481516", "AC1111111", "L898902C3", "AB12345"]).ljust(9, "<")
    birth = f"{rng.randrange(40, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    expiry = f"{rng.randrange(27, 40):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    sex = rng.choice("MF<")
    personal = rng.choice(["<" * 14, "ZE184226B<<<<<"])
    names = (rng.choice(["IVANOV", "ASANOV", "NURLANOV"]) + "<<"
             + rng.choice(["IVAN", "BAKYT<ERLAN", ""]))
    l1 = f"P<{state:<3}{names}".replace(" ", "<").ljust(44, "<")[:44]
    cd_personal = "<" if personal == "<" * 14 and rng.random() < 0.5 else str(
        check_digit(personal))
    l2 = (f"{number}{check_digit(number)}{nat}{birth}{check_digit(birth)}{sex}{expiry}"
          f"{check_digit(expiry)}{personal}{cd_personal}")
    composite = l2[0:10] + l2[13:20] + l2[21:43]
    l2 += str(check_digit(composite))
    return f"{l1}\n{l2}"


def mrz_td1(rng: Rng) -> str:
    state, nat = rng.choice(_STATES[:5]), rng.choice(_STATES[:5])
    doc_type = rng.choice(["I<", "ID", "AC", "C<"])
    number = rng.choice(["N0481516<", "ID0099887", "D23145890"])
    if rng.random() < 0.3:  # a long number continues in the optional field (note j)
        full = "D231458907AB"
        first, extra = full[:9], full[9:]
        l1 = (f"{doc_type}{state}{first}<{extra}{check_digit(full)}").ljust(30, "<")
    else:
        l1 = f"{doc_type}{state}{number}{check_digit(number)}".ljust(30, "<")
    birth = f"{rng.randrange(40, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    expiry = f"{rng.randrange(27, 40):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    l2 = f"{birth}{check_digit(birth)}{rng.choice('MF<')}{expiry}{check_digit(expiry)}{nat}"
    l2 = l2.ljust(29, "<")
    l2 += str(check_digit(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29]))
    l3 = (rng.choice(["IVANOVA", "ASANOV"]) + "<<" + rng.choice(["MARIA", "ALI<BEK"])).ljust(
        30, "<")[:30]
    return f"{l1}\n{l2}\n{l3}"


def config_texts(rng: Rng) -> list[bytes]:
    """``node.toml`` as ``bxnode init`` writes it (fixtures/node.toml), and variants."""
    base = (keys.FIXTURES / "node.toml").read_text()
    variants = [base, base.replace("dev_mode = true", "dev_mode = false"),
                base.replace('id = "KAZ-BS"', 'id = "KGZ-BS"').replace('"KAZ"', '"KGZ"'),
                "\n".join(line for line in base.splitlines()
                          if not line.startswith(("registry", "refresh_s", "expiry_grace_s"))),
                base.replace('path = "node.db"', 'backend = "postgresql"\ndsn = "host=db"\n'
                             'pool_min = 2\npool_max = 4'),
                base.replace("# witnesses", "witnesses"),
                "\n".join(line.split("#")[0].rstrip() for line in base.splitlines()),
                '[node]\nid = "KAZ-BS"\ncountry = "KAZ"\n']
    return [v.encode() for v in variants]


_TOML_TRICKS = [
    ("dev_mode = false", 'dev_mode = "false"'), ("dev_mode = true", "dev_mode = 1"),
    ("max_batch = 500", 'max_batch = "500"'), ("max_batch = 500", "max_batch = 5e2"),
    ("max_batch = 500", "max_batch = 10001"), ("max_batch = 500", "max_batch = [1]"),
    ("clock_skew_s = 120", "clock_skew_s = 1979-05-27"), ("[audit]", "[audti]"),
    ("[policy]", "[polcy]"), ("cache = true", 'cache = "no"'),
    ("batch_max = 256", "batch_max = -1"),
    ("[node]", "node = 5\n[nodex]"), ("[limits]", "limits = 5\n[limitsx]"),
    ("[storage]", "storage = []\n[storagex]"), ('id = "', 'id = 7 #"'),
    ("[federation]", "federation = 1\n[federationx]"), ("[audit]", "audit = 1\n[auditx]"),
    ("witness_quorum = 1", "witness_quorum = true"), ('path = "node.db"', "path = 1"),
    ('path = "node.db"', 'backend = "postgresql"\ndsn = "host=x password=y"'),
    ('path = "node.db"', 'backend = "postgresql"\ndsn = "host=x"\npool_min = 0'),
    ("[client]", "[client]\nextra = 1"), ("[tls]", "tls = \"x\"\n[tlsx]"),
    ('country = "KAZ"', 'country = "XXX"'), ('country = "KAZ"', "country = 1"),
    ("[federation]", "[federation]\nrefresh_s = 0"),
    ("[federation]", '[federation]\nrefresh_s = "1"'),
]


def toml_mutants(base: bytes, rng: Rng, n: int, others: list[bytes]) -> list[bytes]:
    out = []
    text = base.decode()
    for i in range(n):
        if i % 3 == 2:
            out.append(mutate_bytes(base, rng, others))
            continue
        t = text
        for _ in range(rng.randint(1, 3)):
            a, b = rng.choice(_TOML_TRICKS)
            t = t.replace(a, b, 1)
        out.append(t.encode())
    return out


def _lines_mutants(base: bytes, rng: Rng, n: int, others: list[bytes],
                   swaps: list[tuple[bytes, bytes]]) -> list[bytes]:
    out = []
    lines = base.split(b"\n")
    for i in range(n):
        r = i % 5
        if r == 0:
            out.append(mutate_bytes(base, rng, others))
        elif r == 1:
            ls = list(lines)
            j = rng.randrange(len(ls))
            ls.insert(j, ls[rng.randrange(len(ls))])
            out.append(b"\n".join(ls))
        elif r == 2:
            ls = list(lines)
            del ls[rng.randrange(len(ls))]
            out.append(b"\n".join(ls))
        else:
            t = base
            for _ in range(rng.randint(1, 3)):
                a, b = rng.choice(swaps)
                t = t.replace(a, b, 1)
            out.append(t)
    return out


_CSV_SWAPS = [(b",", b",,"), (b",", b""), (b"KAZ", b"XXX"), (b"P,", b"Q,"), (b",P", b",\"P"),
              (b"2036", b"99999"), (b"-01-", b"-13-"), (b"stolen", b"nicked"),
              (b"document", b"passport"), (b"person", b"persons"), (b"road", b"sea"),
              (b"Z,", b"+05:00,"), (b"T08", b"T25"), (b"\n", b"\r\n"), (b"\n", b"\n\"\n"),
              (b",M", b",Q"), (b"KGZ", b"\xff"), (b"kind", b"kind,kind"), (b"\n", b"\x00\n"),
              (b"seize_document", b"seize"), (b",,", b",\"" + b"x" * 300 + b"\","),
              (b"N0", b"n0"), (b"1979", b"0000"), (b"1979-11-02", b"1979-02-30")]
_JSONL_SWAPS = [(b'"kind"', b'"kind": 1, "x"'), (b'"KGZ"', b'"XXX"'), (b'"P"', b'["P"]'),
                (b'"2036-02-28"', b'"2036-02-30"'), (b'"stolen"', b'null'),
                (b'"document"', b'"person"'), (b"{", b"["), (b"}", b"}}"), (b"\n", b"\n\n"),
                (b'": "', b'": "\\ud800'), (b'"number": "', b'"number": 7, "n": "'),
                (b"{", b"{" * 3000), (b'"expires": "2036-02-28"', b'"expires": 20360228'),
                (b'"contact": "', b'"contact": "\\ud800'), (b'"action": "', b'"action": "x')]


def import_seeds(kind: str, fmt: str, rng: Rng) -> list[bytes]:
    files = {("watchlist", "csv"): ["kaz-watchlist.csv", "uzb-watchlist.csv"],
             ("watchlist", "jsonl"): ["kgz-watchlist.jsonl"],
             ("crossings", "csv"): ["kaz-crossings.csv", "kgz-crossings.csv"],
             ("crossings", "jsonl"): ["uzb-crossings.jsonl"]}[(kind, fmt)]
    out = [(keys.DEMO / f).read_bytes() for f in files]
    if fmt == "jsonl" and kind == "watchlist":  # and the persons the demo file lacks
        out.append(b'{"kind": "person", "owner_ref": "KGZ-P-1", "action": "inform", '
                   b'"expires": "2036-01-01", "family_name": "\xd0\x90\xd1\x81\xd0\xb0\xd0\xbd'
                   b'\xd0\xbe\xd0\xb2", "given_names": "Bakyt", "dob": "1979-11", '
                   b'"nationality": "KGZ", "sex": "M", "contact": "desk"}\n')
    return out


# --- assembling the corpus -----------------------------------------------------------------------


def _pb_valid(rng: Rng, make: Callable[[Rng], bytes], n: int) -> list[bytes]:
    return [make(rng) for _ in range(n)]


def build(per_target: int, seed: int) -> dict[str, list[bytes]]:
    rng = random.Random(seed)
    n = per_target
    corpus: dict[str, list[bytes]] = {}

    def add(target: str, valid: list[bytes], mutants: Callable[[list[bytes]], list[bytes]]) -> None:
        corpus[target] = valid + mutants(valid)

    # envelopes: real signed LookupRequests (KGZ-BS), plus other signers and types
    payloads = _pb_valid(rng, lambda r: convert.encode_request(lookup_request(r)), 40)
    envs = []
    for i, p in enumerate(payloads):
        e = signed(env_mod.REQUEST_TYPE, p, rng) if i % 5 else signed(
            rng.choice([env_mod.REQUEST_TYPE, env_mod.RESPONSE_TYPE]), p, rng, "kaz", "KAZ-BS")
        envs.append(pb.LookupRequest(envelope=convert.envelope_to_pb(e)).SerializeToString())
    add("envelope", envs, lambda v: proto_mutants(pb.LookupRequest, v, rng, n - len(v)))
    add("lookup_request", payloads,
        lambda v: proto_mutants(pb.RequestPayload, v, rng, n - len(v)))

    def encode_answer(r: Rng) -> bytes:
        a = answer(r)
        return convert.encode_refusal(a) if isinstance(a, Refusal) else convert.encode_answer(a)

    add("lookup_response", _pb_valid(rng, encode_answer, 30),
        lambda v: proto_mutants(pb.ResponsePayload, v, rng, n - len(v)))
    add("crossing_request",
        _pb_valid(rng, lambda r: wire_x.encode_crossing_request(crossing_request(r)), 30),
        lambda v: proto_mutants(crossings_pb2.CrossingRequestPayload, v, rng, n - len(v)))
    add("crossing_response",
        _pb_valid(rng, lambda r: wire_x.encode_crossing_response(crossing_response(r)), 20),
        lambda v: proto_mutants(crossings_pb2.CrossingResponsePayload, v, rng, n - len(v)))
    fu: dict[str, list[bytes]] = {}
    for _ in range(15):
        for k, v in followups(rng).items():
            fu.setdefault(k, []).extend(v)
    for target, cls in (("followup_file", crossings_pb2.FollowUpFilePayload),
                        ("followup_get", crossings_pb2.FollowUpGetPayload),
                        ("followup_decision", crossings_pb2.FollowUpDecisionPayload),
                        ("followup_status", crossings_pb2.FollowUpStatusPayload)):
        def followup_mutants(v: list[bytes], c: type[Message] = cls) -> list[bytes]:
            return proto_mutants(c, v, rng, n - len(v))

        add(target, fu[target], followup_mutants)
    proofs = [wire_audit.encode_proof_request(wire_audit.ProofRequest(header(rng), _digest(rng)))
              for _ in range(10)]
    proofs += [wire_audit.encode_proof_answer(responder="KAZ-BS", key_id="0123456789abcdef",
                                              request_digest=_digest(rng), issued_at_ms=1,
                                              audit_seq=2, bundle=b"{}") for _ in range(5)]
    add("proof_rpc", proofs, lambda v: proto_mutants(audit_pb2.InclusionProofPayload, v, rng,
                                                     (n - len(v)) // 2)
        + proto_mutants(audit_pb2.InclusionProofResultPayload, v, rng, (n - len(v)) // 2))
    regs = [wire_reg.encode_get_request(v) for v in (0, 1, 2, 2**63)] + [
        wire_reg.encode_get_response(b'{"signed": {}}', 3)]
    add("registry_rpc", regs, lambda v: proto_mutants(registry_pb2.GetRegistryRequest, v, rng,
                                                      (n - len(v)) // 2)
        + proto_mutants(registry_pb2.GetRegistryResponse, v, rng, (n - len(v)) // 2))

    # the registry: the dev document, smaller ones, a valid version 2 update
    members = json.loads((keys.DEV / "members.json").read_text())["members"]
    trusted = keys.dev_registry()
    docs = [(keys.DEV / "registry.json").read_bytes()]
    for i in range(6):
        sub = members[: 1 + i % 3]
        reg = dev_registry(sub, now_ms=keys.NOW_MS, version=trusted.version + (i % 2))
        docs.append(reg.to_bytes())
    small = [d for d in docs if len(d) < 6000] or docs
    add("registry_json", docs, lambda v: _registry_mutants(small, rng, n - len(v)))
    members_doc = (keys.DEV / "members.json").read_bytes()
    one = json.dumps({"version": 1, "members": members[:1]}).encode()
    add("members_file", [members_doc, one],
        lambda v: json_mutants(one, rng, n, v))

    # the audit log
    mat = audit_log_material(rng)
    notes = mat.notes + mat.cosigned + other_notes(rng)
    add("signed_note", notes, lambda v: [mutate_bytes(rng.choice(v), rng, v)
                                         for _ in range(n - len(v))])
    add("checkpoint", notes, lambda v: [mutate_bytes(rng.choice(v), rng, v)
                                        for _ in range(n - len(v))])
    add("add_checkpoint", mat.add_checkpoint,
        lambda v: [mutate_bytes(rng.choice(v), rng, v) for _ in range(n - len(v))])
    add("proof_bundle", mat.bundles,
        lambda v: [m for b in rng.sample(v, len(v)) for m in json_mutants(b, rng, 1, v)] +
        [m for _ in range((n - 2 * len(v)) // 4)
         for m in json_mutants(rng.choice(v), rng, 4, v)])
    vkeys = [keys.log_verifier().vkey(), keys.cosigner_verifier().vkey(),
             keys.log_verifier("KGZ-BS", "kgz").vkey()]
    add("vkey", [k.encode() for k in vkeys],
        lambda v: [mutate_bytes(rng.choice(v), rng, v) for _ in range(n)])

    # operator files
    for kind in ("watchlist", "crossings"):
        for fmt in ("csv", "jsonl"):
            base = import_seeds(kind, fmt, rng)
            swaps = _CSV_SWAPS if fmt == "csv" else _JSONL_SWAPS

            def line_mutants(v: list[bytes], s: list[tuple[bytes, bytes]] = swaps
                             ) -> list[bytes]:
                return [m for _ in range(n // 8)
                        for m in _lines_mutants(rng.choice(v), rng, 8, v, s)]

            add(f"{kind}_{fmt}", base, line_mutants)
    mrzs = [(mrz_td3 if i % 2 else mrz_td1)(rng).encode() for i in range(60)]
    add("mrz", mrzs, lambda v: [mutate_bytes(rng.choice(v), rng, v)
                                for _ in range(n - len(v))])
    cfgs = config_texts(rng)
    add("config", cfgs, lambda v: [m for _ in range(n // 6)
                                   for m in toml_mutants(rng.choice(v), rng, 6, v)])

    write_fixture(mat.state)
    return corpus


def _registry_mutants(docs: list[bytes], rng: Rng, n: int) -> list[bytes]:
    out: list[bytes] = []
    while len(out) < n:
        out += json_mutants(rng.choice(docs), rng, 6, docs)
    return out[:n]


def write_fixture(state: dict[str, str]) -> None:
    keys.FIXTURES.mkdir(exist_ok=True)
    (keys.FIXTURES / "witness_state.json").write_text(json.dumps(state, indent=1) + "\n")


def write_corpus(corpus: dict[str, list[bytes]], *, max_size: int = 16_384) -> dict[str, int]:
    counts = {}
    for target, cases in corpus.items():
        assert target in TARGETS, target
        folder = keys.CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for data in cases:
            if len(data) <= max_size:
                (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
        counts[target] = sum(1 for _ in folder.iterdir())
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-target", type=int, default=450)
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args(argv)
    counts = write_corpus(build(args.per_target, args.seed))
    for target, count in sorted(counts.items()):
        print(f"{target:20} {count}")
    print(f"{'total':20} {sum(counts.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
