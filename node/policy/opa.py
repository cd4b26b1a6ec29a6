"""Policy engine backed by an Open Policy Agent server (OPA REST data API).

Each decision is ``POST /v1/data/bxnode/lookup/decision`` with ``{"input": ...}``
(OPA REST API, "Get a Document (with Input)"), sent with opa-python-client.  The
server runs the same files as the in-process engine: ``opa run -s policies/``.

Fail closed: no answer (connection refused, timeout, HTTP 5xx) denies with
``policy_unavailable``; an answer that is not a decision document of the exact
shape (not JSON, HTTP 4xx, undefined result, wrong shape) denies with
``policy_error``.  Both are logged at error level without personal data.

Digest: with ``policy_dir`` given, the digest of that directory, computed exactly
as :class:`~node.policy.RegoPolicyEngine` does (the operator states the server runs
those files; this engine does not verify it).  Without it, SHA-256 over the
canonical JSON of the bundle revisions the server reports in its decision
provenance (``?provenance=true`` -> ``provenance.bundles``); a server that reports
no bundle revision cannot say which policy decided, so it is refused.

Thread safety: ``requests.Session`` is not documented as thread-safe, so each
thread gets its own client.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog
from opa_client import OpaClient

from node.core.errors import ConfigError, EnvironmentFault
from node.core.model import Decision, PolicyInput
from node.policy._decision import MalformedDecision, Reason, deny, parse_decision_document
from node.policy._sources import read_policy_dir

__all__ = ["OpaServerPolicyEngine"]

_log = structlog.get_logger(__name__)
_PACKAGE = "bxnode.lookup"
_RULE = "decision"
_DEFAULT_PORT = 8181


class _Unavailable(Exception):
    """The server gave no answer."""


class OpaServerPolicyEngine:
    """:class:`~node.policy.PolicyEngine` that asks an OPA server.  Build with :meth:`from_url`."""

    def __init__(self, *, host: str, port: int, ssl: bool, timeout_s: float, retries: int,
                 policy_dir: Path | None) -> None:
        self._client_args: dict[str, Any] = {
            "host": host, "port": port, "ssl": ssl, "timeout": timeout_s, "retries": retries,
        }
        self._policy_dir = policy_dir
        self._local = threading.local()
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()
        self._digest = self._read_digest()

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 1.5, retries: int = 1,
                 policy_dir: Path | None = None) -> OpaServerPolicyEngine:
        """Engine for the OPA server at ``url`` (``http[s]://host[:port]``, default port 8181).

        ``timeout_s`` bounds each HTTP attempt; ``retries`` extra attempts are made on
        connection errors and HTTP 500/502/504.  Raises ConfigError(policy_invalid) for a
        bad URL or policy directory; without ``policy_dir`` the server is asked for its
        provenance now (EnvironmentFault(policy_unavailable) if it does not answer).
        """
        parts = urlsplit(url)
        try:
            port = parts.port or _DEFAULT_PORT
        except ValueError as exc:
            raise ConfigError(f"bad OPA URL {url!r}: {exc}", reason="policy_invalid") from exc
        if (parts.scheme not in ("http", "https") or not parts.hostname
                or parts.path not in ("", "/") or parts.query or parts.fragment
                or parts.username or parts.password):
            raise ConfigError(f"OPA URL must be http[s]://host[:port], not {url!r}",
                              reason="policy_invalid")
        if timeout_s <= 0 or retries < 0:
            raise ConfigError("OPA timeout must be positive and retries not negative",
                              reason="policy_invalid")
        return cls(host=parts.hostname, port=port, ssl=parts.scheme == "https",
                   timeout_s=timeout_s, retries=retries, policy_dir=policy_dir)

    @property
    def digest(self) -> str:
        """Which policy decides: see the module docstring."""
        return self._digest

    def reload(self) -> None:
        """Re-read the digest (policy directory or server provenance); keep the old on error.

        The server loads its own policy (``opa run --watch`` or bundles); this only
        refreshes what audit records name.
        """
        self._digest = self._read_digest()

    def close(self) -> None:
        """Close every HTTP session this engine opened."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close_connection()

    def decide(self, inp: PolicyInput) -> Decision:
        """Ask the server.  No answer denies ``policy_unavailable``; a bad one ``policy_error``."""
        try:
            return parse_decision_document(self._query(inp.as_document()).get("result"))
        except _Unavailable as exc:
            reason, detail = Reason.POLICY_UNAVAILABLE, str(exc)
        except MalformedDecision as exc:
            reason, detail = Reason.POLICY_ERROR, str(exc)
        except Exception as exc:  # fail closed on anything else
            reason, detail = Reason.POLICY_ERROR, type(exc).__name__
        _log.error("policy_evaluation_failed", engine="opa", policy_digest=self._digest,
                   reason=reason.value, error=detail, requester=inp.requester_node,
                   responder=inp.responder_node)
        return deny(reason)

    def decide_query(self, query: str, doc: dict[str, Any]) -> dict[str, Any]:
        """POST ``doc`` to another decision document of the same policy (``data.a.b.rule`` ->
        ``/v1/data/a/b/rule``).  Failures deny with ``policy_unavailable`` / ``policy_error``;
        the caller checks the rest of the shape."""
        parts = query.split(".")
        try:
            if (len(parts) < 3 or parts[0] != "data"
                    or not all(p.isidentifier() and p.isascii() for p in parts[1:])):
                raise MalformedDecision(f"{query!r} is not a data query")
            answer = self._query(doc, package=".".join(parts[1:-1]), rule=parts[-1])
            result = answer.get("result")
            if not isinstance(result, dict) or not isinstance(result.get("allow"), bool):
                raise MalformedDecision("the decision is not an object with a boolean allow")
            return result
        except _Unavailable as exc:
            reason, detail = Reason.POLICY_UNAVAILABLE, str(exc)
        except MalformedDecision as exc:
            reason, detail = Reason.POLICY_ERROR, str(exc)
        except Exception as exc:  # fail closed on anything else
            reason, detail = Reason.POLICY_ERROR, type(exc).__name__
        _log.error("policy_evaluation_failed", engine="opa", query=query,
                   policy_digest=self._digest, reason=reason.value, error=detail)
        return {"allow": False, "reasons": [reason.value]}

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = OpaClient(**self._client_args)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _query(self, doc: dict[str, Any], provenance: bool = False, *,
               package: str = _PACKAGE, rule: str = _RULE) -> dict[str, Any]:
        """POST the input to the decision document; return OPA's response object."""
        params = {"provenance": "true"} if provenance else None
        try:
            answer = self._client().query_rule(
                input_data=doc, package_path=package, rule_name=rule, query_params=params)
        except requests.JSONDecodeError as exc:
            raise MalformedDecision("the OPA server did not answer JSON") from exc
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status >= 500:
                raise _Unavailable(f"the OPA server answered HTTP {status}") from exc
            raise MalformedDecision(f"the OPA server answered HTTP {status}") from exc
        except requests.RequestException as exc:
            raise _Unavailable(f"the OPA server did not answer: {type(exc).__name__}") from exc
        if not isinstance(answer, dict):
            raise MalformedDecision("the OPA answer is not a JSON object")
        if "result" not in answer:
            raise MalformedDecision("the decision is undefined on the OPA server")
        return answer

    def _read_digest(self) -> str:
        if self._policy_dir is not None:
            return read_policy_dir(self._policy_dir).digest
        try:
            answer = self._query({}, provenance=True)
        except _Unavailable as exc:
            raise EnvironmentFault(str(exc), reason="policy_unavailable") from exc
        except MalformedDecision as exc:
            raise ConfigError(str(exc), reason="policy_invalid") from exc
        provenance = answer.get("provenance")
        bundles = provenance.get("bundles") if isinstance(provenance, dict) else None
        revisions = {
            name: info["revision"]
            for name, info in (bundles or {}).items()
            if isinstance(info, dict) and isinstance(info.get("revision"), str)
            and info["revision"]
        } if isinstance(bundles, dict) else {}
        if not revisions:
            raise ConfigError("the OPA server reports no bundle revision; pass policy_dir",
                              reason="policy_invalid")
        canonical = json.dumps(revisions, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()
