"""Receipts' SQL outside the exchange ledger: inclusion proofs kept beside our receipts
(:mod:`node.audit.receipts`), and the receipts of one received request (the follow-up desk
finds the HIT it answered there, :func:`node.followup.owner.locate_hit`).

A proof bundle holds the responder's checkpoint, one audit entry and hashes: no personal
identifier, so it is stored as is.  Receipt envelopes (signed requests and answers) are
sealed by the receipt store of the exchange (``node/store/exchange.py``, kinds
``receipts.request_env`` / ``receipts.response_env``); they are opened here with the same
kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from node.store.db import Database
from node.store.schema import register

__all__ = ["RECEIPT_PROOF_SCHEMA", "RECEIPT_PROOF_SCHEMA_NAME", "ReceiptTables",
           "ReceivedEnvelopes"]

RECEIPT_PROOF_SCHEMA_NAME: Final = "receipt_proofs"
RECEIPT_PROOF_SCHEMA: Final = register(RECEIPT_PROOF_SCHEMA_NAME, 1, """
CREATE TABLE IF NOT EXISTS receipt_proofs (
    request_digest BLOB PRIMARY KEY, peer TEXT NOT NULL, bundle BLOB NOT NULL,
    fetched_ms INTEGER NOT NULL
);
""").ddl

#: The codec kinds the exchange's receipt store seals envelopes under.
REQUEST_ENV_KIND: Final = "receipts.request_env"
RESPONSE_ENV_KIND: Final = "receipts.response_env"


@dataclass(frozen=True, slots=True)
class ReceivedEnvelopes:
    """The signed request we received and the signed answer we gave, as sent."""

    request_env: bytes
    response_env: bytes


class ReceiptTables:
    """Receipt proofs, and lookups of stored receipts, over one :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        self.db.ensure_schema(RECEIPT_PROOF_SCHEMA_NAME, RECEIPT_PROOF_SCHEMA)

    # --- proofs -----------------------------------------------------------------------------

    def put_proof(self, request_digest: bytes, *, peer: str, bundle: bytes,
                  fetched_ms: int) -> None:
        """Keep the proof bundle of our request ``request_digest``, replacing an older one."""
        self.db.execute(
            "INSERT INTO receipt_proofs (request_digest, peer, bundle, fetched_ms) "
            "VALUES (?,?,?,?) ON CONFLICT (request_digest) DO UPDATE SET "
            "peer = excluded.peer, bundle = excluded.bundle, fetched_ms = excluded.fetched_ms",
            (request_digest, peer, bundle, fetched_ms))

    def proof(self, request_digest: bytes) -> bytes | None:
        row = self.db.query_one("SELECT bundle FROM receipt_proofs WHERE request_digest=?",
                                (request_digest,))
        return None if row is None else bytes(row[0])

    # --- receipts ---------------------------------------------------------------------------

    def received(self, *, peer: str, request_digest: bytes) -> list[ReceivedEnvelopes]:
        """The receipts of requests ``peer`` sent us with this digest, oldest first."""
        codec = self.db.codec
        return [ReceivedEnvelopes(codec.open(REQUEST_ENV_KIND, bytes(rq)),
                                  codec.open(RESPONSE_ENV_KIND, bytes(rs)))
                for rq, rs in self.db.query(
                    "SELECT request_env, response_env FROM receipts WHERE direction=? "
                    "AND peer=? AND request_digest=? ORDER BY id",
                    ("received", peer, request_digest))]
