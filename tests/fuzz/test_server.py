"""A real node under a few hundred random and mutated calls on every signed method, over mTLS.

Properties (issue 12 §3): the server never crashes (health still SERVING, a valid lookup
still answered afterwards); every call gets a status, and every refusal a ``bxnode-reason``;
the audit log holds exactly one entry per call, and the refusals' reasons are the ones
audited.  Inputs: corpus cases of the matching payload type signed correctly by KGZ-BS
(so they get past the signature to the parser), fresh valid requests, byte-level
mutations of both, and the envelope corpus as it is.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from node.app import now_ms
from node.core import envelope as env_mod
from node.core.model import DocumentQuery, LookupRequest, QueryKind, RequestHeader
from node.crossings.model import CrossingQuestion, CrossingRequest, Direction
from node.server.grpc_server import REASON_KEY
from node.wire import audit as wire_audit
from node.wire import convert
from node.wire import crossings as wire_x
from node.wire.convert import pb
from node.wire.trailers import trailers
from tests.federation import CTX, Federation, make_federation
from tests.fuzz import keys
from tests.fuzz.seeds import mutate_bytes
from tests.grpc_clients import health_stub

pytestmark = pytest.mark.integration

CALLS = 300
#: Signed unary methods (node/server/assemble.py): path, payload type, corpus of payloads.
METHODS = {
    "/bxnode.v1.NodeService/Lookup": (env_mod.REQUEST_TYPE, "lookup_request"),
    "/bxnode.v1.CrossingService/ConfirmCrossing": (wire_x.CROSSING_REQUEST_TYPE,
                                                   "crossing_request"),
    "/bxnode.v1.FollowUpService/FileFollowUp": (wire_x.FOLLOWUP_FILE_TYPE, "followup_file"),
    "/bxnode.v1.FollowUpService/GetFollowUp": (wire_x.FOLLOWUP_GET_TYPE, "followup_get"),
    "/bxnode.v1.AuditService/GetInclusionProof": (wire_audit.PROOF_REQUEST_TYPE, "proof_rpc"),
}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """KAZ-BS serving; KGZ-BS only initialised, so its keys and certificate can call."""
    fed = make_federation(tmp_path_factory.mktemp("fuzz-fed"), node_ids=("KAZ-BS", "KGZ-BS"))
    fed.start("KAZ-BS")
    yield fed
    fed.stop_all()


def _channel(fed: Federation, as_node: str = "KGZ-BS") -> grpc.Channel:
    d: Path = fed.dirs[as_node]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{fed.ports['KAZ-BS']}", creds)


def _header() -> RequestHeader:
    return RequestHeader(requester="KGZ-BS", key_id=env_mod.key_id_for(keys.public_key("kgz")),
                         operator="officer-7", purpose="border_check", legal_basis="art. 7",
                         case_ref="CASE-1", issued_at_ms=now_ms(), nonce=os.urandom(24))


def _fresh(method: str) -> bytes:
    """A valid payload for ``method``, signed now."""
    doc = DocumentQuery(number="N0481516", issuing_state="KAZ")
    if method.endswith("/Lookup"):
        return convert.encode_request(LookupRequest(header=_header(), kind=QueryKind.DOCUMENT,
                                                    items=(doc,)))
    if method.endswith("/ConfirmCrossing"):
        t = now_ms()
        return wire_x.encode_crossing_request(CrossingRequest(header=_header(), questions=(
            CrossingQuestion(subject=doc, direction=Direction.EXIT, window_start_ms=t - 3600_000,
                             window_end_ms=t, bcp="KAZ-KORDAI"),)))
    if method.endswith("/FileFollowUp"):
        return wire_x.encode_followup_file(wire_x.FollowUpFile(
            header=_header(), hit_request_digest=os.urandom(32), hit_item_index=0,
            hit_reference="", fields=("name",)))
    if method.endswith("/GetFollowUp"):
        return wire_x.encode_followup_get(wire_x.FollowUpGet(header=_header(),
                                                             followup_id="fu-1"))
    return wire_audit.encode_proof_request(wire_audit.ProofRequest(_header(), os.urandom(32)))


def _wrap(payload_type: str, payload: bytes) -> bytes:
    env = env_mod.sign(payload_type=payload_type, payload=payload, signer="KGZ-BS",
                       key=keys.signing_key("kgz"))
    return bytes(pb.LookupRequest(envelope=convert.envelope_to_pb(env)).SerializeToString())


def _inputs(rng: random.Random) -> list[tuple[str, bytes]]:
    envelopes = [p.read_bytes() for p in sorted((keys.CORPUS / "envelope").iterdir())]
    out = []
    for i in range(CALLS):
        method = rng.choice(list(METHODS))
        ptype, corpus = METHODS[method]
        r = i % 5
        if r == 0:  # the envelope corpus as it is (mostly stale, forged or malformed)
            raw = rng.choice(envelopes)
        elif r == 1:  # a corpus payload, signed: past the signature, into the parser
            raw = _wrap(ptype, rng.choice(sorted((keys.CORPUS / corpus).iterdir()))
                        .read_bytes() or b"\x00")
        elif r == 2:  # a fresh, valid request
            raw = _wrap(ptype, _fresh(method))
        elif r == 3:  # a fresh request, mutated after signing
            raw = mutate_bytes(_wrap(ptype, _fresh(method)), rng, envelopes)
        else:  # random bytes
            raw = rng.randbytes(rng.randrange(200))
        out.append((method, raw))
    return out


def _healthy(ch: grpc.Channel) -> bool:
    resp = health_stub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)


def test_random_and_mutated_calls_each_get_a_status_a_reason_and_one_audit_entry(
        node: Federation) -> None:
    before = len(node.audit("KAZ-BS"))
    inputs = _inputs(random.Random(12))
    refused: Counter[str] = Counter()
    answered = 0
    with _channel(node) as ch:
        assert _healthy(ch)
        for method, raw in inputs:
            call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(method)
            try:
                call(raw, timeout=20)
                answered += 1
            except grpc.RpcError as err:
                code = err.code()
                assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED,
                                    grpc.StatusCode.UNAVAILABLE), (method, code, err)
                reason = str(trailers(err).get(REASON_KEY, ""))
                assert reason and reason != "internal_error", (method, code, raw[:40])
                refused[reason] += 1
        assert _healthy(ch)
    entries = node.audit("KAZ-BS")[before:]
    assert len(entries) == len(inputs), "one audit entry per call"
    audited = Counter(str(e.get("reason")) for e in entries if e.get("outcome") != "answered")
    assert audited == refused, "the refusals audited are the refusals sent"
    assert answered > 0 and len(refused) > 5  # the mix reached past the parsers, and refusals
    client = node.client("KGZ-BS")
    try:
        ans = client.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT,
                            [DocumentQuery(number="N0481516", issuing_state="KAZ")])
    finally:
        client.close()
    assert ans.responder == "KAZ-BS" and ans.results[0].outcome.value == "hit"
