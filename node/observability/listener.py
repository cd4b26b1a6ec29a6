"""The metrics endpoint: ``GET /metrics`` over plain HTTP on a local listener of its own.

A small threaded HTTP server (the standard library's) on a loopback address or a unix
socket, never the peer port (node/observability/settings.py).  It serves only ``GET
/metrics`` (404 for any other path, 501 for any other method); a connection idle for
``TIMEOUT_S`` is dropped, so a stalled client cannot hold a thread.  It reads only
counters: nothing it serves touches the database.
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import stat
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from node.observability.prometheus import NodeMetrics
from node.observability.settings import MetricsSettings

__all__ = ["TIMEOUT_S", "MetricsListener"]

log = structlog.get_logger("bxnode.metrics")

TIMEOUT_S = 5.0


class _Handler(BaseHTTPRequestHandler):
    server_version = "bxnode-metrics"
    sys_version = ""
    protocol_version = "HTTP/1.0"
    timeout = TIMEOUT_S

    def do_GET(self) -> None:
        if urlsplit(self.path).path != "/metrics":
            self._send(404, b"not found: this endpoint serves /metrics only\n",
                       "text/plain; charset=utf-8")
            return
        metrics: NodeMetrics = self.server.metrics  # type: ignore[attr-defined]
        self._send(200, metrics.exposition(), CONTENT_TYPE_LATEST)

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:  # a unix socket's peer has no address
        return "local"

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: a scrape every few seconds is not news."""


class _TcpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class MetricsListener:
    """One node process's metrics endpoint; :meth:`start` it, :meth:`stop` it."""

    def __init__(self, *, metrics: NodeMetrics, settings: MetricsSettings) -> None:
        self.metrics = metrics
        self.settings = settings
        self.port = 0
        self._server: socketserver.BaseServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Bind and serve on a thread of its own; returns where it listens."""
        s = self.settings
        server: socketserver.BaseServer
        if s.unix_path is not None:
            _clear_stale_socket(s.unix_path)
            server = _UnixServer(str(s.unix_path), _Handler)
            os.chmod(s.unix_path, 0o600)
            where = f"unix:{s.unix_path}"
        else:
            family = socket.AF_INET6 if ":" in s.host else socket.AF_INET
            cls = type("_Tcp", (_TcpServer,), {"address_family": family})
            server = cls((s.host, s.port), _Handler)
            self.port = int(server.server_address[1])  # type: ignore[index]
            where = (f"[{s.host}]:{self.port}" if family == socket.AF_INET6
                     else f"{s.host}:{self.port}")
        server.metrics = self.metrics  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="bxnode-metrics",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        log.info("metrics_listening", address=where)
        return where

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        if self.settings.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.settings.unix_path.unlink()


def _clear_stale_socket(path: Path) -> None:
    """A socket left by a node that died is removed; any other file there is an error."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"[metrics] address: {path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # nobody listens: left behind
            return
    raise OSError(f"[metrics] address: another process listens on {path}")
