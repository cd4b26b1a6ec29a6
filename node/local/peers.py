"""The serving node's own peer client, for the LocalService.

:class:`~node.client.peer.PeerClient` keeps a receipt and an audit entry for every
attempt.  Inside ``bxnode serve`` the database belongs to one thread (the
:class:`~node.server.group_commit.BatchWriter`'s), and the audit log is the server's own
(one Merkle tree, one writer).  :class:`ServingPeerClient` therefore sends from worker
threads, as the CLI does, and runs every database step on the database thread, inside the
server's group commit: a receipt and its audit entry are durable before the caller sees
the answer.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from node.client.peer import PeerClient
from node.core.members import MemberDirectory
from node.core.signer import SigningKeyLike
from node.federation.pki import TlsMaterial
from node.server.group_commit import BatchWriter
from node.store.db import Database

__all__ = ["ServingPeerClient"]

T = TypeVar("T")


class ServingPeerClient(PeerClient):
    def __init__(self, *, node_id: str, signing_key: SigningKeyLike,
                 directory: MemberDirectory, tls: TlsMaterial | None, store: Database,
                 audit_log: Any, writer: BatchWriter, loop: asyncio.AbstractEventLoop,
                 clock_ms: Callable[[], int], dev_plaintext: bool = False,
                 timeout_s: float = 10.0) -> None:
        super().__init__(node_id=node_id, signing_key=signing_key, directory=directory,
                         tls=tls, store=None, clock_ms=clock_ms, dev_plaintext=dev_plaintext,
                         timeout_s=timeout_s)
        self._store = store          # used only on the database thread (see on_db)
        self.audit_log = audit_log   # the server's own MerkleAuditLog
        self._writer = writer
        self._loop = loop

    def on_db(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the database thread inside the group commit; wait until durable.
        Called from a worker thread (or, nested, from the database thread itself)."""
        if self._writer.thread_id is not None and threading.get_ident() == self._writer.thread_id:
            return fn()
        return asyncio.run_coroutine_threadsafe(self._writer.run_in_batch(fn),
                                                self._loop).result()

    def keep(self, *args: Any, **kwargs: Any) -> None:
        self.on_db(functools.partial(PeerClient.keep, self, *args, **kwargs))
