"""Signed lookups completed in one group-commit batch, as ``bxnode serve`` runs them, on the
real runtime and SQLCipher store: with the batch's nonces, usage, receipts and audit
entries written once per table at commit (node/store/deferred.py), a nonce replayed
*within* the batch is still refused, the daily quota is exact within and across batches,
every request has its one audit entry and receipt, and the log verifies."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from node.app import NodeRuntime
from node.client.peer import PeerClient, QueryContext
from node.config import load_config
from node.core.model import DocumentQuery, QueryKind
from node.federation.members_file import load_members
from node.federation.pki import load_signing_key
from node.store.sqlcipher import Store
from tests.federation import make_federation, sample_policy

QUOTA = 3


def test_replays_and_the_quota_are_exact_within_one_batch(tmp_path: Path) -> None:
    data = sample_policy()
    for ag in data["bxnode"]["agreements"]:
        if (ag["requester"], ag["responder"]) == ("KGZ-BS", "KAZ-BS"):
            ag["daily_quota"] = QUOTA
    fed = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"), policy_data=data)
    kaz, kgz = fed.dirs["KAZ-BS"], fed.dirs["KGZ-BS"]
    client = PeerClient(node_id="KGZ-BS", signing_key=load_signing_key(kgz / "signing.key"),
                        directory=load_members(fed.root / "members.json"), tls=None,
                        store=None, clock_ms=lambda: time.time_ns() // 1_000_000,
                        dev_plaintext=True)
    ctx = QueryContext(operator="officer-7", purpose="border_check", legal_basis="test",
                       case_ref="T-1")
    fp = hashlib.sha256(x509.load_pem_x509_certificate(
        (kgz / "tls.crt").read_bytes()).public_bytes(serialization.Encoding.DER)).hexdigest()
    a, b, c, d, e = (client.build(ctx, QueryKind.DOCUMENT, [DocumentQuery(
        number="N0481516", issuing_state="KAZ")]) for _ in range(5))
    rt = NodeRuntime.load(load_config(kaz))
    try:
        responder, handler, store = rt.responder, rt.lookup, rt.store
        assert isinstance(store, Store), store  # the federation's nodes are SQLCipher
        log = responder.audit_log

        def batch(envs: list[Any]) -> list[str]:
            with store.transaction():  # the batch: each request's unit of work nests in it
                exs = [responder.complete(responder.predecide(responder.prepare(
                    handler, env, tls_fingerprint=fp))) for env in envs]
            return [ex.error.reason if ex.error else "answered" for ex in exs]

        before = log.next_seq()
        assert batch([a, a, b, c, b, d]) == [
            "answered", "replayed_nonce", "answered", "answered", "replayed_nonce",
            "quota_exhausted"]
        assert batch([c, e]) == ["replayed_nonce", "quota_exhausted"]
        assert store.items_today("KGZ-BS", time.strftime("%Y-%m-%d", time.gmtime())) == QUOTA
        entries = [log.entry(s) for s in range(before, before + 8)]
        assert all(x is not None for x in entries)
        assert log.next_seq() == before + 8  # one entry per request, no more
        outcomes = [r.get("outcome") for r in log.bodies()][-8:]
        assert outcomes == ["answered", "rejected", "answered", "answered", "rejected",
                            "denied", "rejected", "denied"]
        # every verified request has its receipt (answer or signed refusal), in order
        assert len([r for r in store.receipts(direction="received")]) == 8
        assert store.query("SELECT count(*) FROM nonces WHERE node_id='KGZ-BS'") == [(5,)]
        report = log.verify()
        assert report.ok and report.checkpoint_size == report.entries
    finally:
        rt.close()
