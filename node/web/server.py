"""Build and start the console beside ``bxnode serve``'s gRPC servers, in the same loop.

The console is an edge over the LocalService (ARCHITECTURE.md): it needs the LocalService
of this node (``[local]`` configured with a way to authenticate officers), signs officers
in with the same identities and role table, and refuses to start rather than weaken a
check: no ``[local]``, no client CA and no OpenID Connect, or a client secret file others
may read are configuration errors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from node.core.errors import ConfigError
from node.local.auth import RoleTable, TokenVerifier
from node.web.app import Console

if TYPE_CHECKING:
    from node.app import NodeRuntime
    from node.local.server import LocalApiServer

__all__ = ["StartedConsole", "build_console", "start_console"]

log = structlog.get_logger("bxnode.console")


class StartedConsole:
    def __init__(self, console: Console, url: str) -> None:
        self.console, self.url = console, url

    async def stop(self) -> None:
        await self.console.stop()


def _paths(rt: NodeRuntime) -> tuple[Path, Path, Path | None]:
    cfg = rt.cfg
    c, local = cfg.console, cfg.local_api
    cert = c.tls_cert or local.tls_cert or cfg.tls_cert
    key = c.tls_key or local.tls_key or cfg.tls_key
    return cert, key, c.client_ca or local.client_ca


def build_console(rt: NodeRuntime, api: LocalApiServer | None, *,
                  clock_ms: Callable[[], int] | None = None) -> Console | None:
    """The console of ``rt`` over its LocalService ``api``, or None when ``[console]`` is
    off.  ``clock_ms`` (sessions, sign-in limits) defaults to the node's clock."""
    from node.app import now_ms
    from node.store.keys import check_private_file
    from node.web.admin import NodeFacts
    from node.web.oidc import OidcSignIn

    cfg = rt.cfg
    s = cfg.console
    if not s.enabled:
        return None
    if api is None:
        raise ConfigError("config: [console] signs officers in with the LocalService's "
                          "identities: configure [local] (client_ca or oidc_*) and roles",
                          reason="bad_config")
    local = cfg.local_api
    _cert, key, client_ca = _paths(rt)
    check_private_file(key, "console TLS key file")
    if client_ca is None and not s.oidc:
        raise ConfigError("config: [console] has no way to sign officers in: set [local] "
                          "client_ca (certificates) or [console] oidc_*", reason="bad_config")
    roles = (RoleTable.from_file(local.roles_file) if local.roles_file is not None
             else RoleTable(dict(local.roles)))
    clock = clock_ms or now_ms
    oidc = None
    if s.oidc:
        if local.oidc_jwks is None:
            raise ConfigError("config: [console] oidc_* needs [local] oidc_issuer, "
                              "oidc_audience and oidc_jwks (the ID token's checks)",
                              reason="bad_config")
        assert s.oidc_client_secret_file is not None
        check_private_file(s.oidc_client_secret_file, "console OIDC client secret file")
        jwks = TokenVerifier.load_jwks(local.oidc_jwks)
        client_id = s.oidc_client_id or local.oidc_audience
        # An ID token's audience is the client it was issued to (OIDC Core 2, 3.1.3.7 step 3)
        verifier = TokenVerifier(issuer=local.oidc_issuer, audience=client_id,
                                 jwks=jwks, clock_ms=clock, leeway_s=local.token_leeway_s,
                                 **({"algorithms": local.oidc_algorithms}
                                    if local.oidc_algorithms else {}))
        oidc = OidcSignIn(
            authorize_url=s.oidc_authorize_url, token_url=s.oidc_token_url,
            client_id=client_id,
            client_secret=s.oidc_client_secret_file.read_text(encoding="utf-8").strip(),
            redirect_uri=f"{s.origin}/signin/oidc/callback", verifier=verifier, jwks=jwks,
            ca_file=s.oidc_ca)
    return Console(settings=s, api=api, roles=roles, clock_ms=clock, oidc=oidc,
                   extras=NodeFacts(rt=rt, api=api))


async def start_console(rt: NodeRuntime, api: LocalApiServer | None, *,
                        clock_ms: Callable[[], int] | None = None) -> StartedConsole | None:
    """``bxnode serve``: the console started (or None when ``[console]`` is off)."""
    console = build_console(rt, api, clock_ms=clock_ms)
    if console is None:
        return None
    cert, key, client_ca = _paths(rt)
    port = await console.start(cert=cert, key=key, client_ca=client_ca)
    host = console.settings.listen.rpartition(":")[0]
    url = console.settings.public_url or f"https://{host}:{port}/"
    log.info("console_ready", url=url)
    return StartedConsole(console, url)
