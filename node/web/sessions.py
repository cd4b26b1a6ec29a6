"""Console sessions, CSRF tokens and the sign-in rate limit: data and the injected clock only.

A session is created when a browser first asks for the sign-in page (anonymous: it only
carries the CSRF token of the sign-in form and, during an OpenID Connect sign-in, the
``state``, ``nonce`` and PKCE verifier) and is replaced by a fresh one, with a new id and a
new CSRF token, when the officer signs in (no session fixation).  Only a SHA-256 of the
cookie value is kept, so a memory dump does not hand out live sessions.  A session
nobody used for ``idle_timeout_s`` is gone: the next request finds nothing and signs in
again.  The officer's roles are never stored here: each request reads the node's role
table, so taking a role away takes effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["COOKIE", "MAX_SESSIONS", "Session", "SessionStore", "SignInLimiter", "csrf_ok"]

#: ``__Host-``: the browser only accepts it Secure, from this origin, for Path=/.
COOKIE = "__Host-bxnode-console"
MAX_SESSIONS = 10_000  # anonymous ones are dropped first when full
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
    oidc: dict[str, str] = field(default_factory=dict)  # state, nonce, verifier (sign-in only)
    flash: str = ""              # one message for the next page (a msgid, translated there)
    last_followup: str = ""      # the follow-up just filed, highlighted on its page

    @property
    def signed_in(self) -> bool:
        return bool(self.identity)


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("ascii", "replace")).hexdigest()


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(expected) and isinstance(given, str) and hmac.compare_digest(
        expected.encode(), given.encode("utf-8", "replace"))


class SessionStore:
    def __init__(self, *, idle_timeout_s: int, clock_ms: Callable[[], int]) -> None:
        self.idle_ms = idle_timeout_s * 1000
        self.clock_ms = clock_ms
        self._sessions: dict[str, Session] = {}
        self._ended: dict[str, int] = {}  # sessions that timed out (key -> when), for the message

    def get(self, cookie: str | None) -> Session | None:
        """The live session behind ``cookie`` (its idle time restarts), else None."""
        if not cookie or len(cookie) > _MAX_COOKIE:
            return None
        key = _key(cookie)
        s = self._sessions.get(key)
        now = self.clock_ms()
        if s is None:
            return None
        if now - s.last_ms > self.idle_ms:
            self._end(key, now)
            return None
        s.last_ms = now
        return s

    def expired(self, cookie: str | None) -> bool:
        """Whether ``cookie`` named a session that timed out (for the message shown)."""
        if not cookie or len(cookie) > _MAX_COOKIE:
            return False
        key = _key(cookie)
        s = self._sessions.get(key)
        if s is not None and self.clock_ms() - s.last_ms > self.idle_ms:
            self._end(key, self.clock_ms())
        return key in self._ended

    def _end(self, key: str, now: int) -> None:
        self._sessions.pop(key, None)
        if len(self._ended) >= MAX_SESSIONS:
            self._ended.clear()
        self._ended[key] = now

    def new(self, *, identity: str = "", auth: str = "", client_system: str = "",
            language: str = "", timezone: str = "") -> tuple[str, Session]:
        self._prune()
        cookie = secrets.token_urlsafe(32)
        s = Session(csrf=secrets.token_urlsafe(32), last_ms=self.clock_ms(), identity=identity,
                    auth=auth, client_system=client_system, language=language,
                    timezone=timezone)
        self._sessions[_key(cookie)] = s
        return cookie, s

    def drop(self, cookie: str | None) -> None:
        if cookie and len(cookie) <= _MAX_COOKIE:
            self._sessions.pop(_key(cookie), None)
            self._ended.pop(_key(cookie), None)

    def _prune(self) -> None:
        now = self.clock_ms()
        for k in [k for k, s in self._sessions.items() if now - s.last_ms > self.idle_ms]:
            self._end(k, now)
        for k in [k for k, t in self._ended.items() if now - t > self.idle_ms]:
            del self._ended[k]
        if len(self._sessions) >= MAX_SESSIONS:
            anon = [k for k, s in self._sessions.items() if not s.signed_in]
            for k in (anon or list(self._sessions))[: len(self._sessions) - MAX_SESSIONS + 1]:
                del self._sessions[k]

    def __len__(self) -> int:
        return len(self._sessions)

    def count(self, *, identity: str) -> int:
        """How many live sessions ``identity`` is signed in with."""
        now = self.clock_ms()
        return sum(1 for s in self._sessions.values()
                   if s.identity == identity and now - s.last_ms <= self.idle_ms)


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
