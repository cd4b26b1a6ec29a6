"""Hypothesis properties: parse ∘ serialise round-trips for typed values within the model's bounds.

Strategies build values the way a peer or the node itself would (every constructor
validates), so each property says: whatever the node can send, the other side reads back
unchanged.  Runs are bounded (``max_examples``) to keep the whole fuzz part of ``make
test`` within its budget; ``make fuzz`` is the long run.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.audit.checkpoint import Checkpoint, Cosignature, CosignatureV1Signer, open_checkpoint
from node.audit.checkpoint_witness import AddCheckpointRequest
from node.audit.note import (
    Ed25519NoteSigner,
    parse_note,
    parse_signature_lines,
    sign_note,
    verify_note,
)
from node.core import envelope as env_mod
from node.core.errors import InvalidInput, Unauthenticated
from node.core.model import (
    ActionCode,
    DocumentQuery,
    ItemResult,
    LookupAnswer,
    LookupRequest,
    Outcome,
    PartialDate,
    PersonQuery,
    Purpose,
    QueryKind,
    Refusal,
    RequestHeader,
    Sex,
)
from node.crossings.model import (
    EARLIEST_MS,
    LATEST_MS,
    MAX_WINDOW_MS,
    CrossingAnswer,
    CrossingQuestion,
    CrossingRequest,
    CrossingResponse,
    Direction,
)
from node.federation import registry as reg_mod
from node.matching.mrz import check_digit, parse_mrz
from node.wire import audit as wire_audit
from node.wire import convert
from node.wire import crossings as wire_x
from node.wire.convert import pb
from tests.fuzz import keys

PROPS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: The composite payloads (a header, subjects, questions) cost more per example.
HEAVY = settings(PROPS, max_examples=20)

INT64 = st.integers(1, 2**63 - 1)
UINT32 = st.integers(0, 2**32 - 1)
UINT64 = st.integers(0, 2**64 - 1)
STATES = st.sampled_from(["KAZ", "KGZ", "UZB", "TJK", "TKM", "RUS", "D", "GBR", "CHN", "UNO"])
IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,40}", fullmatch=True)
TEXT = st.text(max_size=80)  # any Unicode a protobuf string can hold (no lone surrogates)
LETTERS = st.characters(categories=("Lu", "Ll", "Lo"))
NAMES = st.builds(lambda a, b: (a + " " + b).strip(), st.text(LETTERS, min_size=1, max_size=30),
                  st.text(LETTERS, max_size=30))


@st.composite
def partial_dates(draw: st.DrawFn) -> PartialDate:
    year = draw(st.integers(1850, 2200))
    month = draw(st.none() | st.integers(1, 12))
    day = None if month is None else draw(st.none() | st.integers(1, 28))
    return PartialDate(year, month, day)


documents = st.builds(DocumentQuery, number=st.from_regex(r"[A-Z0-9]{1,20}", fullmatch=True),
                      issuing_state=STATES,
                      doc_type=st.from_regex(r"[PIACV][A-Z0-9]?", fullmatch=True))
persons = st.builds(PersonQuery, family_name=NAMES, given_names=st.just("") | NAMES,
                    date_of_birth=partial_dates(), nationality=STATES,
                    sex=st.sampled_from(list(Sex)), patronymic=st.just("") | NAMES)
headers = st.builds(
    RequestHeader, requester=IDS, key_id=st.from_regex(r"[0-9a-f]{16}", fullmatch=True),
    operator=IDS, purpose=st.sampled_from([p.value for p in Purpose]),
    legal_basis=st.text(min_size=1, max_size=256), case_ref=st.text(min_size=1, max_size=128),
    issued_at_ms=INT64, nonce=st.binary(min_size=16, max_size=64))


@st.composite
def lookup_requests(draw: st.DrawFn) -> LookupRequest:
    kind = draw(st.sampled_from(list(QueryKind)))
    if kind is QueryKind.BATCH:
        items = tuple(draw(st.lists(documents | persons, min_size=1, max_size=5)))
    else:
        one: st.SearchStrategy[DocumentQuery | PersonQuery] = (
            documents if kind is QueryKind.DOCUMENT else persons)
        items = (draw(one),)
    return LookupRequest(header=draw(headers), kind=kind, items=items)


results = st.builds(ItemResult, index=UINT32, outcome=st.sampled_from(list(Outcome)),
                    reference=TEXT, action=st.none() | st.sampled_from(list(ActionCode)),
                    contact=TEXT)
answers = st.builds(LookupAnswer, responder=TEXT, key_id=TEXT, request_digest=st.binary(
    max_size=32), issued_at_ms=INT64, results=st.lists(results, max_size=6).map(tuple),
    audit_seq=UINT64)
refusals = st.builds(Refusal, responder=TEXT, key_id=TEXT, request_digest=st.binary(max_size=32),
                     issued_at_ms=INT64, status=TEXT, reason=TEXT,
                     reasons=st.lists(TEXT, max_size=4).map(tuple), audit_seq=UINT64)
BCPS = st.from_regex(r"[A-Z]{3}-[A-Z0-9][A-Z0-9-]{0,30}", fullmatch=True)


@st.composite
def questions(draw: st.DrawFn) -> CrossingQuestion:
    start = draw(st.integers(EARLIEST_MS, LATEST_MS - 1))
    end = draw(st.integers(start, min(LATEST_MS - 1, start + MAX_WINDOW_MS)))
    where = draw(BCPS)
    at_bcp = draw(st.booleans())
    return CrossingQuestion(subject=draw(documents | persons),
                            direction=draw(st.sampled_from(list(Direction))),
                            window_start_ms=start, window_end_ms=end,
                            bcp=where if at_bcp else "", section="" if at_bcp else where)


crossing_requests = st.builds(CrossingRequest, header=headers,
                              questions=st.lists(questions(), min_size=1, max_size=4).map(tuple))
crossing_responses = st.builds(
    CrossingResponse, responder=TEXT, key_id=TEXT, request_digest=st.binary(max_size=32),
    issued_at_ms=INT64, audit_seq=UINT64, answers=st.lists(st.builds(
        CrossingAnswer, index=UINT32, confirmed=st.booleans(), bcp=TEXT,
        crossed_at_ms=st.integers(-(2**63), 2**63 - 1), resolution_minutes=UINT32),
        max_size=4).map(tuple))
FIELDS = st.from_regex(r"[a-z]{1,10}(_[a-z]{1,10}){0,2}", fullmatch=True)
followup_files = st.builds(
    wire_x.FollowUpFile, header=headers, hit_request_digest=st.binary(min_size=32, max_size=32),
    hit_item_index=UINT32, hit_reference=st.just("") | IDS,
    fields=st.lists(FIELDS, min_size=1, max_size=wire_x.MAX_FIELDS).map(tuple))
followup_gets = st.builds(wire_x.FollowUpGet, header=headers, followup_id=IDS)
followup_decisions = st.builds(
    wire_x.FollowUpDecision, responder=TEXT, key_id=TEXT, request_digest=st.binary(max_size=32),
    issued_at_ms=INT64, audit_seq=UINT64, followup_id=TEXT,
    state=st.sampled_from(["approved", "denied"]), fields=st.dictionaries(TEXT, TEXT, max_size=4),
    reason=TEXT, hit_reference=TEXT)
envelopes = st.builds(env_mod.Envelope, payload_type=st.text(min_size=1, max_size=64),
                      payload=st.binary(min_size=1, max_size=512), signer=st.text(
                          min_size=1, max_size=64), key_id=st.text(min_size=1, max_size=64),
                      signature=st.binary(max_size=64))


@st.composite
def followup_statuses(draw: st.DrawFn) -> wire_x.FollowUpStatus:
    state = draw(st.sampled_from(["pending", "approved", "denied"]))
    return wire_x.FollowUpStatus(
        responder=draw(TEXT), key_id=draw(TEXT), request_digest=draw(st.binary(max_size=32)),
        issued_at_ms=draw(INT64), audit_seq=draw(UINT64), followup_id=draw(TEXT), state=state,
        deadline_ms=draw(INT64), overdue=draw(st.booleans()),
        decision=None if state == "pending" else draw(envelopes))


# --- envelopes and every payload type -------------------------------------------------------


@PROPS
@given(envelopes)
def test_envelope_round_trips_and_its_digest_is_over_the_bytes_as_sent(env: env_mod.Envelope
                                                                      ) -> None:
    wire = convert.envelope_to_pb(env).SerializeToString()
    again = convert.envelope_from_pb(pb.SignedEnvelope.FromString(wire))
    assert again == env and env_mod.digest(again) == hashlib.sha256(
        env_mod.pae(env.payload_type, env.payload)).digest()


@PROPS
@given(st.binary(min_size=1, max_size=256), st.text(min_size=1, max_size=64))
def test_a_signed_envelope_verifies_and_any_changed_byte_does_not(payload: bytes,
                                                                  ptype: str) -> None:
    key = keys.signing_key("kgz")
    env = env_mod.sign(payload_type=ptype, payload=payload, signer="KGZ-BS", key=key)
    env_mod.verify(env, keys.public_key("kgz"), expected_type=ptype)
    flipped = bytes([payload[0] ^ 1]) + payload[1:]
    try:
        env_mod.verify(env_mod.Envelope(payload_type=ptype, payload=flipped, signer="KGZ-BS",
                                        key_id=env.key_id, signature=env.signature),
                       keys.public_key("kgz"), expected_type=ptype)
    except Unauthenticated as exc:
        assert exc.reason == "bad_signature"
    else:
        raise AssertionError("a changed payload verified")


@HEAVY
@given(lookup_requests())
def test_lookup_request_round_trips(req: LookupRequest) -> None:
    assert convert.decode_request(convert.encode_request(req), max_items=500) == req
    assert convert.decode_request_header(convert.encode_request(req)) == req.header


@PROPS
@given(answers | refusals)
def test_lookup_response_round_trips(resp: LookupAnswer | Refusal) -> None:
    data = (convert.encode_refusal(resp) if isinstance(resp, Refusal)
            else convert.encode_answer(resp))
    assert convert.decode_response(data) == resp
    head = convert.decode_response_head(data)
    assert (head.responder, head.request_digest) == (resp.responder, resp.request_digest)


@HEAVY
@given(crossing_requests)
def test_crossing_request_round_trips(req: CrossingRequest) -> None:
    assert wire_x.decode_crossing_request(wire_x.encode_crossing_request(req),
                                          max_questions=100) == req


@PROPS
@given(crossing_responses)
def test_crossing_response_round_trips(resp: CrossingResponse) -> None:
    assert wire_x.decode_crossing_response(wire_x.encode_crossing_response(resp)) == resp


@HEAVY
@given(followup_files, followup_gets, followup_decisions, followup_statuses())
def test_followup_payloads_round_trip(f: wire_x.FollowUpFile, g: wire_x.FollowUpGet,
                                      d: wire_x.FollowUpDecision,
                                      s: wire_x.FollowUpStatus) -> None:
    assert wire_x.decode_followup_file(wire_x.encode_followup_file(f)) == f
    assert wire_x.decode_followup_get(wire_x.encode_followup_get(g)) == g
    assert wire_x.decode_followup_decision(wire_x.encode_followup_decision(d)) == d
    assert wire_x.decode_followup_status(wire_x.encode_followup_status(s)) == s


@PROPS
@given(headers, st.binary(min_size=32, max_size=32), st.binary(max_size=300))
def test_proof_payloads_round_trip(h: RequestHeader, digest: bytes, bundle: bytes) -> None:
    r = wire_audit.ProofRequest(h, digest)
    assert wire_audit.decode_proof_request(wire_audit.encode_proof_request(r)) == r
    answer = wire_audit.encode_proof_answer(responder="KAZ-BS", key_id="k", request_digest=digest,
                                            issued_at_ms=1, audit_seq=2, bundle=bundle)
    assert wire_audit.decode_proof_answer(answer) == bundle


# --- the registry: RFC 8785 canonical JSON, and layout independence --------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=20)


@PROPS
@given(JSON)
def test_canonical_json_is_a_fixed_point_and_sorts_keys(value: Any) -> None:
    jcs = reg_mod.canonical(value)
    assert reg_mod.canonical(json.loads(jcs)) == jcs
    assert json.loads(jcs) == value
    assert b"\n" not in jcs and b": " not in jcs


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@HEAVY
@given(st.randoms(use_true_random=False), st.sampled_from([None, 0, 1, 2, 4]),
       st.booleans())
def test_registry_layout_does_not_matter_only_its_canonical_bytes(
        rng: random.Random, indent: int | None, ascii_only: bool) -> None:
    """Key order, indentation and escapes change the file, never the digest or signatures."""
    trusted = keys.dev_registry()
    doc = _shuffled(trusted.document(), rng)
    text = json.dumps(doc, indent=indent, ensure_ascii=ascii_only).encode()
    reg = reg_mod.parse_registry(text)
    assert reg.digest == trusted.digest and reg.canonical_signed == trusted.canonical_signed
    reg_mod.verify_self_signed(reg)
    assert reg_mod.parse_registry(reg.to_bytes()) == reg


# --- signed notes, checkpoints, cosignatures, add-checkpoint --------------------------------

NOTE_LINES = st.lists(st.text(st.characters(min_codepoint=0x20, exclude_characters="\n"),
                              min_size=1, max_size=40), min_size=1, max_size=5)
KEY_NAMES = st.from_regex(r"[a-zA-Z0-9./_-]{1,40}", fullmatch=True)


@PROPS
@given(NOTE_LINES, st.lists(st.tuples(KEY_NAMES, st.binary(min_size=32, max_size=32)),
                            min_size=1, max_size=3, unique_by=lambda t: t[0]))
def test_signed_note_round_trips_byte_for_byte(lines: list[str],
                                               signers: list[tuple[str, bytes]]) -> None:
    text = "".join(line + "\n" for line in lines)
    ss = [Ed25519NoteSigner(name=n, seed=s) for n, s in signers]
    data = sign_note(text, ss)
    note = parse_note(data)
    assert note.text == text and note.to_bytes() == data
    verified = verify_note(data, verifiers=[s.verifier for s in ss])
    assert len(verified.verified) == len(ss) and not verified.ignored
    for sig in note.signatures:
        assert parse_signature_lines(sig.line().encode()) == (sig,)


checkpoints = st.builds(
    Checkpoint, origin=st.just("bxnode/KAZ-BS"), size=st.integers(1, 2**63 - 1),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(st.text(st.characters(min_codepoint=0x20, exclude_characters="\n"),
                                min_size=1, max_size=30), max_size=3).map(tuple))


@PROPS
@given(checkpoints, st.integers(0, 2**63 - 1))
def test_checkpoint_and_cosignature_round_trip(cp: Checkpoint, timestamp: int) -> None:
    assert Checkpoint.parse(cp.body()) == cp
    note = sign_checkpoint_note(cp)
    opened = open_checkpoint(note, log_verifiers=[keys.log_verifier()], origin=cp.origin)
    assert opened.checkpoint == cp
    witness: CosignatureV1Signer = keys.cosigner()
    cosig = witness.cosign(cp, timestamp=timestamp)
    assert Cosignature.from_note_signature(cosig.note_signature()) == cosig
    cosigned = note + cosig.line().encode()
    both = open_checkpoint(cosigned, log_verifiers=[keys.log_verifier()],
                           required_cosigners=[witness.verifier])
    assert witness.verifier.key_id in {s.key_id for s in both.note.verified}


def sign_checkpoint_note(cp: Checkpoint) -> bytes:
    from node.audit.checkpoint import sign_checkpoint

    return sign_checkpoint(cp, [keys.log_signer()])


@PROPS
@given(st.integers(0, 2**63 - 1), st.lists(st.binary(min_size=32, max_size=32), max_size=63),
       checkpoints)
def test_add_checkpoint_body_round_trips(old: int, proof: list[bytes], cp: Checkpoint) -> None:
    req = AddCheckpointRequest(old_size=old, consistency_proof=tuple(proof),
                               checkpoint_note=sign_checkpoint_note(cp))
    assert AddCheckpointRequest.parse(req.to_bytes()) == req
    assert req.origin_hint == cp.origin


@PROPS
@given(KEY_NAMES, st.binary(min_size=32, max_size=32))
def test_vkeys_round_trip(name: str, seed: bytes) -> None:
    from node.audit.note import Ed25519NoteVerifier

    v = Ed25519NoteSigner(name=name, seed=seed).verifier
    assert Ed25519NoteVerifier.from_vkey(v.vkey()) == v
    c = CosignatureV1Signer(name=name, seed=seed).verifier
    assert type(c).from_vkey(c.vkey()) == c


# --- MRZ: a zone built from fields with valid check digits reads back as those fields --------

MRZ_NAME = st.from_regex(r"[A-Z]{1,12}", fullmatch=True)


@PROPS
@given(st.sampled_from(["KAZ", "KGZ", "UZB", "RUS", "D<<"]), MRZ_NAME, MRZ_NAME,
       st.from_regex(r"[A-Z0-9]{1,9}", fullmatch=True), st.dates(), st.dates(),
       st.sampled_from("MF<"))
def test_td3_zone_reads_back(state: str, family: str, given_name: str, number: str,
                             birth: Any, expiry: Any, sex: str) -> None:
    b, e = birth.strftime("%y%m%d"), expiry.strftime("%y%m%d")
    num = number.ljust(9, "<")
    l1 = f"P<{state}{family}<<{given_name}".ljust(44, "<")[:44]
    l2 = f"{num}{check_digit(num)}{state}{b}{check_digit(b)}{sex}{e}{check_digit(e)}"
    l2 += "<" * 14 + "<"
    l2 += str(check_digit(l2[0:10] + l2[13:20] + l2[21:43]))
    try:
        r = parse_mrz(f"{l1}\n{l2}", today=keys.TODAY)
    except InvalidInput as exc:  # dates a passport cannot carry, e.g. 31 Feb never here
        assert exc.reason == "bad_mrz", exc
        return
    assert (r.document.number, r.document.issuing_state) == (number, state.rstrip("<"))
    assert r.person.family_name == family and r.person.given_names == given_name
    assert r.expiry.strftime("%y%m%d") == e and r.person.sex.value == {"<": "X"}.get(sex, sex)
