"""Issue 13 on PostgreSQL: after the retention sweep, neither ``pg_dump`` nor any file of
the database's data directory (heap, indexes, TOAST) nor the WAL holds anything of the
erased records -- their blind indexes, their sealed values, their identifiers -- while
``bxnode audit verify`` passes and the requester's old receipt still proves the exchange by
digest.

A real federation: KAZ-BS on the session's PostgreSQL cluster (field key, blind indexes,
sealed columns), KGZ-BS on SQLCipher, serving each other over mTLS on 127.0.0.1.  A plain
``VACUUM`` leaves dead row versions' bytes in heap and index pages; the sweep's compaction
rewrites the tables it erased from (``VACUUM FULL``) and switches the WAL.  The cluster runs
with ``wal_recycle = off``, as README "Retention" asks of a PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.app import now_ms, open_store
from node.audit.log import MerkleAuditLog
from node.cli.main import main as cli
from node.client.peer import QueryContext
from node.config import load_config
from node.core import envelope as env_mod
from node.core.model import DocumentQuery, LookupAnswer, PartialDate, PersonQuery, QueryKind, Sex
from node.retention.serve import sweep_once
from node.retention.settings import DAY_MS
from node.retention.sweep import RetentionSweep
from node.store._fields import index_text
from node.store.retention import RetentionTables
from node.wire import convert
from node.wire.convert import pb
from tests.federation import Federation, make_federation
from tests.pgcluster import PgCluster, to_postgresql

pytestmark = pytest.mark.integration

CASE = "CASE-PG-ERASE-4711"
CTX = QueryContext(operator="officer-7", purpose="border_check",
                   legal_basis="Agreement on border cooperation, art. 7", case_ref=CASE)
DOC_REF, DOC_NUMBER = "KAZ-ERASE-DOC-0001", "Q9182736"
PERSON_REF = "KAZ-ERASE-WNT-0002"
PERSON = PersonQuery(family_name="Жанабергенов", given_names="Нурсултан",
                     date_of_birth=PartialDate(1977, 5, 9), nationality="KAZ", sex=Sex.MALE)
KEPT = DocumentQuery(number="N0481516", issuing_state="KAZ")  # the demo's, never erased


@pytest.fixture
def pg_fed(tmp_path: Path, pg_cluster: PgCluster, pg_dsn: str) -> Iterator[Federation]:
    fed = make_federation(tmp_path, ("KAZ-BS", "KGZ-BS"))
    kaz = fed.dirs["KAZ-BS"]
    to_postgresql(kaz, dsn=pg_dsn, password=pg_cluster.password, field_key="6b" * 32,
                  listen=None)
    assert cli(["store", "migrate", "--node-dir", str(kaz)]) == 0
    assert cli(["watchlist", "import", str(Path(__file__).parents[2] / "deployments" / "demo"
                                           / "kaz-watchlist.csv"), "--node-dir", str(kaz)]) == 0
    common = ["--action", "arrest", "--expires", "2036-01-01", "--source", "MVD", "--reason",
              "court order 12", "--operator", "kz-0193", "--node-dir", str(kaz)]
    assert cli(["watchlist", "add", "--kind", "document", "--ref", DOC_REF, "--number",
                DOC_NUMBER, "--state", "KAZ", "--type", "P", "--loss-type", "stolen",
                *common]) == 0
    assert cli(["watchlist", "add", "--kind", "person", "--ref", PERSON_REF, "--family",
                PERSON.family_name, "--given", PERSON.given_names, "--dob", "1977-05-09",
                "--nationality", "KAZ", "--sex", "M", *common]) == 0
    with pg_cluster.admin() as conn:  # the server setting README "Retention" asks for
        conn.execute("ALTER SYSTEM SET wal_recycle = off")
        conn.execute("SELECT pg_reload_conf()")
    try:
        for n in fed.dirs:
            fed.start(n)
        yield fed
    finally:
        fed.stop_all()
        with pg_cluster.admin() as conn:
            conn.execute("ALTER SYSTEM RESET wal_recycle")
            conn.execute("SELECT pg_reload_conf()")


def ask(fed: Federation, *items: Any) -> LookupAnswer:
    client = fed.client("KGZ-BS")
    try:
        kind = QueryKind.BATCH if len(items) > 1 else items[0].kind
        return client.lookup("KAZ-BS", CTX, kind, list(items))
    finally:
        client.close()


def _stored(db: Any, answer: LookupAnswer) -> dict[str, bytes]:
    """Every value the database holds of what the sweep will erase, as the server stores it:
    blind indexes (text), sealed columns, envelopes, audit bodies, salts and search fields."""
    c = db.codec
    ix_doc = index_text(c, "documents.number", DOC_NUMBER)
    out: dict[str, bytes] = {
        "document number index": ix_doc.encode(),
        "document owner index": index_text(c, "watchlist.owner_ref", DOC_REF).encode(),
        "person owner index": index_text(c, "watchlist.owner_ref", PERSON_REF).encode()}
    for label, text in (("document number", DOC_NUMBER), ("document ref", DOC_REF),
                        ("person ref", PERSON_REF), ("case", CASE),
                        ("family name", PERSON.family_name), ("latin name", "ZHANABERGENOV")):
        out[label] = text.encode()
    for i, (record,) in enumerate(db.query("SELECT record FROM alerts_withdrawn")):
        out[f"withdrawn record {i}"] = bytes(record)
    for i, (req, resp) in enumerate(db.query(
            "SELECT request_env, response_env FROM receipts WHERE request_digest=?",
            (answer.request_digest,))):
        out[f"receipt request {i}"], out[f"receipt response {i}"] = bytes(req), bytes(resp)
    for seq, salt, body, case_ref in db.query(
            "SELECT seq, salt, body, case_ref FROM audit_entries WHERE case_ref IS NOT NULL"):
        out[f"audit {seq} salt"], out[f"audit {seq} body"] = bytes(salt), bytes(body)
        out[f"audit {seq} case"] = str(case_ref).encode()
    return {k: v for k, v in out.items() if len(v) >= 8}


def _found(haystack: bytes, needles: dict[str, bytes]) -> list[str]:
    return sorted(k for k, v in needles.items() if v in haystack or v.hex().encode() in haystack)


def test_after_the_sweep_no_file_of_the_cluster_holds_an_erased_record(
        pg_fed: Federation, pg_cluster: PgCluster, pg_dsn: str) -> None:
    fed = pg_fed
    answer = ask(fed, DocumentQuery(number=DOC_NUMBER, issuing_state="KAZ"), PERSON, KEPT)
    assert [(r.outcome.value, r.reference) for r in answer.results] == [
        ("hit", DOC_REF), ("hit", PERSON_REF), ("hit", "KAZ-SLTD-2026-000117")]
    for ref in (DOC_REF, PERSON_REF):
        assert cli(["watchlist", "withdraw", ref, "--reason", "lifted", "--operator",
                    "kz-0193", "--node-dir", str(fed.dirs["KAZ-BS"])]) == 0
    node = fed.nodes["KAZ-BS"]
    db = node.runtime.store
    needles = _stored(db, answer)
    assert {"withdrawn record 1", "receipt request 0", "receipt response 0"} <= set(needles)
    assert sum(k.endswith(" body") for k in needles) == 1  # the owner's lookup entry
    dbname = pg_dsn.split("dbname=")[1].split()[0]
    with pg_cluster.admin(dbname) as conn:
        oid = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()"
                           ).fetchone()[0]  # type: ignore[index]
        conn.execute("CHECKPOINT")  # the records are on disk, as after years of service
    heap = pg_cluster.data / "base" / str(oid)
    before = b"".join(f.read_bytes() for f in heap.rglob("*") if f.is_file())
    assert {"document number index", "receipt request 0", "withdrawn record 0"} <= set(
        _found(before, needles))  # the search finds them where they are

    later = now_ms() + 1200 * DAY_MS  # past every default retention
    sweep = RetentionSweep(db=db, audit=node.runtime.responder.audit_log,
                           settings=node.cfg.retention, clock_ms=lambda: later)
    assert node.server.writer is not None
    report = asyncio.run_coroutine_threadsafe(sweep_once(sweep, node.server.writer),
                                              node.loop).result(60)
    assert report.erased["withdrawn_alerts"] == 2 and report.erased["receipts"] >= 1
    assert report.compacted == (
        "vacuum full: alert_meta, alerts_withdrawn, audit_entries, documents, persons, "
        "receipts; wal: switched; the segments that logged the erased rows are removed")

    dump = subprocess.run([str(pg_cluster.tool("pg_dump")), "-h", str(pg_cluster.socket_dir),
                           "-p", str(pg_cluster.port), "-U", pg_cluster.superuser, dbname],
                          capture_output=True, check=True, timeout=60).stdout
    assert b"CREATE TABLE public.receipts" in dump and b"COPY public.documents" in dump
    assert _found(dump, needles) == []
    files = [f for sub in (heap, pg_cluster.data / "pg_wal", pg_cluster.data / "global")
             for f in sub.rglob("*") if f.is_file()]
    assert len(files) > 50
    for f in files:
        assert _found(f.read_bytes(), needles) == [], f

    # The log still verifies; the owner kept the exchange's two digests and its leaf.
    assert cli(["audit", "verify", "--node-dir", str(fed.dirs["KAZ-BS"])]) == 0
    [head] = RetentionTables(db).receipts_for(request_digest=answer.request_digest)
    assert head.erased_ms == later and head.request_env == b"" == head.response_env
    entry = MerkleAuditLog(store=db).entry(answer.audit_seq)
    assert entry is not None and entry.body is None and entry.leaf
    # The requester's receipt (its own retention has not run) proves the exchange by digest.
    kgz = open_store(load_config(fed.dirs["KGZ-BS"]))
    try:
        [mine] = [r for r in kgz.receipt_store.all(direction="sent")  # type: ignore[attr-defined]
                  if r.request_digest == answer.request_digest]
    finally:
        kgz.close()
    held = convert.envelope_from_pb(pb.SignedEnvelope.FromString(mine.response_env))
    client = fed.client("KGZ-BS", store=False)
    try:
        key = client._directory.member("KAZ-BS").keys[0].public_key
    finally:
        client.close()
    env_mod.verify(held, key, expected_type=env_mod.RESPONSE_TYPE)
    assert env_mod.digest(held) == head.response_digest
    assert convert.decode_response(held.payload).audit_seq == answer.audit_seq
    # What was not erased still answers, from the rewritten tables.
    assert [(r.outcome.value, r.reference) for r in ask(fed, KEPT).results] == [
        ("hit", "KAZ-SLTD-2026-000117")]
