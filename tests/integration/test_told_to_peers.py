"""A peer is told only reasons a peer may see; the node's own trouble is named to it no
further (node/core/errors.py ``for_peer``).

A real KAZ-BS on PostgreSQL, whose database administrator copied one document's sealed
record over another's: the lookup of the second document fails ``DATA_LOSS/
sealed_field_misplaced`` inside the node.  Before, the peer was sent that reason (and
the message naming the fault) in ``bxnode-reason`` and in the signed refusal: an
operator's code on the wire, and a sign that KAZ-BS holds a row for the number asked.
Now it is told ``INTERNAL/internal_error``, signed; the audit entry keeps the real reason
beside what was told.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.audit.log import MerkleAuditLog
from node.cli.main import main as bxnode
from node.config import load_config
from node.core.errors import RemoteError
from node.store._fields import index_text
from node.store.open import open_database
from tests.federation import DEMO, WATCHLISTS, Federation, ask_document, make_federation
from tests.pgcluster import PgCluster, node_on_postgresql

pytestmark = pytest.mark.integration

MOVED, OVER = "N1122334", "N0481516"  # two live KAZ-issued documents of the demo watchlist


@pytest.fixture
def fed(tmp_path: Path, pg_cluster: PgCluster, pg_dsn: str) -> Iterator[Federation]:
    fed = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"))
    node_on_postgresql(fed.dirs["KAZ-BS"], pg_cluster, pg_dsn,
                       watchlist=DEMO / WATCHLISTS["KAZ-BS"])
    fed.start("KAZ-BS")
    try:
        yield fed
    finally:
        fed.stop_all()


def _copy_sealed_record(kaz: Path) -> None:
    """As a database administrator who can read no record could: the sealed bytes of
    MOVED's row written over OVER's."""
    db = open_database(load_config(kaz))
    try:
        with db.transaction():
            src, dst = (index_text(db.codec, "documents.number", n) for n in (MOVED, OVER))
            row = db.query_one("SELECT sealed FROM documents WHERE number=?", (src,))
            assert row is not None, MOVED
            (blob,) = row
            assert db.execute("UPDATE documents SET sealed=? WHERE number=?", (blob, dst)) == 1
    finally:
        db.close()


def _entries(kaz: Path) -> list[dict[str, Any]]:
    db = open_database(load_config(kaz))
    try:
        return list(MerkleAuditLog(store=db).bodies())
    finally:
        db.close()


def test_a_sealed_field_fault_is_told_to_the_peer_as_internal_error(fed: Federation) -> None:
    kaz = fed.dirs["KAZ-BS"]
    assert ask_document(fed, "KGZ-BS", "KAZ-BS", OVER).hits == 1  # before: answered
    _copy_sealed_record(kaz)
    with pytest.raises(RemoteError) as err:
        ask_document(fed, "KGZ-BS", "KAZ-BS", OVER)
    assert (err.value.status, err.value.reason) == ("INTERNAL", "internal_error")
    assert err.value.refusal_verified is True  # the signed refusal says the same
    assert "sealed" not in str(err.value) and "row" not in str(err.value)
    assert ask_document(fed, "KGZ-BS", "KAZ-BS", MOVED).hits == 1  # the other row still answers
    refused = [e for e in _entries(kaz) if e.get("outcome") == "rejected"]
    assert [(e["status"], e["reason"], e["told_status"], e["told_reason"])
            for e in refused] == [
        ("DATA_LOSS", "sealed_field_misplaced", "INTERNAL", "internal_error")]
    assert bxnode(["audit", "verify", "--node-dir", str(kaz)]) == 0
