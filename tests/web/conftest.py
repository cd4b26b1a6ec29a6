"""One real federation (KAZ-BS, KGZ-BS over mTLS, SQLCipher, Rego) with the LocalService and
the console on each, and one headless Chromium (Debian's, driven by Playwright), shared by
every module of tests/web (fixture ``web``, package scope: started once).

KAZ-BS's console also signs officers in through OpenID Connect, against
:class:`tests.web.idp.StandInIdentityProvider` (a stand-in, named so): the node's
``[local] oidc_*`` and ``[console] oidc_*`` come from the provider's discovery document and
JWKS, fetched over TLS as an operator would.

Officers' certificates come from each agency's own CA (tests/integration/test_local_api.py's
:class:`Officers`); Playwright presents them with its ``client_certificates`` option.  The
console's sessions and sign-in limits run on a :class:`ManualClock` (the injected clock:
idle timeouts are tested by moving it, never by sleeping).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from node.app import now_ms
from node.local.server import LocalApiServer, build_local_api
from node.web.app import Console
from node.web.server import build_console
from tests.federation import Federation, RunningNode, free_port, make_federation, sample_policy
from tests.integration.localapi import Officers
from tests.web.idp import StandInIdentityProvider

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"

ROLES = {
    "KAZ-BS": {"kz-duty": ["duty_officer"], "kz-auditor": ["auditor"],
               "kz-admin": ["admin"], "kz-watch": ["watchlist_manager"], "kz-nobody": [],
               "kz-oidc-duty": ["duty_officer"], "kz-oidc-nobody": [],
               "kz-duty-ru": ["duty_officer"]},
    "KGZ-BS": {"kg-desk-1": ["followup_desk"], "kg-desk-2": ["followup_desk"],
               "kg-auditor": ["auditor"], "kg-duty": ["duty_officer"], "kg-admin": ["admin"]},
}


class ManualClock:
    """The console's injected clock: starts at the real time, moves only when told."""

    def __init__(self) -> None:
        self._ms = now_ms()
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self._ms

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._ms += int(seconds * 1000)


@dataclass
class ConsoleNode:
    node: RunningNode
    api: LocalApiServer
    console: Console
    url: str
    officers: Officers

    def cert(self, officer: str) -> dict[str, Any]:
        crt = self.officers.root / f"{officer}.crt"
        if not crt.exists():
            self.officers.issue(officer)
        return {"origin": self.url.rstrip("/"), "certPath": str(crt),
                "keyPath": str(self.officers.root / f"{officer}.key")}


@dataclass
class Setup:
    fed: Federation
    nodes: dict[str, ConsoleNode]
    clock: ManualClock
    idp: StandInIdentityProvider
    browser: Any = None
    contexts: list[Any] = field(default_factory=list)
    signed_in: dict[tuple[str, str], Any] = field(default_factory=dict)  # test_console.officer

    def page(self, node_id: str, officer: str | None, *, locale: str = "en-GB") -> Any:
        """A fresh browser context presenting ``officer``'s certificate (None: none)."""
        n = self.nodes[node_id]
        ctx = self.browser.new_context(
            ignore_https_errors=True, locale=locale, viewport={"width": 1280, "height": 900},
            client_certificates=[n.cert(officer)] if officer else [])
        ctx.set_default_timeout(10_000)
        self.contexts.append(ctx)
        return ctx.new_page()

    def audit(self, node_id: str, action: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.fed.audit(node_id) if e.get("event") == "console_call"
                and (action is None or e.get("action") == action)]


def chromium_or_skip() -> None:
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/ensure-chromium.sh installs it as "
                    "root): the console's browser tests are skipped")


def start_console(node: RunningNode, officers: Officers, clock: ManualClock
                  ) -> ConsoleNode:
    async def build() -> tuple[LocalApiServer, Console]:
        api = build_local_api(node.runtime, node.server)
        assert api is not None
        await api.start()
        console = build_console(node.runtime, api, clock_ms=clock)
        assert console is not None
        cfg = node.runtime.cfg
        await console.start(cert=cfg.tls_cert, key=cfg.tls_key,
                            client_ca=cfg.local_api.client_ca)
        return api, console

    api, console = asyncio.run_coroutine_threadsafe(build(), node.loop).result(20)
    return ConsoleNode(node=node, api=api, console=console,
                       url=f"https://127.0.0.1:{console.port}/", officers=officers)


OIDC_CLIENT = "bxnode-kaz-console"


def _oidc_config(idp: StandInIdentityProvider, node_dir: Path) -> tuple[str, str]:
    """KAZ-BS's ``[local]`` and ``[console]`` OpenID Connect lines, from the provider's
    discovery document and JWKS (written to the node's directory)."""
    doc = idp.discover()
    (node_dir / "idp-jwks.json").write_text(json.dumps(doc["jwks"]))
    secret = node_dir / "console-client-secret"
    secret.write_text(idp.client_secret + "\n")
    secret.chmod(0o600)
    # The LocalService's bearer tokens are for its own audience; the console's ID tokens
    # for the console's client id (their aud): two names, so each check uses its own.
    local = (f'oidc_issuer = "{doc["issuer"]}"\noidc_audience = "bxnode-kaz-api"\n'
             f'oidc_jwks = "idp-jwks.json"\n')
    console = (f'oidc_client_id = "{OIDC_CLIENT}"\n'
               f'oidc_authorize_url = "{doc["authorization_endpoint"]}"\n'
               f'oidc_token_url = "{doc["token_endpoint"]}"\n'
               f'oidc_client_secret_file = "console-client-secret"\n'
               f'oidc_ca = "{idp.ca_file}"\n')
    return local, console


def make_setup(root: Path, *, console_extra: str = "") -> Setup:
    data = sample_policy()
    for a in data["bxnode"]["followup_agreements"]:
        if a["responder"] == "KGZ-BS" and a["requester"] == "KAZ-BS":
            a["four_eyes"] = True
    fed = make_federation(root, ("KAZ-BS", "KGZ-BS"), policy_data=data)
    clock = ManualClock()
    idp = StandInIdentityProvider(root=root / "idp", client_id=OIDC_CLIENT,
                                  client_secret="stand-in-secret-" + os.urandom(8).hex(),
                                  clock_ms=clock).start()
    nodes = {}
    try:
        for node_id in ("KAZ-BS", "KGZ-BS"):
            off = Officers(root / f"officers-{node_id}", node_id)
            roles = "\n".join(f'"{k}" = {json.dumps(v)}' for k, v in ROLES[node_id].items())
            port = free_port()
            local_oidc = console_oidc = ""
            if node_id == "KAZ-BS":
                idp.redirect_uri = f"https://127.0.0.1:{port}/signin/oidc/callback"
                local_oidc, console_oidc = _oidc_config(idp, fed.dirs[node_id])
            with (fed.dirs[node_id] / "node.toml").open("a") as f:
                # sign-in limit: its own test swaps in a small one; the shared federation's
                # many sign-ins on a clock that stands still would otherwise exhaust it
                f.write(f'\n[local]\napi_socket = "unix:officers.sock"\n'
                        f'client_ca = "{off.root / "ca.crt"}"\n{local_oidc}'
                        f'\n[console]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
                        f'timezone = "Asia/Almaty"\ndefault_language = "en"\n'
                        f'sign_in_attempts_per_minute = 1000\n{console_oidc}{console_extra}'
                        f"\n[local.roles]\n{roles}\n")
            nodes[node_id] = start_console(fed.start(node_id), off, clock)
    except BaseException:
        idp.stop()
        fed.stop_all()
        raise
    return Setup(fed=fed, nodes=nodes, clock=clock, idp=idp)


def stop_setup(s: Setup) -> None:
    for ctx in s.contexts:
        ctx.close()
    for n in s.nodes.values():
        async def stop(n: ConsoleNode = n) -> None:
            await n.console.stop()
            await n.api.stop(0.5)

        asyncio.run_coroutine_threadsafe(stop(), n.node.loop).result(10)
    s.fed.stop_all()
    s.idp.stop()


@pytest.fixture(scope="package")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    s = make_setup(tmp_path_factory.mktemp("console"))
    try:
        with sync_playwright() as pw:
            s.browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield s
            finally:
                for ctx in s.contexts:
                    ctx.close()
                s.contexts.clear()
                s.signed_in.clear()
                s.browser.close()
    finally:
        stop_setup(s)
