"""Monitoring of a serving node: Prometheus metrics on a local listener of their own.

``[metrics] address`` in node.toml turns it on (``settings``).  ``bxnode serve`` builds an
``endpoint.MetricsEndpoint`` for its process: the per-process registry
(``prometheus.NodeMetrics``), handed to the components as their
:class:`node.core.metrics.Metrics`, the ``interceptor`` counting every call on the peer
port, and the HTTP ``listener``.  This package's own module imports nothing, so that
node/config.py can read ``settings`` without pulling in prometheus_client or gRPC.
"""
