"""Receipts with proofs, cross-node witnessing and auditor-only access, between real nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from node.app import NodeRuntime, now_ms, open_store
from node.audit.bundle import verify_bundle
from node.audit.checkpoint import Checkpoint, sign_checkpoint
from node.audit.note import Ed25519NoteSigner
from node.audit.receipts import fetch_inclusion_proof, stored_proof
from node.audit.witnessing import WitnessDesk
from node.config import load_config
from node.core import envelope as env_mod
from node.core.errors import RemoteError
from node.core.model import DocumentQuery, QueryKind
from node.federation.members_file import load_members
from node.server.audit_services import AuditServices, make_audit_services, witness_once
from node.wire.trailers import trailers
from tests.federation import CTX, Federation, file_signing_key, make_federation


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    f = make_federation(tmp_path_factory.mktemp("auditfed"))
    for n in f.dirs:
        f.start(n)
    yield f
    f.stop_all()


def services(fed: Federation, node_id: str) -> AuditServices:
    node = fed.nodes[node_id]
    rt = node.runtime
    return make_audit_services(responder=rt.responder, store=rt.store, directory=rt.directory,
                               cfg=rt.cfg,
                               signing_key=rt.signing_key, writer=node.server.writer,
                               tls=NodeRuntime.tls(rt.cfg), clock_ms=now_ms)


def on_loop(fed: Federation, node_id: str, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, fed.nodes[node_id].loop).result(30)


def _ask(fed: Federation, client: Any) -> bytes:
    request = client.build(CTX, QueryKind.DOCUMENT,
                           [DocumentQuery(number="N1122334", issuing_state="KAZ")])
    client.send("KAZ-BS", request, expected_items=1)
    return env_mod.digest(request)


def test_requester_gets_and_keeps_a_proof_of_its_own_entry(fed: Federation) -> None:
    client = fed.client("KGZ-BS")
    directory = load_members(load_config(fed.dirs["KGZ-BS"]).members)
    try:
        digest = _ask(fed, client)
        report = fetch_inclusion_proof(client, "KAZ-BS", CTX, digest, store=client._store,
                                       now_ms=now_ms(), directory=directory)
        assert report.entry is not None and report.entry["requester"] == "KGZ-BS"
        assert report.entry["request_digest"] == digest.hex()
        bundle = stored_proof(client._store, digest)  # type: ignore[arg-type]
        assert bundle is not None
        assert verify_bundle(bundle, directory=directory).seq == report.seq
    finally:
        client._store.close()  # type: ignore[union-attr]
        client.close()
    # another peer may not fetch KGZ's proof
    other = fed.client("UZB-BS")
    try:
        with pytest.raises(RemoteError) as err:
            fetch_inclusion_proof(other, "KAZ-BS", CTX, digest, store=None, now_ms=now_ms(),
                                  directory=directory)
        assert (err.value.status, err.value.reason) == ("PERMISSION_DENIED", "not_your_entry")
    finally:
        other._store.close()  # type: ignore[union-attr]
        other.close()


def test_witnessing_collects_cosignatures_and_follows_growth(fed: Federation) -> None:
    svc = services(fed, "KAZ-BS")
    assert on_loop(fed, "KAZ-BS", witness_once(svc)) == {"KGZ-BS": "cosigned",
                                                        "UZB-BS": "cosigned"}
    head = svc.log.latest_head()
    assert head is not None and len(head.cosignatures) == 2 and svc.witnessed(head.size)
    client = fed.client("KGZ-BS")
    try:
        _ask(fed, client)  # the log grows; the next round sends a consistency proof
    finally:
        client._store.close()  # type: ignore[union-attr]
        client.close()
    assert on_loop(fed, "KAZ-BS", witness_once(svc))["KGZ-BS"] == "cosigned"
    assert svc.desk.witnessed_size("KGZ-BS") == svc.log.latest_head().size  # type: ignore[union-attr]


def test_witness_refuses_an_inconsistent_checkpoint_and_keeps_evidence(fed: Federation) -> None:
    svc = services(fed, "KAZ-BS")
    on_loop(fed, "KAZ-BS", witness_once(svc))
    size = svc.desk.witnessed_size("UZB-BS")
    assert size > 0
    # KAZ's key signs a different root for the same size: a fork
    seed = bytes(file_signing_key(load_config(fed.dirs["KAZ-BS"])))
    forged = sign_checkpoint(Checkpoint("bxnode/KAZ-BS", size, b"\x42" * 32),
                             [Ed25519NoteSigner(name="bxnode/KAZ-BS", seed=seed)])

    async def send_forged() -> Any:
        from node.audit.checkpoint_witness import AddCheckpointRequest
        from node.server.audit_services import _grpc_sender

        return await _grpc_sender(svc)("UZB-BS", AddCheckpointRequest(size, (), forged).to_bytes())

    with pytest.raises(RuntimeError, match="FAILED_PRECONDITION: inconsistent_checkpoint"):
        on_loop(fed, "KAZ-BS", send_forged())
    cfg = load_config(fed.dirs["UZB-BS"])
    store = open_store(cfg)
    try:
        desk = WitnessDesk(store=store, node_id="UZB-BS", signing_key=file_signing_key(cfg),
                          directory=load_members(cfg.members))
        evidence = desk.evidence()
        assert evidence and evidence[-1]["reason"] == "inconsistent_checkpoint"
        assert evidence[-1]["submitted_note"] == forged.decode()
        assert desk.status(our_size=0).alert
        assert desk.status(our_size=0).witnessed_logs["bxnode/KAZ-BS"] == size
    finally:
        store.close()
    e = [x for x in fed.audit("UZB-BS") if x.get("event") == "witness_refused"][-1]
    assert (e["requester"], e["action"], e["reason"], e["status"]) == (
        "KAZ-BS", "add_checkpoint", "inconsistent_checkpoint", "FAILED_PRECONDITION")


def _refused(fed: Federation, as_node: str, method: str, request: Any,
             response_cls: Any) -> tuple[grpc.StatusCode, str]:
    d: Path = fed.dirs[as_node]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{fed.ports['KAZ-BS']}", creds) as ch:
        call = ch.unary_unary(method, request_serializer=type(request).SerializeToString,
                              response_deserializer=response_cls.FromString)
        with pytest.raises(grpc.RpcError) as err:
            call(request, timeout=10)
    return err.value.code(), str(trailers(err.value)["bxnode-reason"])


@pytest.mark.parametrize(("method", "action"), [("SearchEntries", "search"),
                                                ("GetProofBundle", "proof_bundle")])
def test_auditor_service_refuses_nodes_and_audits_it(fed: Federation, method: str,
                                                     action: str) -> None:
    from node.wire.audit import apb

    request = (apb.SearchEntriesRequest() if method == "SearchEntries"
               else apb.GetProofBundleRequest(seq=1))
    response = (apb.SearchEntriesResponse if method == "SearchEntries"
                else apb.GetProofBundleResponse)
    before = len(fed.audit("KAZ-BS"))
    assert _refused(fed, "KGZ-BS", f"/bxnode.v1.AuditorService/{method}", request,
                    response) == (grpc.StatusCode.PERMISSION_DENIED, "not_an_auditor")
    entries = fed.audit("KAZ-BS")
    assert len(entries) == before + 1
    e = entries[-1]
    assert (e["event"], e["requester"], e["action"], e["reason"], e["outcome"]) == (
        "auditor_access_refused", "KGZ-BS", action, "not_an_auditor", "rejected")


def test_witness_service_audits_a_malformed_submission(fed: Federation) -> None:
    """A witness's refusals are in its log too, naming the submitter."""
    from node.wire.audit import apb

    before = len(fed.audit("KAZ-BS"))
    assert _refused(fed, "KGZ-BS", "/bxnode.v1.WitnessService/AddCheckpoint",
                    apb.AddCheckpointRequest(body=b"garbage"), apb.AddCheckpointResponse) == (
        grpc.StatusCode.INVALID_ARGUMENT, "bad_witness_request")
    entries = fed.audit("KAZ-BS")
    assert len(entries) == before + 1
    e = entries[-1]
    assert (e["event"], e["requester"], e["action"], e["reason"]) == (
        "witness_refused", "KGZ-BS", "add_checkpoint", "bad_witness_request")


def _refused_raw(fed: Federation, as_node: str, method: str, raw: bytes
                 ) -> tuple[grpc.StatusCode, str, str]:
    d: Path = fed.dirs[as_node]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{fed.ports['KAZ-BS']}", creds) as ch:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(method)
        with pytest.raises(grpc.RpcError) as err:
            call(raw, timeout=10)
    return (err.value.code(), str(trailers(err.value)["bxnode-reason"]),
            str(err.value.details()))


_AUDIT_METHODS = [
    ("WitnessService/AddCheckpoint", "witness_refused", "add_checkpoint"),
    ("WitnessService/GetWitnessedCheckpoint", "witness_refused", "get_witnessed_checkpoint"),
    ("AuditorService/SearchEntries", "auditor_access_refused", "search"),
    ("AuditorService/GetProofBundle", "auditor_access_refused", "proof_bundle"),
]


@pytest.mark.parametrize(("method", "event", "action"), _AUDIT_METHODS)
def test_a_message_that_does_not_parse_is_refused_and_audited(fed: Federation, method: str,
                                                              event: str, action: str) -> None:
    """Bytes that are no protobuf message (a field tag with wire type 7) reach the service,
    not gRPC's deserializer (INTERNAL, unaudited): a precise refusal, in the log."""
    before = len(fed.audit("KAZ-BS"))
    code, reason, _ = _refused_raw(fed, "KGZ-BS", f"/bxnode.v1.{method}", b"\x0f\xff\xff")
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "malformed_request")
    entries = fed.audit("KAZ-BS")
    assert len(entries) == before + 1
    e = entries[-1]
    assert (e["event"], e["requester"], e["action"], e["reason"], e["status"]) == (
        event, "KGZ-BS", action, "malformed_request", "INVALID_ARGUMENT")


@pytest.mark.parametrize(("method", "action", "fails"), [
    ("AddCheckpoint", "add_checkpoint", "add_checkpoint"),
    ("GetWitnessedCheckpoint", "get_witnessed_checkpoint", "witnessed_checkpoint")])
def test_an_unexpected_error_in_a_witness_is_internal_error_and_audited(
        fed: Federation, monkeypatch: pytest.MonkeyPatch, method: str, action: str,
        fails: str) -> None:
    """A bug or a driver error (not a refusal) tells the caller nothing of itself."""
    from node.wire.audit import apb

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the disk said EIO at /var/lib/bxnode/node.db")

    monkeypatch.setattr(WitnessDesk, fails, broken)
    request = (apb.AddCheckpointRequest(body=b"x") if method == "AddCheckpoint"
               else apb.GetWitnessedCheckpointRequest(origin="kaz-bs.example/log"))
    before = len(fed.audit("KAZ-BS"))
    code, reason, details = _refused_raw(fed, "KGZ-BS", f"/bxnode.v1.WitnessService/{method}",
                                         request.SerializeToString())
    assert (code, reason, details) == (grpc.StatusCode.INTERNAL, "internal_error",
                                       "internal_error: internal error")
    entries = fed.audit("KAZ-BS")
    assert len(entries) == before + 1
    e = entries[-1]
    assert (e["event"], e["requester"], e["action"], e["reason"], e["status"]) == (
        "witness_refused", "KGZ-BS", action, "internal_error", "INTERNAL")


def _get_witnessed(fed: Federation, as_node: str, witness: str, origin: str) -> Any:
    from node.wire.audit import apb

    d: Path = fed.dirs[as_node]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{fed.ports[witness]}", creds) as ch:
        return ch.unary_unary("/bxnode.v1.WitnessService/GetWitnessedCheckpoint",
                              request_serializer=apb.GetWitnessedCheckpointRequest.SerializeToString,
                              response_deserializer=apb.GetWitnessedCheckpointResponse.FromString)(
            apb.GetWitnessedCheckpointRequest(origin=origin), timeout=10)


def test_a_witness_tells_what_it_holds_and_audits_the_read(fed: Federation) -> None:
    from node.audit.log import log_verifiers
    from node.audit.verification import open_witnessed

    svc = services(fed, "KAZ-BS")
    assert on_loop(fed, "KAZ-BS", witness_once(svc))["KGZ-BS"] == "cosigned"
    held = svc.desk.witnessed_size("KGZ-BS")
    before = len(fed.audit("KGZ-BS"))
    resp = _get_witnessed(fed, "KAZ-BS", "KGZ-BS", "bxnode/KAZ-BS")
    directory = load_members(load_config(fed.dirs["KAZ-BS"]).members)
    kaz = directory.member("KAZ-BS")
    got = open_witnessed(directory.member("KGZ-BS"), checkpoint=resp.checkpoint,
                         cosignatures=resp.cosignatures,
                         log_verifiers=log_verifiers("KAZ-BS", [k.public_key for k in kaz.keys]),
                         origin="bxnode/KAZ-BS")
    head = svc.log.head(held)
    assert head is not None and (got.size, got.root) == (held, head.root)
    entries = fed.audit("KGZ-BS")
    assert len(entries) == before + 1
    e = entries[-1]
    assert (e["event"], e["requester"], e["origin"], e["size"], e["outcome"]) == (
        "witness_read", "KAZ-BS", "bxnode/KAZ-BS", held, "answered")
    # a log the witness does not follow: NOT_FOUND, audited
    with pytest.raises(grpc.RpcError) as err:
        _get_witnessed(fed, "KAZ-BS", "KGZ-BS", "bxnode/TJK-BS")
    assert (err.value.code(), trailers(err.value)["bxnode-reason"]) == (
        grpc.StatusCode.NOT_FOUND, "unknown_log")
    e = fed.audit("KGZ-BS")[-1]
    assert (e["event"], e["requester"], e["action"], e["reason"]) == (
        "witness_refused", "KAZ-BS", "get_witnessed_checkpoint", "unknown_log")


def test_a_rolled_back_log_is_detected_only_against_its_witnesses(
        tmp_path: Path) -> None:
    """Traffic, witnessing, then entries, checkpoints, cosignatures and hashes above N
    deleted together: the log verifies on its own, and `--witnesses` names the size."""
    import io
    import json
    from contextlib import redirect_stderr, redirect_stdout

    from node.cli.main import main as bxnode
    from node.store.audit_log import AuditLogTables

    f = make_federation(tmp_path, ("KAZ-BS", "KGZ-BS"))
    for n in f.dirs:
        f.start(n)
    kaz = str(f.dirs["KAZ-BS"])

    def verify(*extra: str) -> tuple[int, dict[str, Any], str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            rc = bxnode(["audit", "verify", "--json", "--node-dir", kaz, *extra])
        return rc, json.loads(out.getvalue()), err.getvalue()

    def traffic(n: int) -> None:
        client = f.client("KGZ-BS")
        try:
            for _ in range(n):
                _ask(f, client)
        finally:
            client._store.close()  # type: ignore[union-attr]
            client.close()

    try:
        traffic(3)
        assert on_loop(f, "KAZ-BS", witness_once(services(f, "KAZ-BS"))) == {
            "KGZ-BS": "cosigned"}
        rc, out, _ = verify("--witnesses")
        witnessed = out["checkpoint_size"]
        assert (rc, out["ok"], out["witnesses"]) == (0, True, [
            {"witness": "KGZ-BS", "size": witnessed, "ok": True, "problem": ""}])
        assert out["cosignatures"] == 1 and out["last_cosigned_size"] == witnessed
        f.nodes.pop("KAZ-BS").stop()
        cfg = load_config(f.dirs["KAZ-BS"])
        rolled = witnessed - 2
        store = open_store(cfg)
        try:
            with store.transaction():
                AuditLogTables(store).unsafe_roll_back_for_tests(rolled)
        finally:
            store.close()
        # alone, the log is consistent: it says so, and that nothing was compared
        rc, out, _ = verify()
        assert (rc, out["ok"], out["entries"], out["checkpoint_size"],
                out["witnesses_compared"], out["witnesses"]) == (
            0, True, rolled, rolled, False, [])
        # against its witness it is not
        rc, out, err = verify("--witnesses")
        problem = (f"KGZ-BS witnessed size {witnessed}, but the log holds only {rolled} "
                   f"entries: entries {rolled + 1}..{witnessed} are gone (rolled back)")
        assert (rc, out["ok"], out["problem"]) == (1, False, problem)
        assert f"bxnode: audit log does NOT match its witnesses: {problem}" in err
        # grown again past the witnessed size with another history: another root there
        f.start("KAZ-BS")
        traffic(3)
        f.nodes.pop("KAZ-BS").stop()
        rc, out, _ = verify("--witnesses")
        assert (rc, out["ok"], out["problem"]) == (1, False, (
            f"the log's first {witnessed} entries are not the ones KGZ-BS witnessed at size "
            f"{witnessed} (another root: rewritten or forked)"))
    finally:
        f.stop_all()
