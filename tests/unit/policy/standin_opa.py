"""A stand-in for an Open Policy Agent server, for tests only."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import regopy

DECISION_PATH = "/v1/data/bxnode/lookup/decision"


class StandInOpaServer:
    """Answers OPA's data API (``POST /v1/data/bxnode/<package>/<rule>`` with ``{"input":
    ...}``) for the documents the node asks for (each package's ``decision``, the lookup's
    ``rate_limit``), by evaluating the same policy files with regopy.

    It stands in because no OPA server can be installed in this environment.  It
    implements only what OpaServerPolicyEngine uses: the result (omitted when
    undefined, as OPA does) and ``?provenance=true`` with a bundle revision.  It loads
    the policy directory independently of node.policy (its own file walk and
    compile), so the equivalence test compares two paths, not one with itself.

    ``mode`` makes it misbehave: "garbage" (200, not JSON), "wrong_shape",
    "undefined", "http500", "http404".
    """

    def __init__(self, *, policy_dir: Path, revision: str | None = "test-revision") -> None:
        rego = regopy.Interpreter()
        for path in sorted(policy_dir.rglob("*.rego")):
            rego.add_module(path.name, path.read_text())
        rego.add_data_json((policy_dir / "data.json").read_text())
        self._rego = rego
        #: Each document it has been asked for, compiled once: the lookup's, the crossings'
        #: and the follow-ups' decisions, the peers' rate limits
        #: (``/v1/data/bxnode/<package>/<rule>``).
        self._bundles = {DECISION_PATH: rego.build("data.bxnode.lookup.decision", [])}
        self._eval = regopy.Interpreter()
        self._lock = threading.Lock()
        self.revision = revision
        self.mode = "normal"
        #: Requester node ids whose decisions are held until :attr:`release` is set (a
        #: deliberately slow policy server); :attr:`held` is set when one arrives.
        self.hold_for: set[str] = set()
        self.held = threading.Event()
        self.release = threading.Event()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._http.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def __enter__(self) -> StandInOpaServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    def _answer(self, path: str, body: bytes) -> tuple[int, bytes]:
        url = urlsplit(path)
        parts = url.path.split("/")
        if len(parts) != 6 or parts[:4] != ["", "v1", "data", "bxnode"] or \
                not parts[4].isidentifier() or not parts[5].isidentifier():
            return 404, b'{"code": "resource_not_found", "message": "no such path"}'
        with self._lock:
            if url.path not in self._bundles:
                self._bundles[url.path] = self._rego.build(
                    f"data.bxnode.{parts[4]}.{parts[5]}", [])
            bundle = self._bundles[url.path]
        if self.mode == "http404":
            return 404, b'{"code": "resource_not_found"}'
        if self.mode == "http500":
            return 500, b'{"code": "internal_error", "message": "boom"}'
        if self.mode == "garbage":
            return 200, b"<html>not OPA</html>"
        doc: dict[str, Any] = json.loads(body)["input"]
        if doc.get("requester", {}).get("node") in self.hold_for:
            self.held.set()
            self.release.wait(timeout=30)
        with self._lock:
            self._eval.set_input(regopy.Input(doc))
            text = str(self._eval.query_bundle(bundle))
        answer: dict[str, Any] = {}
        if text != "undefined" and self.mode != "undefined":
            answer["result"] = json.loads(text)["expressions"][0]
        if self.mode == "wrong_shape":
            answer["result"] = {"allow": True}
        if parse_qs(url.query).get("provenance") == ["true"]:
            bundles = {} if self.revision is None else {"policies": {"revision": self.revision}}
            answer["provenance"] = {"version": "stand-in", "bundles": bundles}
        return 200, json.dumps(answer).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, payload = server._answer(self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
