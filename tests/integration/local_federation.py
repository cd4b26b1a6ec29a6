"""Helpers for the LocalService tests beside :mod:`tests.integration.localapi` (``Officers``,
``start_api``, re-exported here): the ``[local]`` section, stopping the listener, the
identity provider's key and tokens, and a production-mode federation.

``make_production_federation`` builds nodes the way a real deployment does: ``bxnode init``
WITHOUT ``--dev`` (fresh signing and TLS keys, ``dev_mode = false``), every node's TLS
certificate issued by one federation CA, and a members file assembled from the member
entries ``init`` printed.  Nothing here stands in for a component of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from joserfc import jwt
from joserfc.jwk import ECKey

from node.cli.main import main as bxnode
from node.federation import pki
from node.local.server import LocalApiServer
from tests.federation import DEMO, FOLDERS, ROOT, WATCHLISTS, Federation, RunningNode, free_port
from tests.integration.localapi import Officers, start_api

__all__ = ["AUD", "ISS", "Officers", "add_local_section", "make_production_federation",
           "start_api", "stop_api", "token"]

ISS, AUD = "https://idp.border.example", "bxnode-local-tests"


def pem_key(k: Any) -> bytes:
    return bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()))


def pem(c: Any) -> bytes:
    return bytes(c.public_bytes(serialization.Encoding.PEM))


def add_local_section(node_dir: Path, officers: Officers, roles: dict[str, list[str]], *,
                      jwks: Path | None = None, api_tcp: str | None = None) -> None:
    table = "\n".join(f'"{k}" = {json.dumps(v)}' for k, v in roles.items())
    oidc = (f'oidc_issuer = "{ISS}"\noidc_audience = "{AUD}"\noidc_jwks = "{jwks}"\n'
            if jwks is not None else "")
    tcp = f'api_tcp = "{api_tcp}"\n' if api_tcp else ""
    with (node_dir / "node.toml").open("a") as f:
        f.write(f'\n[local]\napi_socket = "unix:officers.sock"\n{tcp}'
                f'client_ca = "{officers.root / "ca.crt"}"\nfanout_deadline_ms = 8000\n{oidc}'
                f"\n[local.roles]\n{table}\n")


def stop_api(node: RunningNode, api: LocalApiServer) -> None:
    asyncio.run_coroutine_threadsafe(api.stop(0.5), node.loop).result(10)


def new_idp_key(root: Path) -> tuple[ECKey, Path]:
    """The agency identity provider's signing key, and its public JWKS file."""
    key = ECKey.generate_key("P-256", parameters={"kid": "idp-1"}, private=True)
    path = root / "jwks.json"
    path.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    return key, path


def token(key: ECKey, sub: str, *, now: int, **claims: Any) -> str:
    body = {"iss": ISS, "aud": AUD, "sub": sub, "iat": now - 10, "exp": now + 300, **claims}
    return jwt.encode({"alg": "ES256", "kid": "idp-1"}, body, key)


def make_production_federation(root: Path, node_ids: tuple[str, ...],
                               policy_data: dict[str, Any]) -> Federation:
    """Nodes initialised for production (no development keys, ``dev_mode = false``)."""
    ca_key, ca_cert = pki.new_ca("Test federation CA", "Federation")
    (root / "fed-ca.crt").write_bytes(pem(ca_cert))
    (root / "fed-ca.key").write_bytes(pem_key(ca_key))
    (root / "fed-ca.key").chmod(0o600)
    policy_dir = root / "policies"
    shutil.copytree(ROOT / "policies", policy_dir)
    (policy_dir / "data.json").write_text(json.dumps(policy_data))
    ports = {n: free_port() for n in node_ids}
    dirs, entries = {}, []
    for node_id in node_ids:
        d = root / FOLDERS[node_id]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = bxnode(["init", "--node-dir", str(d), "--node-id", node_id, "--country",
                         node_id[:3], "--listen", f"127.0.0.1:{ports[node_id]}",
                         "--host", "127.0.0.1", "--host", "localhost",
                         "--ca-cert", str(root / "fed-ca.crt"),
                         "--ca-key", str(root / "fed-ca.key"), "--policy-dir", str(policy_dir),
                         "--contact", f"{node_id} desk", "--operator", "node-admin", "--json"])
        assert rc == 0, out.getvalue()
        entries.append(json.loads(out.getvalue())["member"])
        dirs[node_id] = d
    members = json.dumps({"version": 1, "members": entries})
    for node_id, d in dirs.items():
        (d / "members.json").write_text(members)
        if node_id in WATCHLISTS:
            assert bxnode(["watchlist", "import", str(DEMO / WATCHLISTS[node_id]),
                           "--node-dir", str(d)]) == 0
    return Federation(root=root, dirs=dirs, ports=ports)
