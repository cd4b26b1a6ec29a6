"""The signed federation registry between real nodes over mTLS (issue 5).

Every change goes through the governance CLI (propose, sign with three of the five
dev governance keys, verify, publish on one node); the other nodes fetch it from
their peers with ``RegistryService.GetRegistry`` and apply it on refresh.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import nacl.signing
import pytest
from grpc_health.v1 import health_pb2

from node.app import now_ms
from node.core import envelope as env_mod
from node.core.errors import BxError, RemoteError
from node.core.model import DocumentQuery, QueryKind
from node.federation.devkeys import DEV_DIR, GOVERNANCE_STATES, dev_registry, governance_key_path
from node.federation.registry import format_time, parse_registry
from node.federation.registry_directory import RegistryDirectory
from node.federation.registry_edit import member_entry
from node.store.keys import write_private
from node.store.sqlcipher import Store
from node.wire import convert
from node.wire import registry as wire
from node.wire.trailers import trailers
from tests.federation import CTX, DEV, Federation, make_federation, sample_policy
from tests.grpc_clients import health_stub
from tests.waiting import until

pytestmark = pytest.mark.integration

DOC = DocumentQuery(number="N0481516", issuing_state="KAZ")


def cli(*args: str) -> int:
    from node.cli.main import main

    return main(list(args))


def gov_keys(tmp: Path) -> dict[str, Path]:
    """The dev governance keys, copied 0600 (a git checkout does not keep file modes)."""
    out = {}
    for c in GOVERNANCE_STATES:
        p = tmp / f"gov-{c.lower()}.key"
        if not p.exists():
            write_private(p, governance_key_path(c).read_bytes())
        out[c] = p
    return out


def govern(fed: Federation, *change: str, publish_on: str = "KAZ-BS",
           signers: tuple[str, ...] = ("KAZ", "KGZ", "UZB")) -> Path:
    """Propose a change against ``publish_on``'s registry, sign 3 of 5, verify, publish."""
    keys = gov_keys(fed.root)
    node = str(fed.dirs[publish_on])
    current = fed.dirs[publish_on] / "registry.json"
    draft = fed.root / f"draft-{time.time_ns()}.json"
    assert cli("registry", "propose", "--node-dir", node, *change, "--out", str(draft)) == 0
    for c in signers:
        assert cli("registry", "sign", "--dev", "--key", str(keys[c]), str(draft)) == 0
    assert cli("registry", "verify", str(draft), "--trusted", str(current)) == 0
    assert cli("registry", "show", str(draft), "--node-dir", node) == 0
    assert cli("registry", "publish", str(draft), "--node-dir", node) == 0
    return draft


def refresh(fed: Federation, *nodes: str) -> None:
    """The publishing node first (it reads its file), then the others (they fetch)."""
    for n in nodes:
        fed.nodes[n].refresh_registry()


def version(fed: Federation, node: str) -> int:
    keeper = fed.nodes[node].runtime.registry
    assert keeper is not None
    return keeper.directory.current.version


def ask(fed: Federation, asker: str, peer: str) -> Any:
    client = fed.client(asker)
    try:
        return client.lookup(peer, CTX, QueryKind.DOCUMENT, [DOC])
    finally:
        client.close()


def refusal(fed: Federation, asker: str, peer: str) -> tuple[str, str]:
    with pytest.raises(RemoteError) as err:
        ask(fed, asker, peer)
    return err.value.status, err.value.reason


def get_registry(fed: Federation, as_node: str, peer: str, v: int = 0) -> tuple[Any, bytes]:
    d = fed.dirs[as_node]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{fed.ports[peer]}", creds) as ch:
        get: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(wire.GET_REGISTRY_METHOD)
        try:
            raw = get(wire.encode_get_request(v), timeout=10)
        except grpc.RpcError as err:
            return err.code(), b""
    return grpc.StatusCode.OK, wire.decode_get_response(raw)


def health(fed: Federation, as_node: str, peer: str) -> int:
    d = fed.dirs[as_node]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{fed.ports[peer]}", creds) as ch:
        resp = health_stub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    return int(resp.status)


def events(fed: Federation, node: str, name: str) -> list[dict[str, Any]]:
    return [e for e in fed.audit(node) if e.get("event") == name]


def _policy_with_tjk() -> dict[str, Any]:
    data = sample_policy()
    for responder in ("KAZ-BS", "KGZ-BS"):
        data["bxnode"]["agreements"].append({
            "responder": responder, "requester": "TJK-BS", "datasets": ["documents", "persons"],
            "purposes": ["border_check"], "daily_quota": 1000, "max_batch": 100,
            "disclose": ["reference", "action", "contact"], "valid_from": "2025-01-01",
            "valid_until": "2035-12-31"})
    return data


# --- tests --------------------------------------------------------------------------------------


def _raw_get(fed: Federation, as_node: str, peer: str, raw: bytes) -> tuple[Any, str]:
    d = fed.dirs[as_node]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{fed.ports[peer]}", creds) as ch:
        get: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(wire.GET_REGISTRY_METHOD)
        try:
            get(raw, timeout=10)
        except grpc.RpcError as err:
            return err.code(), str(trailers(err).get("bxnode-reason"))
    return grpc.StatusCode.OK, ""


def test_every_get_registry_call_is_audited(tmp_path: Path) -> None:
    fed = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS", "TJK-BS"), registry=True,
                          registry_nodes=("KAZ-BS", "KGZ-BS"))
    fed.start("KAZ-BS")
    try:
        calls = [("KGZ-BS", wire.encode_get_request(0)), ("KGZ-BS", b"\xff\xff\xff"),
                 ("KGZ-BS", wire.encode_get_request(99)), ("TJK-BS", wire.encode_get_request(0))]
        assert [_raw_get(fed, who, "KAZ-BS", raw) for who, raw in calls] == [
            (grpc.StatusCode.OK, ""),
            (grpc.StatusCode.INVALID_ARGUMENT, "malformed_request"),
            (grpc.StatusCode.NOT_FOUND, "registry_version_unknown"),
            (grpc.StatusCode.PERMISSION_DENIED, "not_a_member")]
    finally:
        fed.stop_all()
    served = [(e["requester"], e["asked_version"], e["outcome"], e.get("reason"))
              for e in fed.audit("KAZ-BS") if e.get("event") == "registry_served"]
    assert served == [("KGZ-BS", 0, "answered", None), ("KGZ-BS", -1, "rejected",
                                                        "malformed_request"),
                      ("KGZ-BS", 99, "rejected", "registry_version_unknown"),
                      ("", -1, "rejected", "not_a_member")]


def test_a_fourth_member_is_added_and_queries(tmp_path: Path) -> None:
    fed = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS", "UZB-BS", "TJK-BS"),
                          policy_data=_policy_with_tjk(), registry=True,
                          registry_nodes=("KAZ-BS", "KGZ-BS", "UZB-BS"))
    for n in ("KAZ-BS", "KGZ-BS", "UZB-BS"):
        fed.start(n)
    try:
        assert ask(fed, "KGZ-BS", "KAZ-BS").hits == 1
        # not yet a member: its dev-CA certificate is not listed, so it is refused
        assert get_registry(fed, "TJK-BS", "KAZ-BS")[0] is grpc.StatusCode.PERMISSION_DENIED
        client = fed.client("KGZ-BS", tls_of="TJK-BS")
        with pytest.raises(RemoteError) as err:
            client.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT, [DOC])
        client.close()
        assert err.value.reason == "unlisted_certificate"  # listed for no member yet

        members = json.loads((DEV / "members.json").read_text())["members"]
        tjk = next(m for m in members if m["node_id"] == "TJK-BS")
        tjk["endpoint"] = f"127.0.0.1:{fed.ports['TJK-BS']}"
        (tmp_path / "tjk.json").write_text(json.dumps(tjk))
        draft = govern(fed, "--add-member", str(tmp_path / "tjk.json"))
        refresh(fed, "KAZ-BS", "KGZ-BS", "UZB-BS")
        assert {n: version(fed, n) for n in ("KAZ-BS", "KGZ-BS", "UZB-BS")} == {
            "KAZ-BS": 2, "KGZ-BS": 2, "UZB-BS": 2}
        applied = events(fed, "KGZ-BS", "registry_applied")[-1]
        assert (applied["version"], applied["source"]) == (2, "peer:KAZ-BS")
        assert events(fed, "KAZ-BS", "registry_published")[-1]["version"] == 2

        # the new member installs the same version as its anchor, starts, and asks
        assert cli("registry", "publish", str(draft), "--node-dir", str(fed.dirs["TJK-BS"])) == 0
        fed.start("TJK-BS")
        assert ask(fed, "TJK-BS", "KAZ-BS").hits == 1
        assert ask(fed, "TJK-BS", "KGZ-BS").hits == 0
        assert get_registry(fed, "TJK-BS", "UZB-BS")[0] is grpc.StatusCode.OK
    finally:
        fed.stop_all()


def test_key_rotation_mid_traffic_without_a_failed_request(tmp_path: Path) -> None:
    fed = make_federation(tmp_path, registry=True)
    for n in fed.dirs:
        fed.start(n)
    old_key = nacl.signing.SigningKey(bytes.fromhex(
        (fed.dirs["KGZ-BS"] / "signing.key").read_text().strip()))
    new_key = nacl.signing.SigningKey.generate()
    clients = {"current": fed.client("KGZ-BS")}
    failures: list[BaseException] = []
    answered = [0]
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            try:
                for peer in ("KAZ-BS", "UZB-BS"):
                    clients["current"].lookup(peer, CTX, QueryKind.DOCUMENT, [DOC])
                    answered[0] += 1
            except BaseException as exc:
                failures.append(exc)
                return

    t = threading.Thread(target=traffic)
    t.start()
    try:
        overlap_until = now_ms() + 12_000
        pub = base64.b64encode(bytes(new_key.verify_key)).decode()
        govern(fed, "--rotate-key", "KGZ-BS", "--new-key", pub,
               "--old-key-until", format_time(overlap_until))
        refresh(fed, "KAZ-BS", "KGZ-BS", "UZB-BS")
        assert {version(fed, n) for n in fed.dirs} == {2}
        # KGZ switches to its new key while requests keep flowing
        (fed.dirs["KGZ-BS"] / "signing.key").unlink()
        write_private(fed.dirs["KGZ-BS"] / "signing.key", bytes(new_key).hex() + "\n")
        clients["current"] = fed.client("KGZ-BS")
        switched = answered[0]
        until("lookups signed with the new key answered",
              lambda: answered[0] >= switched + 4 or failures)
        stop.set()
        t.join(30)
        assert not failures, failures
        assert answered[0] > 4
        # after the overlap the old key is refused ...
        until("the old key's overlap has passed", lambda: now_ms() > overlap_until + 1000,
              every=0.2)
        from tests.integration.test_attacks import _signed, _wire

        assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(_signed("KGZ-BS", old_key))) == (
            grpc.StatusCode.UNAUTHENTICATED, "key_expired")
        assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(_signed("KGZ-BS", new_key))) == (
            grpc.StatusCode.OK, "")
        # ... and receipts signed with it stay verifiable at the time they were signed
        rt = fed.nodes["KAZ-BS"].runtime
        store, directory = rt.store, rt.directory
        assert isinstance(store, Store), store  # the federation's nodes are SQLCipher
        assert isinstance(directory, RegistryDirectory), directory  # it serves a registry
        old_kid = env_mod.key_id_for(bytes(old_key.verify_key))
        checked = 0
        for r in store.receipts(direction="received"):
            from node.wire.convert import pb

            req = convert.envelope_from_pb(pb.SignedEnvelope.FromString(r.request_env))
            if req.key_id == old_kid:
                directory.verify_signed_at(req, at_ms=r.created_ms,
                                           expected_type=env_mod.REQUEST_TYPE)
                checked += 1
        assert checked > 0
    finally:
        stop.set()
        t.join(30)
        clients["current"].close()
        fed.stop_all()


def test_a_revoked_node_is_refused_everywhere_after_one_refresh(tmp_path: Path) -> None:
    fed = make_federation(tmp_path, registry=True)
    for n in fed.dirs:
        fed.start(n)
    try:
        assert ask(fed, "UZB-BS", "KAZ-BS").hits == 1
        query = ("query", "doc", "--peer", "KAZ-BS", "--number", "N0481516", "--state", "KAZ",
                 "--purpose", "border_check", "--case-ref", "CASE-9",
                 "--node-dir", str(fed.dirs["UZB-BS"]))
        assert cli(*query) == 0  # 'bxnode query' uses the node's trusted registry
        govern(fed, "--revoke", "UZB-BS", "--reason", "signing key compromised")
        refresh(fed, "KAZ-BS", "KGZ-BS")
        assert cli(*query) == 3  # the peer refused
        for peer in ("KAZ-BS", "KGZ-BS"):
            assert refusal(fed, "UZB-BS", peer) == ("UNAUTHENTICATED", "node_revoked")
            e = fed.audit(peer)[-1]
            assert (e["outcome"], e["reason"]) == ("rejected", "node_revoked")
        # it can no longer fetch the registry either, and nobody asks it
        assert get_registry(fed, "UZB-BS", "KAZ-BS")[0] is grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(BxError) as err:
            ask(fed, "KAZ-BS", "UZB-BS")
        assert err.value.reason == "node_revoked"
        assert ask(fed, "KGZ-BS", "KAZ-BS").hits == 1  # everyone else carries on
    finally:
        fed.stop_all()


def test_rollback_is_refused_and_the_trusted_registry_stays(tmp_path: Path) -> None:
    fed = make_federation(tmp_path, registry=True)
    for n in fed.dirs:
        fed.start(n)
    try:
        v1 = (tmp_path / "registry.json").read_bytes()
        govern(fed, "--endpoint", "UZB-BS", f"127.0.0.1:{fed.ports['UZB-BS']}",
               "--expires-in-days", "30")
        refresh(fed, "KAZ-BS", "KGZ-BS", "UZB-BS")
        before = (tmp_path / "kaz" / "registry.json").read_bytes()
        # by the CLI
        assert cli("registry", "publish", str(tmp_path / "registry.json"),
                   "--node-dir", str(fed.dirs["KAZ-BS"])) == 1
        assert events(fed, "KAZ-BS", "registry_refused")[-1]["reason"] == "rollback"
        # and offered to the running node directly (as a peer's answer would be)
        keeper = fed.nodes["KAZ-BS"].runtime.registry
        assert keeper is not None
        with pytest.raises(BxError) as err:
            keeper.offer([v1], source="peer:test")
        assert err.value.reason == "rollback"
        assert version(fed, "KAZ-BS") == 2
        assert (tmp_path / "kaz" / "registry.json").read_bytes() == before
        assert ask(fed, "KGZ-BS", "KAZ-BS").hits == 1
        # peers still hand out the old version on request (it was applied once) ...
        code, doc = get_registry(fed, "KGZ-BS", "KAZ-BS", 1)
        assert code is grpc.StatusCode.OK and parse_registry(doc).version == 1
        assert get_registry(fed, "KGZ-BS", "KAZ-BS", 7)[0] is grpc.StatusCode.NOT_FOUND
    finally:
        fed.stop_all()


def test_an_expired_registry_fails_closed_after_the_grace_period(tmp_path: Path) -> None:
    fed = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"), registry=True)
    expires = now_ms() + 4_000
    members = [member_entry(json.loads(json.dumps(m)), now_ms=now_ms() - 86_400_000)
               for m in json.loads((tmp_path / "registry.json").read_text())["signed"]["members"]]
    short = dev_registry(members, now_ms=now_ms(), version=2, expires_ms=expires)
    expires = short.expires_ms  # whole seconds in the document
    for n in fed.dirs:
        cfg = fed.dirs[n] / "node.toml"
        cfg.write_text(cfg.read_text().replace(
            "[federation]\n", "[federation]\nexpiry_grace_s = 1\nrefresh_s = 1\n", 1))
        (fed.dirs[n] / "registry.json").write_bytes(short.to_bytes())  # applied at start
        fed.start(n)
    try:
        assert version(fed, "KAZ-BS") == 2
        assert ask(fed, "KGZ-BS", "KAZ-BS").hits == 1
        assert health(fed, "KGZ-BS", "KAZ-BS") == health_pb2.HealthCheckResponse.SERVING
        until("health NOT_SERVING once the registry expired", lambda: health(
            fed, "KGZ-BS", "KAZ-BS") == health_pb2.HealthCheckResponse.NOT_SERVING,
              timeout=20, every=0.3)
        assert now_ms() >= expires + 1000
        from tests.integration.test_attacks import _key, _signed, _wire

        assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(_signed("KGZ-BS", _key(fed, "KGZ-BS")))
                            ) == (grpc.StatusCode.UNAVAILABLE, "registry_expired")
        lookups = [e for e in fed.audit("KAZ-BS") if e.get("event") == "lookup"]
        assert lookups[-1]["reason"] == "registry_expired"  # (registry reads are audited too)
        with pytest.raises(BxError) as err:  # and it asks no one either
            ask(fed, "KAZ-BS", "KGZ-BS")
        assert err.value.reason == "registry_expired"
        # a fresh version (signed by the same governance) brings it back
        fresh = dev_registry(members, now_ms=now_ms(), version=3)
        (tmp_path / "v3.json").write_bytes(fresh.to_bytes())
        assert cli("registry", "publish", str(tmp_path / "v3.json"),
                   "--node-dir", str(fed.dirs["KAZ-BS"])) == 0
        until("health SERVING again with the fresh registry", lambda: health(
            fed, "KGZ-BS", "KAZ-BS") == health_pb2.HealthCheckResponse.SERVING,
              timeout=20, every=0.3)
        assert version(fed, "KAZ-BS") == 3
    finally:
        fed.stop_all()


def test_dev_registry_lists_the_existing_dev_keys() -> None:
    reg = parse_registry((DEV_DIR / "registry.json").read_bytes())
    members = {m["node_id"]: m for m in json.loads((DEV / "members.json").read_text())["members"]}
    for m in reg.members:
        want = members[m.node_id]
        assert [base64.b64encode(k.public_key).decode() for k in m.signing_keys] == [
            k["public_key"] for k in want["signing_keys"]]
        assert [c.sha256 for c in m.tls_certs] == want["tls_cert_sha256"]
    from node.federation.registry import verify_self_signed

    verify_self_signed(reg)
