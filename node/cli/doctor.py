"""``bxnode doctor``: is this node fit to serve?  One line per check, exit 1 if any fails.

Checks, in order (a check that cannot run because an earlier one failed is not shown):

* ``config``: node.toml parses against the schema and every section's rules;
* ``key <file>``: each secret file (signing key, TLS key, database key, PostgreSQL password
  and field key when configured) exists and is mode 0600 or stricter;
* ``signing key``: the signing key opens through node/keys as ``bxnode serve`` opens it (a
  key file, or the PKCS#11 token: module, PIN, the one Ed25519 object, a signature
  verified against its public key) and is not one of the public development keys
  (recognised by its public key, so also once imported into a token): WARN in
  ``dev_mode``, FAIL otherwise (anyone could sign as this node);
* ``development keys``: the TLS key, certificate and CA are not development material
  (WARN: in ``dev_mode``; outside it the configuration check has refused them already);
* ``database``: the database opens with its key (SQLCipher: the key decrypts the file;
  PostgreSQL: the connection, the schema and the field key are right);
* ``certificate``: the TLS certificate is inside its validity window (WARN: under 30 days
  left);
* ``registry``: the trusted federation registry has not expired (WARN: in its grace period
  or under 14 days left); a members file has no expiry;
* ``listed key``: the federation (members file or trusted registry) lists the signing key
  for this node, not revoked and inside its validity window (else peers refuse everything
  it signs: ``unknown_key``, ``key_revoked``, ``key_expired``);
* ``policy``: the policy compiles (with the decision cache's declaration when the cache is
  on) and at least one agreement names this node as the responder;
* ``peer <id>``: for every other node in the federation, each address accepts our mTLS
  connection and presents a certificate the federation lists for that node;
* ``clock <id>``: the peer's clock against ours, from the time in a signed refusal it gives
  to an inclusion-proof request for a digest it never logged (the peer audits that request
  as a refused ``inclusion_proof``, like any other); FAIL beyond ``clock_skew_s`` (the peer
  would refuse our requests as stale), WARN beyond half of it.

``--json`` prints ``{"ok": ..., "checks": [{"check", "status", "message"}, ...]}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import socket
import ssl
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from node.cli.main import EXIT_FAIL, _node_dir, add_command
from node.core.errors import BxError
from node.core.signer import Signer

__all__ = ["Check", "register", "run_checks"]

CERT_WARN_DAYS = 30
REGISTRY_WARN_DAYS = 14
CONNECT_TIMEOUT_S = 3.0
_METHOD = "/bxnode.v1.AuditService/GetInclusionProof"


@dataclass(frozen=True, slots=True)
class Check:
    check: str
    status: str  # "OK", "WARN" or "FAIL"
    message: str


def _ok(name: str, message: str) -> Check:
    return Check(name, "OK", message)


def _warn(name: str, message: str) -> Check:
    return Check(name, "WARN", message)


def _fail(name: str, message: str) -> Check:
    return Check(name, "FAIL", message)


def _why(exc: BaseException) -> str:
    if isinstance(exc, BxError):
        return f"{exc.message} ({exc.reason})"
    return f"{type(exc).__name__}: {exc}"


def run_checks(node_dir: Path, *, clock_ms: Callable[[], int] | None = None,
               peers: bool = True) -> Iterator[Check]:
    """Every check of the node in ``node_dir``, in order."""
    from node.app import now_ms
    from node.config import load_config

    clock = clock_ms or now_ms
    try:
        cfg = load_config(node_dir)
    except Exception as exc:
        yield _fail("config", _why(exc))
        return
    yield _ok("config", f"{node_dir / 'node.toml'} is valid ({cfg.node_id})")
    yield from _key_files(cfg)
    check, signer = _signing_key(cfg)
    yield check
    yield _dev_material(cfg)
    store = None
    try:
        from node.app import open_store

        store = open_store(cfg)
        yield _ok("database", f"the {cfg.storage.backend} database opens with its key")
    except Exception as exc:
        yield _fail("database", _why(exc))
    try:
        yield _certificate(cfg, clock())
        yield _registry(cfg, store, clock)
        if signer is not None:
            yield _listed(cfg, store, clock, signer)
        yield _policy(cfg)
        if peers:
            yield from _peers(cfg, store, clock, signer)
    finally:
        if store is not None:
            store.close()


def _key_files(cfg: Any) -> Iterator[Check]:
    key = cfg.signing_key  # a key file, or a PKCS#11 token's key with perhaps a PIN file
    files = [("signing key", key)] if isinstance(key, Path) else (
        [("PKCS#11 PIN", key.pin_file)] if key.pin_file is not None else [])
    files.append(("TLS key", cfg.tls_key))
    if cfg.storage.backend == "sqlcipher" and cfg.db_key_file is not None:
        files.append(("database key", cfg.db_key_file))
    for what, path in (("PostgreSQL password", cfg.storage.password_file),
                       ("field key", cfg.storage.field_key_file)):
        if path is not None:
            files.append((what, path))
    for what, path in files:
        name = f"key {path.name}"
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            yield _fail(name, f"the {what} file {path} does not exist")
            continue
        if mode & 0o077:
            yield _fail(name, f"the {what} file {path} is mode {mode:04o}: others can read "
                        f"it; run 'chmod 600 {path}'")
        else:
            yield _ok(name, f"the {what} file is mode {mode:04o}")


def _signing_key(cfg: Any) -> tuple[Check, Signer | None]:
    from node.core.signer import signer_key_id
    from node.federation import _devkeys
    from node.keys import load_signer

    ref = cfg.signing_key
    where = (f"the key file {ref.name}" if isinstance(ref, Path)
             else f"the PKCS#11 key {ref.uri.text}")
    try:
        signer = load_signer(ref)
    except Exception as exc:
        return _fail("signing key", f"{where} does not open: {_why(exc)}"), None
    kid = signer_key_id(signer)
    if kid in _devkeys.DEV_SIGNING_KEY_IDS | _devkeys.DEV_GOVERNANCE_KEY_IDS:
        text = (f"{where} is a public development key from keys/dev (key id {kid}): anyone "
                "can sign as this node")
        if cfg.dev_mode:
            return _warn("signing key", f"{text}; dev_mode only, never in production"), signer
        return _fail("signing key", f"{text}, and dev_mode is off: serve refuses it "
                     "(dev_keys_refused); generate a new key ('bxnode keys generate') and "
                     "list it for this node"), signer
    return _ok("signing key", f"{where} opens and signs (key id {kid})"), signer


def _dev_material(cfg: Any) -> Check:
    from node.federation.pki import is_dev_material

    files = [p for p in (cfg.tls_key, cfg.tls_cert, cfg.tls_ca) if is_dev_material(p)]
    if not files:
        return _ok("development keys", "the TLS key, certificate and CA are not development "
                   "material")
    return _warn("development keys", f"dev_mode with development TLS material "
                 f"({', '.join(p.name for p in files)}): for tests and the demo only")


def _certificate(cfg: Any, now: int) -> Check:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cfg.tls_cert.read_bytes())
    except Exception as exc:
        return _fail("certificate", f"cannot read the TLS certificate {cfg.tls_cert}: "
                     f"{_why(exc)}")
    at = dt.datetime.fromtimestamp(now / 1000, dt.UTC)
    after, before = cert.not_valid_after_utc, cert.not_valid_before_utc
    if at < before:
        return _fail("certificate", f"the TLS certificate is not valid before "
                     f"{before:%Y-%m-%d %H:%M}Z")
    if at >= after:
        return _fail("certificate", f"the TLS certificate expired at {after:%Y-%m-%d %H:%M}Z; "
                     "peers refuse the connection")
    left = (after - at).days
    if left < CERT_WARN_DAYS:
        return _warn("certificate", f"the TLS certificate expires in {left} days "
                     f"({after:%Y-%m-%d}); renew it and list the new one")
    return _ok("certificate", f"the TLS certificate is valid until {after:%Y-%m-%d}")


def _registry(cfg: Any, store: Any, clock: Callable[[], int]) -> Check:
    if cfg.registry is None:
        return _ok("registry", f"a members file ({cfg.members.name}), which does not expire")
    if store is None:
        return _fail("registry", "the trusted registry lives in the database, which did not "
                     "open")
    from node.federation.registry_directory import RegistryDirectory
    from node.federation.registry_keeper import RegistryKeeper

    try:
        reg = RegistryKeeper.trusted_version(store=store, path=cfg.registry)
    except Exception as exc:
        return _fail("registry", _why(exc))
    status = RegistryDirectory(registry=reg, clock_ms=clock,
                               expiry_grace_ms=cfg.registry_expiry_grace_s * 1000).status()
    if status.state == "expired":
        return _fail("registry", status.message)
    if status.state == "expired_in_grace":
        return _warn("registry", status.message)
    left = (status.expires_ms - clock()) // 86_400_000
    if left < REGISTRY_WARN_DAYS:
        return _warn("registry", f"{status.message}: {left} days left; publish a new version")
    return _ok("registry", status.message)


def _listed(cfg: Any, store: Any, clock: Callable[[], int], signer: Signer) -> Check:
    from node.core.members import signing_key
    from node.core.signer import signer_key_id
    from node.federation.directory import load_directory

    kid = signer_key_id(signer)
    try:
        member = load_directory(cfg, store=store, clock_ms=clock).member(cfg.node_id)
    except Exception as exc:
        return _fail("listed key", f"cannot find {cfg.node_id} in the federation: {_why(exc)}")
    try:
        listed = signing_key(member, kid, clock())
    except BxError as exc:
        return _fail("listed key", f"the federation does not accept key {kid} for "
                     f"{cfg.node_id} ({exc.reason}: {exc.message}); peers refuse everything "
                     "this node signs")
    if listed != signer.public_key:
        return _fail("listed key", f"the federation lists another public key under key id "
                     f"{kid} for {cfg.node_id}")
    return _ok("listed key", f"the federation lists key {kid} for {cfg.node_id}")


def _policy(cfg: Any) -> Check:
    from node.app import load_policy

    try:
        load_policy(cfg)
    except Exception as exc:
        return _fail("policy", f"the policy in {cfg.policy_dir} does not load: {_why(exc)}")
    try:
        data = json.loads((cfg.policy_dir / "data.json").read_text(encoding="utf-8"))
        agreements = [a for a in data["bxnode"]["agreements"]
                      if isinstance(a, dict) and a.get("responder") == cfg.node_id]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return _fail("policy", f"cannot read the agreements in {cfg.policy_dir / 'data.json'}: "
                     f"{_why(exc)}")
    if not agreements:
        return _fail("policy", f"it compiles, but no agreement names {cfg.node_id} as the "
                     "responder: every question is refused")
    return _ok("policy", f"it compiles, with {len(agreements)} agreement(s) for "
               f"{cfg.node_id}")


def _peers(cfg: Any, store: Any, clock: Callable[[], int],
           signer: Signer | None) -> Iterator[Check]:
    from node.federation.directory import load_directory
    from node.federation.pki import TlsMaterial

    try:
        directory = load_directory(cfg, store=store, clock_ms=clock)
        members = [m for m in directory.members()
                   if m.node_id != cfg.node_id and "node" in m.roles]
        tls = TlsMaterial.from_files(cert=cfg.tls_cert, key=cfg.tls_key, ca=cfg.tls_ca)
    except Exception as exc:
        yield _fail("peers", f"cannot list the federation's nodes: {_why(exc)}")
        return
    for m in members:
        reached: list[str] = []
        problems: list[str] = []
        for address in m.endpoint:
            try:
                fp = _server_fingerprint(address, cfg)
            except (OSError, ValueError) as exc:
                problems.append(f"{address}: {exc}")
                continue
            if fp not in m.tls_cert_sha256:
                problems.append(f"{address} presents a certificate not listed for "
                                f"{m.node_id} (sha256 {fp[:16]}...)")
            else:
                reached.append(address)
        name = f"peer {m.node_id}"
        if not reached:
            yield _fail(name, "not reachable: " + "; ".join(problems))
            continue
        if problems:
            yield _warn(name, f"reachable at {', '.join(reached)}, but " + "; ".join(problems))
        else:
            yield _ok(name, f"reachable at {', '.join(reached)} with a certificate listed for "
                      f"{m.node_id}")
        if signer is not None:  # the clock is read from a signed request's refusal
            yield _clock(cfg, directory, tls, signer, m.node_id, reached[0], clock)


def _split(address: str) -> tuple[str, int]:
    address = address.removeprefix("dns:///")
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"{address} has no port")
    return host.strip("[]"), int(port)


def _server_fingerprint(address: str, cfg: Any) -> str:
    """SHA-256 of the certificate the peer presents in an mTLS handshake with our
    certificate, verified against our CA and the address's host name."""
    host, port = _split(address)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cfg.tls_ca))
    ctx.load_cert_chain(str(cfg.tls_cert), str(cfg.tls_key))
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as conn:
        der = conn.getpeercert(binary_form=True)
    if not der:
        raise ValueError("presented no certificate")
    return hashlib.sha256(der).hexdigest()


def _clock(cfg: Any, directory: Any, tls: Any, signer: Signer, peer: str, address: str,
           clock: Callable[[], int]) -> Check:
    import grpc

    from node.client.channel import open_channel
    from node.client.peer import PeerClient, QueryContext
    from node.core import envelope as env_mod
    from node.core.model import Refusal
    from node.server.grpc_server import REASON_KEY, REFUSAL_KEY
    from node.wire import audit as wire
    from node.wire import convert
    from node.wire.convert import pb
    from node.wire.trailers import trailers

    name = f"clock {peer}"
    skew_ms = cfg.clock_skew_s * 1000
    client = PeerClient(node_id=cfg.node_id, signing_key=signer,
                        directory=directory, tls=tls, store=None, clock_ms=clock)
    ctx = QueryContext(operator="bxnode-doctor", purpose="border_check",
                       legal_basis="bxnode doctor: clock check", case_ref="DOCTOR")
    request = client.sign(wire.PROOF_REQUEST_TYPE, wire.encode_proof_request(
        wire.ProofRequest(client.header(ctx), os.urandom(32))))
    raw: Any = wire.apb.GetInclusionProofRequest(
        envelope=convert.envelope_to_pb(request)).SerializeToString()
    sent = clock()
    start = time.monotonic()
    try:
        with open_channel(address, tls) as channel:
            channel.unary_unary(_METHOD)(raw, timeout=10)
        return _warn(name, f"{peer} answered a proof request for a digest it never logged")
    except grpc.RpcError as err:
        md = trailers(err)
        reason = str(md.get(REASON_KEY, ""))
        refusal_raw = md.get(REFUSAL_KEY)
    finally:
        client.close()
    rtt_ms = (time.monotonic() - start) * 1000
    if reason == "stale_request":
        return _fail(name, f"{peer} refuses our requests as stale: the clocks differ by more "
                     f"than {cfg.clock_skew_s} s")
    if not isinstance(refusal_raw, bytes):
        return _warn(name, f"not checked: {peer} gave no signed refusal ({reason or 'no reason'})")
    try:
        env = convert.envelope_from_pb(pb.SignedEnvelope.FromString(refusal_raw))
        client.verify_response(peer, env, env_mod.digest(request),
                               expected_type=env_mod.RESPONSE_TYPE)
        refusal = convert.decode_response(env.payload)
    except Exception as exc:
        return _fail(name, f"{peer}'s signed refusal does not verify: {_why(exc)}")
    if not isinstance(refusal, Refusal):
        return _fail(name, f"{peer} signed an answer where a refusal was due")
    offset = refusal.issued_at_ms - (sent + rtt_ms / 2)
    side = "ahead of" if offset > 0 else "behind"
    text = f"{peer}'s clock is {abs(offset) / 1000:.1f} s {side} ours"
    if abs(offset) > skew_ms:
        return _fail(name, f"{text}, beyond clock_skew_s = {cfg.clock_skew_s}: requests between "
                     "us are refused as stale")
    if abs(offset) > skew_ms / 2:
        return _warn(name, f"{text}, more than half of clock_skew_s = {cfg.clock_skew_s}")
    return _ok(name, text)


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = list(run_checks(_node_dir(args), peers=not args.no_peers))
    failed = any(c.status == "FAIL" for c in checks)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]},
                         ensure_ascii=False, sort_keys=True))
    else:
        for c in checks:
            print(f"{c.status:<4} {c.check}: {c.message}")
    return EXIT_FAIL if failed else 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    sp = add_command(sub, "doctor", cmd_doctor,
                     "check this node: configuration, key files, database key, certificate and "
                     "registry expiry, policy, each peer's reachability, TLS identity and "
                     "clock; exit 1 if any check fails", common)
    sp.add_argument("--no-peers", action="store_true",
                    help="skip the checks that contact peers")
