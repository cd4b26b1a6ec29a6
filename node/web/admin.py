"""The watchlist manager's, the auditor's and the administrator's pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from node.app import NodeRuntime
    from node.local.server import LocalApiServer
    from node.web.app import Console

__all__ = ["NodeFacts", "routes"]


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What the admin pages read: the node's runtime and its LocalService."""

    rt: NodeRuntime
    api: LocalApiServer


def routes(app: web.Application, c: Console) -> None:
    _ = (app, c, Any)
