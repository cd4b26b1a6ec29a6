"""The requester's side of receipts with proofs: fetch, verify and keep an inclusion proof.

After an exchange, the requester asks the responder (``AuditService.GetInclusionProof``, a
signed request like any other) for the proof that the responder logged it.  The proof
bundle is verified against the members file (:func:`node.audit.bundle.verify_bundle`: the
responder's checkpoint signature, the entry's leaf, the inclusion proof) and kept beside the
receipt in ``receipt_proofs``: later, the requester can hand it to an auditor
(``bxnode audit verify-bundle``) to prove the responder logged the exchange.  The SQL is in
:mod:`node.store.receipts`.
"""

from __future__ import annotations

from typing import Any

from node.audit.bundle import BundleError, BundleReport, verify_bundle
from node.client.peer import PeerClient, QueryContext
from node.store.db import Database
from node.store.receipts import RECEIPT_PROOF_SCHEMA, ReceiptTables
from node.wire import audit as wire

__all__ = ["RECEIPT_PROOF_SCHEMA", "fetch_inclusion_proof", "stored_proof"]

METHOD = "/bxnode.v1.AuditService/GetInclusionProof"


def fetch_inclusion_proof(client: PeerClient, peer: str, ctx: QueryContext,
                          request_digest: bytes, *, store: Database | None, now_ms: int,
                          directory: Any) -> BundleReport:
    """Ask ``peer`` for the proof of its audit entry of our request ``request_digest``."""
    request = client.sign(wire.PROOF_REQUEST_TYPE, wire.encode_proof_request(
        wire.ProofRequest(client.header(ctx), request_digest)))
    response = client.call(peer, METHOD, request, request_cls=wire.apb.GetInclusionProofRequest,
                           response_cls=wire.apb.GetInclusionProofResponse,
                           response_type=wire.PROOF_RESPONSE_TYPE)
    bundle = wire.decode_proof_answer(response.payload)
    report = verify_bundle(bundle, directory=directory, expect_log=peer)
    if report.entry is None or report.entry.get("request_digest") != request_digest.hex():
        raise BundleError("the proven entry is not the one of our request",
                          reason="wrong_entry")
    if store is not None:
        tables = ReceiptTables(store)
        tables.ensure_schema()
        with store.transaction():
            tables.put_proof(request_digest, peer=peer, bundle=bundle, fetched_ms=now_ms)
    return report


def stored_proof(store: Database, request_digest: bytes) -> bytes | None:
    tables = ReceiptTables(store)
    tables.ensure_schema()
    return tables.proof(request_digest)
