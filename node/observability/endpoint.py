"""One serving process's monitoring: the registry, the interceptor and the listener."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from node.observability.interceptor import RequestMetrics
from node.observability.listener import MetricsListener
from node.observability.prometheus import NodeMetrics
from node.observability.settings import MetricsSettings

__all__ = ["MetricsEndpoint"]


def _version() -> str:
    try:
        return importlib.metadata.version("border-exchange-node")
    except importlib.metadata.PackageNotFoundError:
        return ""


class MetricsEndpoint:
    """Everything monitoring adds to one serving process.  Use :meth:`for_node`."""

    def __init__(self, *, metrics: NodeMetrics, listener: MetricsListener,
                 interceptor: RequestMetrics, port_file: Path | None) -> None:
        self.metrics = metrics
        self.listener = listener
        self.interceptor = interceptor
        self._port_file = port_file

    @classmethod
    def for_node(cls, rt: Any, settings: MetricsSettings, *, worker: int = 0,
                 node_dir: Path | None = None) -> MetricsEndpoint:
        """The endpoint of ``rt`` (a NodeRuntime), installed as ``rt.metrics`` so that the
        server built from it reports to it.  ``worker``: this process's index under
        ``serve --workers`` (its own port or socket)."""
        metrics = NodeMetrics(node_id=rt.cfg.node_id, version=_version())
        metrics.watch(policy=rt.policy, directory=rt.directory)
        rt.metrics = metrics
        port_file = None if node_dir is None else node_dir / (
            "metrics.port" if worker == 0 else f"metrics.worker-{worker}.port")
        return cls(metrics=metrics,
                   listener=MetricsListener(metrics=metrics,
                                            settings=settings.for_worker(worker)),
                   interceptor=RequestMetrics(metrics=metrics, directory=rt.directory),
                   port_file=port_file)

    def attach(self, server: Any) -> None:
        """Count the calls of ``server`` (a NodeServer, before it starts)."""
        server.interceptors = (*server.interceptors, self.interceptor)

    def start(self) -> str:
        where = self.listener.start()
        if self._port_file is not None and self.listener.port:
            from node.server.workers import write_port_file

            write_port_file(self._port_file, self.listener.port)
        return where

    def stop(self) -> None:
        self.listener.stop()
        if self._port_file is not None:
            self._port_file.unlink(missing_ok=True)
