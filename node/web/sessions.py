"""Console sessions, CSRF tokens and the sign-in rate limit, on the injected clock.

A session is created when a browser first asks for the sign-in page (anonymous: it only
carries the CSRF token of the sign-in form) and is replaced by a fresh one, with a new id
and a new CSRF token, when the officer signs in (no session fixation).  Sessions, the
OpenID Connect sign-ins under way and each officer's language and time zone live in the
node's database (node/store/console_sessions.py: found by the SHA-256 of the cookie, the
record sealed on PostgreSQL), so every replica and worker of the node knows them: behind
a load balancer without sticky sessions an officer stays signed in wherever a request
lands.  A session nobody used for ``idle_timeout_s`` has ended: the next request finds
nothing and signs in again.  The officer's roles are never stored here: each request
reads the node's role table, so taking a role away takes effect at once.

Every step runs on the database thread: reads through ``read``, writes through ``write``
(the node's group commit, durable before the reply).  A request's session is read, its
idle time restarted, in one write; it is written again at the end of the request only if
the page changed it (:meth:`SessionStore.save`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from node.store.console_sessions import ConsoleTables

__all__ = ["COOKIE", "MAX_SESSIONS", "Session", "SessionStore", "SignInLimiter", "csrf_ok"]

Run = Callable[[Callable[[], Any]], Awaitable[Any]]

#: ``__Host-``: the browser only accepts it Secure, from this origin, for Path=/.
COOKIE = "__Host-bxnode-console"
MAX_SESSIONS = 10_000  # anonymous ones are dropped first when full
MAX_OIDC_PENDING = 10_000
_MAX_COOKIE = 128


@dataclass(slots=True)
class Session:
    csrf: str
    last_ms: int
    identity: str = ""           # "" while anonymous
    auth: str = ""               # "certificate" | "token"
    client_system: str = ""
    language: str = ""
    timezone: str = ""
    flash: str = ""              # one message for the next page (a msgid, translated there)
    last_followup: str = ""      # the follow-up just filed, highlighted on its page

    @property
    def signed_in(self) -> bool:
        return bool(self.identity)

    def record(self) -> dict[str, str]:
        """What is stored (everything but the time, which has its own column)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "last_ms"}

    @classmethod
    def from_record(cls, record: dict[str, Any], last_ms: int) -> Session:
        names = {f.name for f in dataclasses.fields(cls)} - {"last_ms"}
        return cls(last_ms=last_ms, **{k: str(v) for k, v in record.items() if k in names})


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("ascii", "replace")).hexdigest()


def _usable(cookie: str | None) -> bool:
    return bool(cookie) and len(cookie or "") <= _MAX_COOKIE


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(expected) and isinstance(given, str) and hmac.compare_digest(
        expected.encode(), given.encode("utf-8", "replace"))


class SessionStore:
    """The console's sessions in ``tables`` (callers on the event loop, the steps on the
    database thread through ``read`` and ``write``)."""

    def __init__(self, *, tables: ConsoleTables, read: Run, write: Run, idle_timeout_s: int,
                 clock_ms: Callable[[], int]) -> None:
        self.tables = tables
        self._read = read
        self._write = write
        self.idle_ms = idle_timeout_s * 1000
        self.clock_ms = clock_ms

    async def get(self, cookie: str | None) -> Session | None:
        """The live session behind ``cookie`` (its idle time restarts), else None."""
        if not _usable(cookie):
            return None
        key, now = _key(str(cookie)), self.clock_ms()

        def step() -> Session | None:
            stored = self.tables.session(key)
            if stored is None or stored.ended_ms is not None:
                return None
            if now - stored.last_ms > self.idle_ms:
                self.tables.end(key, now)
                return None
            self.tables.touch(key, now)
            return Session.from_record(stored.record, now)

        got: Session | None = await self._write(step)
        return got

    async def expired(self, cookie: str | None) -> bool:
        """Whether ``cookie`` named a session that timed out (for the message shown)."""
        if not _usable(cookie):
            return False
        key, now = _key(str(cookie)), self.clock_ms()
        stored = await self._read(lambda: self.tables.session(key))
        return stored is not None and (stored.ended_ms is not None
                                       or now - stored.last_ms > self.idle_ms)

    async def new(self, *, identity: str = "", auth: str = "", client_system: str = "",
                  language: str = "", timezone: str = "") -> tuple[str, Session]:
        cookie, now = secrets.token_urlsafe(32), self.clock_ms()
        s = Session(csrf=secrets.token_urlsafe(32), last_ms=now, identity=identity,
                    auth=auth, client_system=client_system, language=language,
                    timezone=timezone)

        def step() -> None:
            self.tables.prune(now_ms=now, idle_ms=self.idle_ms, keep=MAX_SESSIONS - 1)
            self.tables.put_session(_key(cookie), s.record(), signed_in=s.signed_in,
                                    last_ms=now)

        await self._write(step)
        return cookie, s

    async def save(self, cookie: str, session: Session) -> None:
        """Store what a page changed of a live session (nothing if it was dropped or has
        ended meanwhile: a session is never brought back)."""
        if not _usable(cookie):
            return
        key = _key(cookie)
        await self._write(lambda: self.tables.update_session(
            key, session.record(), signed_in=session.signed_in))

    async def drop(self, cookie: str | None) -> None:
        if _usable(cookie):
            key = _key(str(cookie))
            await self._write(lambda: self.tables.drop(key))

    async def count(self, *, identity: str | None = None) -> int:
        """How many live sessions ``identity`` is signed in with (None: all, anonymous
        ones too)."""
        since = self.clock_ms() - self.idle_ms
        records = await self._read(lambda: self.tables.live_sessions(since_ms=since))
        return sum(1 for r in records if identity is None or r.get("identity") == identity)

    # --- OpenID Connect sign-ins under way, and officers' preferences -----------------------

    async def begin_oidc(self, saved: dict[str, str], *, ttl_ms: int) -> str:
        """Keep a sign-in's state, nonce and PKCE verifier; the cookie value naming them."""
        cookie, now = secrets.token_urlsafe(24), self.clock_ms()

        def step() -> None:
            self.tables.prune_oidc(before_ms=now - ttl_ms, keep=MAX_OIDC_PENDING)
            self.tables.put_oidc(_key(cookie), dict(saved), created_ms=now)

        await self._write(step)
        return cookie

    async def take_oidc(self, cookie: str | None, *, ttl_ms: int) -> dict[str, str]:
        """The sign-in ``cookie`` names, used once; {} if none, or older than ``ttl_ms``."""
        if not _usable(cookie):
            return {}
        key, now = _key(str(cookie)), self.clock_ms()
        got = await self._write(lambda: self.tables.take_oidc(key))
        if got is None or now - got[1] > ttl_ms:
            return {}
        return {str(k): str(v) for k, v in got[0].items()}

    async def prefs(self, officer: str) -> tuple[str, str] | None:
        got: tuple[str, str] | None = await self._read(lambda: self.tables.prefs(officer))
        return got

    async def put_prefs(self, officer: str, language: str, timezone: str) -> None:
        await self._write(lambda: self.tables.put_prefs(officer, language, timezone))


class SignInLimiter:
    """At most ``per_minute`` sign-in attempts per client address in any 60 s."""

    def __init__(self, *, per_minute: int, clock_ms: Callable[[], int],
                 max_clients: int = 10_000) -> None:
        self.per_minute = per_minute
        self.clock_ms = clock_ms
        self.max_clients = max_clients
        self._seen: dict[str, deque[int]] = {}

    def allow(self, client: str) -> bool:
        now = self.clock_ms()
        q = self._seen.get(client)
        if q is None:
            if len(self._seen) >= self.max_clients:
                self._seen.clear()  # bounded memory; the limit restarts for everyone
            q = self._seen[client] = deque()
        while q and now - q[0] >= 60_000:
            q.popleft()
        if len(q) >= self.per_minute:
            return False
        q.append(now)
        return True
