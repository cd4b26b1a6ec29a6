"""Keeping the trusted registry: load at start, apply verified versions, refuse the rest.

Trust store: the node database.  Every applied version is kept in the
``registry_versions`` table (and served to peers from there); the newest row is
the trusted version.  The registry file named in ``node.toml`` is an *input*:

* first start (no row yet): the file is the trust anchor, checked only against
  its own governance keys (as TUF's shipped root), and recorded as version N;
* later: a file newer than the trusted version is offered like any other
  version (``bxnode registry publish`` writes it), an older one is ignored.

Each applied version is written to the file too (atomically), so an operator
reads the current version there.  Every applied version is audited
(``registry_applied``: version, digest, source); every refused document is
audited once per distinct document (``registry_refused``: reason, source) and
logged every time.  A refused document changes nothing.

Threads: a keeper uses the node's store and audit log, which belong to the
event loop thread; :meth:`RegistryKeeper.refresh_async` does the network calls
in a worker thread and applies on the caller's thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from node.core.errors import BxError, ConfigError, EnvironmentFault
from node.federation.registry import (
    MAX_REGISTRY_BYTES,
    NodeEntry,
    Registry,
    RegistryError,
    parse_registry,
    verify_chain,
    verify_self_signed,
)
from node.federation.registry_directory import RegistryDirectory
from node.store.db import Database
from node.store.registry import RegistryTables, RegistryVersionRow

__all__ = ["AuditAppender", "RefreshReport", "RegistryFetcher", "RegistryKeeper",
           "load_anchor", "write_atomically"]

log = structlog.get_logger("bxnode.registry")

#: At most this many versions are walked in one offer (each is fetched separately).
MAX_CHAIN = 100


class AuditAppender(Protocol):
    def append(self, event: dict[str, Any], *, time_ms: int) -> int: ...


class RegistryFetcher(Protocol):
    def fetch(self, peer: NodeEntry, version: int) -> bytes:
        """The peer's registry document ``version`` (0: its current one).

        Raises :class:`EnvironmentFault` when the peer cannot be reached or has no such version.
        """
        ...


@dataclass
class RefreshReport:
    applied: list[int] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    unreachable: list[str] = field(default_factory=list)


def load_anchor(path: Path) -> Registry:
    """Read a registry file and check it against its own governance keys."""
    try:
        data = _read_bounded(path)
    except FileNotFoundError:
        raise ConfigError(f"registry file {path} does not exist", reason="missing_file") from None
    try:
        reg = parse_registry(data)
        verify_self_signed(reg)
    except RegistryError as exc:
        raise ConfigError(f"registry file {path} is refused: {exc} ({exc.reason})",
                          reason="bad_registry") from exc
    return reg


def _read_bounded(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(MAX_REGISTRY_BYTES + 1)


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RegistryKeeper:
    """Owns the trusted version: the directory's contents, the history table and the file."""

    def __init__(self, *, directory: RegistryDirectory, store: Database, audit: AuditAppender,
                 path: Path, node_id: str, clock_ms: Callable[[], int],
                 fetcher: RegistryFetcher | None = None) -> None:
        self.directory = directory
        self._store = store
        self._tables = RegistryTables(store)
        self._audit = audit
        self._path = path
        self._node_id = node_id
        self._clock_ms = clock_ms
        self._fetcher = fetcher
        self._refused_digests: set[str] = set()

    def now_ms(self) -> int:
        return self._clock_ms()

    @property
    def path(self) -> Path:
        """The registry file named in node.toml."""
        return self._path

    def audit_served(self, *, requester: str, tls_peer: str, version: int, outcome: str,
                     status: str = "OK", reason: str = "") -> None:
        """One audit entry for a GetRegistry call, served or refused (a durable step)."""
        entry: dict[str, Any] = {"event": "registry_served", "requester": requester,
                                 "tls_peer": tls_peer, "asked_version": version,
                                 "outcome": outcome, "status": status}
        if reason:
            entry["reason"] = reason
        with self._store.transaction():
            self._audit.append(entry, time_ms=self._clock_ms())

    # --- start-up ----------------------------------------------------------------------------

    @staticmethod
    def trusted_version(*, store: Database, path: Path) -> Registry:
        """The newest applied version in the database, or the file as anchor on first start."""
        tables = RegistryTables(store)
        tables.ensure_schema()
        document = tables.latest_document()
        if document is None:
            return load_anchor(path)
        try:
            return parse_registry(document)
        except RegistryError as exc:
            raise ConfigError(f"the stored registry does not parse: {exc}",
                              reason="bad_registry") from exc

    def start(self) -> None:
        """Record the anchor on first start (audited); then offer a newer registry file."""
        self._tables.ensure_schema()
        current = self.directory.current
        if self._tables.digest(current.version) is None:
            self._commit([current], source="anchor", previous=None)
        else:
            self.check_file()

    # --- applying --------------------------------------------------------------------------

    def offer(self, chain: Sequence[bytes], *, source: str) -> Registry:
        """Apply versions N+1.. of ``chain`` if they verify; audit and raise otherwise."""
        now = self._clock_ms()
        trusted = self.directory.current
        regs: list[Registry] = []
        try:
            if len(chain) > MAX_CHAIN:
                raise RegistryError(f"more than {MAX_CHAIN} versions offered at once",
                                    reason="chain_too_long")
            regs = [parse_registry(raw) for raw in chain]
            verify_chain(trusted, regs, now_ms=now)
        except RegistryError as exc:
            self._refused(exc, source=source, raw=chain[-1] if chain else b"",
                          version=regs[-1].version if regs else None)
            raise
        self._commit(regs, source=source, previous=trusted)
        return regs[-1]

    def _commit(self, regs: Sequence[Registry], *, source: str,
                previous: Registry | None) -> None:
        now = self._clock_ms()
        final = regs[-1]
        write_atomically(self._path, final.to_bytes())  # file first: a crash leaves it newer
        with self._store.transaction():
            for reg in regs:
                self._tables.add(RegistryVersionRow(reg.version, reg.digest, reg.to_bytes(), now))
                self._audit.append({
                    "event": "registry_applied", "version": reg.version, "digest": reg.digest,
                    "source": source, "previous_version": previous.version if previous else None,
                    "expires_ms": reg.expires_ms, "members": len(reg.members),
                    "revoked": len(reg.revoked)}, time_ms=now)
                previous = reg
        self.directory.swap(final)
        log.info("registry_applied", version=final.version, digest=final.digest, source=source)

    def _refused(self, exc: RegistryError, *, source: str, raw: bytes,
                 version: int | None) -> None:
        digest = hashlib.sha256(raw).hexdigest()
        log.warning("registry_refused", reason=exc.reason, detail=exc.message, source=source,
                    version=version)
        key = f"{digest}:{exc.reason}"
        if key in self._refused_digests:
            return  # audited already: a peer serving the same bad document every refresh
        self._refused_digests.add(key)
        with self._store.transaction():
            self._audit.append({"event": "registry_refused", "reason": exc.reason,
                                "detail": exc.message[:200], "source": source,
                                "version": version, "document_sha256": digest,
                                "trusted_version": self.directory.current.version},
                               time_ms=self._clock_ms())

    # --- the history, for peers --------------------------------------------------------------

    def document(self, version: int) -> bytes | None:
        """The stored document of ``version`` (0: the current one)."""
        if version == 0:
            return self.directory.current.to_bytes()
        return self._tables.document(version)

    # --- sources -----------------------------------------------------------------------------

    def check_file(self) -> Registry | None:
        """Offer the registry file if it holds a newer version (``bxnode registry publish``)."""
        try:
            raw = _read_bounded(self._path)
        except OSError:
            return None
        current = self.directory.current
        if hashlib.sha256(raw).hexdigest() == hashlib.sha256(current.to_bytes()).hexdigest():
            return None
        try:
            version = parse_registry(raw).version
        except RegistryError as exc:
            self._refused(exc, source="file", raw=raw, version=None)
            return None
        if version <= current.version:
            return None
        try:
            return self.offer([raw], source="file")
        except RegistryError:
            return None

    def _peers(self) -> list[NodeEntry]:
        """Nodes to fetch from, even when the registry is expired (that is when we must)."""
        reg = self.directory.current
        return [m for m in reg.members
                if m.node_id != self._node_id and "node" in m.roles
                and not reg.is_revoked("node_id", m.node_id)]

    def _fetch_chain(self, peer: NodeEntry, have: int) -> tuple[list[bytes], str | None]:
        """Newer versions from ``peer``: ([N+1 .. latest], None), or ([], reason)."""
        assert self._fetcher is not None
        latest_raw = self._fetcher.fetch(peer, 0)
        try:
            latest = parse_registry(latest_raw).version
        except RegistryError:
            return [latest_raw], None  # let offer() refuse it, with the reason, audited
        if latest <= have:
            return [], None
        if latest - have > MAX_CHAIN:
            return [latest_raw], None  # refused in offer(): version_gap
        chain = [self._fetcher.fetch(peer, v) for v in range(have + 1, latest)]
        return [*chain, latest_raw], None

    def refresh_once(self) -> RefreshReport:
        """The file, then every peer: fetch and apply anything newer.  Blocking."""
        report = RefreshReport()
        fetched = self._fetch_all(report)
        self._apply_fetched(fetched, report)
        return report

    async def refresh_async(self) -> RefreshReport:
        """As :meth:`refresh_once`, fetching in a worker thread, applying on this thread."""
        report = RefreshReport()
        if self.check_file() is not None:
            report.applied.append(self.directory.current.version)
        fetched = await asyncio.to_thread(self._fetch_all, report, skip_file=True)
        self._apply_fetched(fetched, report)
        return report

    def _fetch_all(self, report: RefreshReport, *, skip_file: bool = False
                   ) -> list[tuple[str, list[bytes]]]:
        if not skip_file and self.check_file() is not None:
            report.applied.append(self.directory.current.version)
        out: list[tuple[str, list[bytes]]] = []
        if self._fetcher is None:
            return out
        have = self.directory.current.version
        for peer in self._peers():
            try:
                chain, _ = self._fetch_chain(peer, have)
            except (EnvironmentFault, BxError) as exc:
                report.unreachable.append(peer.node_id)
                log.info("registry_peer_unreachable", peer=peer.node_id, reason=exc.reason)
                continue
            if chain:
                out.append((peer.node_id, chain))
        return out

    def _apply_fetched(self, fetched: list[tuple[str, list[bytes]]],
                       report: RefreshReport) -> None:
        for peer_id, chain in fetched:
            have = self.directory.current.version
            try:
                versions = [parse_registry(c).version for c in chain]
            except RegistryError:
                versions = []
            if versions and versions[-1] <= have:
                continue  # another peer's chain got us there already
            if versions and versions[0] <= have:
                chain = [c for c, v in zip(chain, versions, strict=True) if v > have]
            try:
                reg = self.offer(chain, source=f"peer:{peer_id}")
            except RegistryError as exc:
                report.refused.append((peer_id, exc.reason))
                continue
            report.applied.append(reg.version)

