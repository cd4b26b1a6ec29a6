"""Shared helpers for tests that serve the LocalService to officers on a real node.

``Officers``: an agency CA (the agency's own, not the federation's) and the officer
certificates it issued, as files.  ``start_api``: the LocalService of a running test node
(:class:`tests.federation.RunningNode`), started on that node's own event loop exactly as
``bxnode serve`` starts it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from node.federation import pki
from node.local.server import LocalApiServer, build_local_api
from tests.federation import RunningNode

__all__ = ["Officers", "start_api"]


def _pem_key(k: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()))


def _pem(c: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(c.public_bytes(serialization.Encoding.PEM))


class Officers:
    """An agency CA and the certificates it issued, as files."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.ca = pki.new_ca(f"{name} officers CA", name)
        (root / "ca.crt").write_bytes(_pem(self.ca[1]))

    def issue(self, cn: str) -> tuple[Path, Path]:
        """``cn``'s certificate and key files (issued once; the key file mode 0600)."""
        crt, key_path = self.root / f"{cn}.crt", self.root / f"{cn}.key"
        if crt.exists():
            return crt, key_path
        key = pki.new_tls_key()
        cert = pki.issue_cert(cn=cn, org="Border Service", key=key, hosts=[cn], ca=self.ca)
        crt.write_bytes(_pem(cert))
        key_path.write_bytes(_pem_key(key))
        key_path.chmod(0o600)
        return crt, key_path


def start_api(node: RunningNode) -> LocalApiServer:
    """Start ``node``'s LocalService (its ``[local]`` section) on the node's loop."""
    async def build() -> LocalApiServer:
        api = build_local_api(node.runtime, node.server)
        assert api is not None
        await api.start()
        return api

    return asyncio.run_coroutine_threadsafe(build(), node.loop).result(10)
