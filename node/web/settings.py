"""``[console]`` in node.toml: the operator console's listener (off by default).

Parsed strictly, like ``[local]``: an unknown key, a wrong type or a value out of range is
one line naming the key.  The console signs officers in with the LocalService's identities
(``[local] client_ca``, ``[local] oidc_*`` and the role table); this section only says
where it listens and how its sessions behave.  No I/O here beyond resolving paths.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.config_section import Section

__all__ = ["LANGUAGES", "ConsoleSettings"]

#: The catalogues shipped (node/web/locale/<lang>/LC_MESSAGES/messages.po).
LANGUAGES = ("ru", "en")

_KEYS = frozenset({"enabled", "listen", "public_url", "tls_cert", "tls_key", "client_ca",
                   "idle_timeout_s", "sign_in_attempts_per_minute", "default_language",
                   "timezone", "max_upload_bytes", "oidc_authorize_url", "oidc_token_url",
                   "oidc_client_id", "oidc_client_secret_file", "oidc_ca"})
MAX_UPLOAD_HARD = 8 * 1024 * 1024


def _port(listen: str) -> int | None:
    host, _, port = listen.rpartition(":")
    return int(port) if host and port.isdigit() and 0 < int(port) < 65536 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleSettings:
    """``enabled`` (default false) and ``listen`` (``host:port``, never the peer port);
    ``public_url`` the ``https://`` address officers' browsers use (default
    ``https://<listen>``: the Origin every form post must come from, and the OIDC
    redirect's base).  ``tls_cert`` / ``tls_key``: the listener's certificate (default the
    node's); ``client_ca``: the CA of officers' certificates (default ``[local]
    client_ca``).  ``idle_timeout_s`` ends a session nobody used for that long;
    ``sign_in_attempts_per_minute`` bounds sign-in attempts per client address.
    ``oidc_authorize_url`` + ``oidc_token_url`` + ``oidc_client_id`` (default ``[local]
    oidc_audience``) + ``oidc_client_secret_file`` enable OpenID Connect sign-in
    (authorization-code flow with PKCE; the ID token is checked by the LocalService's
    verifier, ``[local] oidc_*``); ``oidc_ca`` verifies the token endpoint's TLS."""

    enabled: bool = False
    listen: str = "127.0.0.1:8443"
    public_url: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    idle_timeout_s: int = 900
    sign_in_attempts_per_minute: int = 10
    default_language: str = "ru"
    timezone: str = "UTC"
    max_upload_bytes: int = 2 * 1024 * 1024
    oidc_authorize_url: str = ""
    oidc_token_url: str = ""
    oidc_client_id: str = ""
    oidc_client_secret_file: Path | None = None
    oidc_ca: Path | None = None

    @property
    def oidc(self) -> bool:
        return bool(self.oidc_authorize_url)

    @property
    def origin(self) -> str:
        """``scheme://host:port`` of public_url: what a same-site form post says it is."""
        url = self.public_url or f"https://{self.listen}"
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"

    @classmethod
    def parse(cls, root: Path, doc: Any, *, peer_listen: str) -> ConsoleSettings:
        sec = Section("console", doc, root, _KEYS)
        text, path, num = sec.text, sec.path, sec.num

        def https(key: str) -> str:
            value = text(key)
            if value and not value.startswith("https://"):
                raise sec.error(f"{key} must be an https:// URL")
            return value

        enabled = sec.flag("enabled", False)
        listen = text("listen", "127.0.0.1:8443")
        port = _port(listen)
        if port is None:
            raise sec.error("listen must be host:port")
        if port == _port(peer_listen):
            raise sec.error(f"listen must not be the peer port ({peer_listen}): the "
                            "console is for the agency's network")
        lang = text("default_language", "ru")
        if lang not in LANGUAGES:
            raise sec.error(f"default_language must be one of {', '.join(LANGUAGES)}")
        tz = text("timezone", "UTC")
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise sec.error(f"timezone {tz[:64]!r} is not a known zone") from None
        oidc = (https("oidc_authorize_url"), https("oidc_token_url"))
        secret = path("oidc_client_secret_file")
        if any(oidc) and not (all(oidc) and secret is not None):
            raise sec.error("oidc_authorize_url, oidc_token_url and oidc_client_secret_file "
                            "go together")
        return cls(enabled=enabled, listen=listen, public_url=https("public_url"),
                   tls_cert=path("tls_cert"), tls_key=path("tls_key"),
                   client_ca=path("client_ca"),
                   idle_timeout_s=num("idle_timeout_s", 900, 60, 86_400),
                   sign_in_attempts_per_minute=num("sign_in_attempts_per_minute", 10, 1, 1000),
                   default_language=lang, timezone=tz,
                   max_upload_bytes=num("max_upload_bytes", 2 * 1024 * 1024, 1024,
                                        MAX_UPLOAD_HARD),
                   oidc_authorize_url=oidc[0], oidc_token_url=oidc[1],
                   oidc_client_id=text("oidc_client_id"), oidc_client_secret_file=secret,
                   oidc_ca=path("oidc_ca"))
