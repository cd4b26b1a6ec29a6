"""Build the gRPC server for a node with every service it offers.

Each capability adds its signed methods and extra handlers here, in one place,
so that ``bxnode serve``, the tests and the benchmarks run the same server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from node.app import NodeRuntime, now_ms
from node.backup.serve import HoldWatch
from node.crossings.extension import NodeServerWithLocal, crossings_extension
from node.federation.pki import TlsMaterial
from node.retention.serve import sweep_job
from node.retention.sweep import RetentionSweep
from node.server.audit_services import make_audit_services
from node.server.db_limits import DbTokens
from node.server.group_commit import BatchWriter
from node.server.grpc_server import NodeServer, lookup_method
from node.server.limits import BucketTable
from node.server.registry_service import registry_parts

__all__ = ["build_server"]


def build_server(rt: NodeRuntime, *, tls: TlsMaterial | None,
                 dev_plaintext: bool = False, primary: bool = True,
                 retention_clock_ms: Callable[[], int] = now_ms,
                 buckets: BucketTable | None = None) -> NodeServer:
    """The node's server.  ``primary=False`` (a further worker of ``serve --workers``):
    the same peer services, but no local listener and no background jobs of its own — it
    follows the registry versions the primary worker applies.  ``retention_clock_ms``:
    the clock the erasure sweep and its schedule read (tests move it).  ``buckets``: the
    per-peer limits' table the node's worker processes share (node/server/shared_limits.py;
    None: this process's own)."""
    audit = rt.cfg.audit
    writer = BatchWriter(store=rt.store, batch_max=audit.batch_max, batch_ms=audit.batch_ms,
                         metrics=rt.metrics)
    aud = make_audit_services(  # issue 4: inclusion proofs, witnessing, auditor access
        responder=rt.responder, store=rt.store, directory=rt.directory, cfg=rt.cfg,
        signing_key=rt.signing_key, writer=writer, tls=tls, clock_ms=now_ms,
        metrics=rt.metrics)
    ext = crossings_extension(rt, dev_plaintext=dev_plaintext)  # issue 3: crossings, follow-ups
    reg = registry_parts(rt, dev_plaintext=dev_plaintext)  # issue 5: the federation registry
    sweep = RetentionSweep(db=rt.store, audit=rt.responder.audit_log,  # issue 13: retention
                           settings=rt.cfg.retention, clock_ms=retention_clock_ms)
    erase = sweep_job(sweep, writer, interval_s=rt.cfg.retention.sweep_interval_s,
                      metrics=rt.metrics)
    hold = HoldWatch(store=rt.store, writer=writer)  # issue 17: a restored log on hold
    shared: DbTokens | None = None
    if rt.store.dialect == "postgresql":  # replicas: a peer's tokens and slots are the node's
        shared = DbTokens(connect=rt.store.pool.side_connection)  # type: ignore[attr-defined]
    # every process is a replica of its own in peer_slots: each renews its leases
    leases = () if shared is None else (shared.keep_slots,)
    background = (*aud.background(), *(reg.background if reg else ()), erase, hold.run,
                  *leases)
    if not primary:
        ext = dataclasses.replace(ext, local=None)
        background = (*((reg.follower,) if reg is not None and reg.follower is not None
                        else ()), hold.run, *leases)
    server = NodeServerWithLocal(
        ext, responder=rt.responder, tls=tls, dev_plaintext=dev_plaintext, writer=writer,
        signed_methods=(lookup_method(rt.lookup), *aud.signed_methods()),
        extra_handlers=(*aud.handlers(), *(reg.handlers if reg else ())),
        extra_service_names=(*aud.service_names(), *(reg.service_names if reg else ())),
        background=background, processing_slots=rt.cfg.processing_slots,
        max_concurrent_streams=rt.cfg.max_concurrent_streams,
        rate_wait_ms=rt.cfg.rate_wait_ms, buckets=buckets)
    server.shared_tokens = shared
    # the answers' reads out of the writers' lock where another writer takes it meanwhile
    server.reads_before_lock = buckets is not None or rt.store.dialect == "postgresql"
    hold.bind(server)
    aud.bind(server)  # witness and auditor calls pass the same per-peer limits
    return reg.bind(server) if reg else server
