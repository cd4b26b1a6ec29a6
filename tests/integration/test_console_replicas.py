"""An officer stays signed in whichever replica a request lands on (issue 16: console
sessions were kept in the memory of the process that made them).

Two replicas of KAZ-BS, A and B, on one PostgreSQL database, each serving the console on
its own port, as behind a load balancer without sticky sessions: the officer signs in by
certificate on A, and B knows the session, the CSRF token, what a page on B changed is
seen on A, and signing out on B signs the officer out on A.  Plain HTTPS requests (the
browser tests are tests/web/): the cookie is carried by hand from one replica to the other.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import shutil
import socket
import ssl
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from node.audit.log import MerkleAuditLog
from node.config import load_config
from node.store.open import open_database
from node.web.sessions import COOKIE
from tests.federation import DEMO, WATCHLISTS, Federation, RunningNode, free_port, make_federation
from tests.integration.localapi import Officers
from tests.pgcluster import PgCluster, node_on_postgresql
from tests.web.conftest import ConsoleNode, ManualClock, start_console

pytestmark = pytest.mark.integration

OFFICER = "kz-duty"
MANAGER = "kz-watch"


@dataclass
class Replicas:
    fed: Federation
    a: ConsoleNode
    b: ConsoleNode
    officers: Officers
    cluster: PgCluster


def _console_lines(officers: Officers, *, console_port: int, socket: str) -> str:
    return (f'\n[local]\napi_socket = "unix:{socket}"\nclient_ca = "{officers.root / "ca.crt"}"\n'
            f'\n[console]\nenabled = true\nlisten = "127.0.0.1:{console_port}"\n'
            f'timezone = "Asia/Almaty"\ndefault_language = "en"\n'
            f'\n[local.roles]\n"{OFFICER}" = ["duty_officer"]\n'
            f'"{MANAGER}" = ["watchlist_manager"]\n')


@pytest.fixture
def replicas(tmp_path: Path, pg_cluster: PgCluster, pg_dsn: str) -> Iterator[Replicas]:
    fed = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"))
    a_dir = fed.dirs["KAZ-BS"]
    node_on_postgresql(a_dir, pg_cluster, pg_dsn, watchlist=DEMO / WATCHLISTS["KAZ-BS"])
    b_dir = tmp_path / "kaz-b"
    shutil.copytree(a_dir, b_dir, ignore=shutil.ignore_patterns("node.db*", "*.sock"))
    officers = Officers(tmp_path / "officers", "KAZ-BS")
    officers.issue(OFFICER)
    officers.issue(MANAGER)
    with (a_dir / "node.toml").open("a") as f:
        f.write(_console_lines(officers, console_port=free_port(), socket="officers.sock"))
    with (b_dir / "node.toml").open("a") as f:
        f.write(_console_lines(officers, console_port=free_port(), socket="officers-b.sock"))
    clock = ManualClock()
    a = start_console(fed.start("KAZ-BS"), officers, clock)
    b_node = RunningNode(b_dir, f"127.0.0.1:{free_port()}")
    try:
        b = start_console(b_node, officers, clock)
    except BaseException:
        b_node.stop()
        fed.stop_all()
        raise
    try:
        yield Replicas(fed=fed, a=a, b=b, officers=officers, cluster=pg_cluster)
    finally:
        for n in (a, b):
            async def stop(n: ConsoleNode = n) -> None:
                await n.console.stop()
                await n.api.stop(0.5)

            asyncio.run_coroutine_threadsafe(stop(), n.node.loop).result(10)
        b_node.stop()
        fed.stop_all()
        if not pg_cluster.running:
            pg_cluster.start()


@dataclass
class Reply:
    status: int
    location: str
    cookie: str  # the session cookie the reply set, "" if none
    body: str
    reason: str


def _request(n: ConsoleNode, officers: Officers, method: str, path: str, *,
             cookie: str = "", form: dict[str, str] | None = None,
             upload: tuple[str, bytes] | None = None, officer: str = OFFICER) -> Reply:
    """One HTTPS request to ``n``'s console presenting ``officer``'s certificate; a POST
    of ``form`` (multipart with ``upload``, a file field ``file``: name and bytes)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the node's own TLS certificate: not what is tested
    ctx.load_cert_chain(str(officers.root / f"{officer}.crt"),
                        str(officers.root / f"{officer}.key"))
    conn = http.client.HTTPSConnection("127.0.0.1", n.console.port, context=ctx, timeout=20)
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    body: str | bytes | None = None
    if form is not None and upload is None:
        body = urllib.parse.urlencode(form)
        headers.update({"Content-Type": "application/x-www-form-urlencoded",
                        "Origin": n.console.settings.origin})
    elif form is not None and upload is not None:
        body, boundary = _multipart(form, upload)
        headers.update({"Content-Type": f"multipart/form-data; boundary={boundary}",
                        "Origin": n.console.settings.origin})
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode()
        set_cookie = next((v for k, v in resp.getheaders() if k.lower() == "set-cookie"
                           and v.startswith(COOKIE + "=")), "")
        return Reply(status=resp.status, location=resp.getheader("Location") or "",
                     cookie=set_cookie.split(";", 1)[0].partition("=")[2], body=text,
                     reason=resp.getheader("bxnode-reason") or "")
    finally:
        conn.close()


def _multipart(form: dict[str, str], upload: tuple[str, bytes]) -> tuple[bytes, str]:
    boundary = "bxnode-test-boundary-7f3a"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
             .encode() for k, v in form.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="{upload[0]}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
                 + upload[1] + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary


def _csrf(page: Reply) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page.body)
    assert m is not None, page.body[:500]
    return m.group(1)


def _sign_in(r: Replicas, n: ConsoleNode, officer: str = OFFICER) -> str:
    form = _request(n, r.officers, "GET", "/signin", officer=officer)
    assert form.status == 200 and form.cookie
    done = _request(n, r.officers, "POST", "/signin/certificate", cookie=form.cookie,
                    form={"csrf": _csrf(form)}, officer=officer)
    assert (done.status, done.location) == (303, "/"), done.body[:500]
    assert done.cookie and done.cookie != form.cookie  # a fresh session: no fixation
    return done.cookie


def _signed_in_as(page: Reply) -> str:
    m = re.search(r'id="officer">([^<]+)<', page.body)
    return m.group(1) if m else ""


def test_a_session_made_on_one_replica_is_known_to_the_other(replicas: Replicas) -> None:
    r = replicas
    cookie = _sign_in(r, r.a)
    on_b = _request(r.b, r.officers, "GET", "/check", cookie=cookie)
    assert (on_b.status, _signed_in_as(on_b)) == (200, OFFICER)
    # A form B rendered carries the session's CSRF token; A accepts it, and the language
    # the officer chose through B is A's too.
    chosen = _request(r.b, r.officers, "POST", "/language", cookie=cookie,
                      form={"csrf": _csrf(on_b), "lang": "ru", "tz": "Asia/Bishkek",
                            "back": "/"})
    assert (chosen.status, chosen.location) == (303, "/")
    on_a = _request(r.a, r.officers, "GET", "/check", cookie=cookie)
    assert on_a.status == 200 and 'lang="ru"' in on_a.body
    assert _csrf(on_a) == _csrf(on_b)
    # Signed out through B: A knows too, and B's forms no longer count.
    out = _request(r.b, r.officers, "POST", "/signout", cookie=cookie,
                   form={"csrf": _csrf(on_b)})
    assert (out.status, out.location) == (303, "/signin")
    gone = _request(r.a, r.officers, "GET", "/check", cookie=cookie)
    assert (gone.status, gone.location) == (303, "/signin")
    refused = _request(r.a, r.officers, "POST", "/signout", cookie=cookie,
                       form={"csrf": _csrf(on_a)})
    assert (refused.status, refused.reason) == (401, "not_signed_in")
    # The next sign-in, on B, starts in the language chosen on B before (the officer's
    # preference, in the database).
    again = _sign_in(r, r.b)
    assert 'lang="ru"' in _request(r.a, r.officers, "GET", "/check", cookie=again).body


def test_a_cookie_nobody_issued_is_signed_in_on_neither(replicas: Replicas) -> None:
    r = replicas
    for n in (r.a, r.b):
        page = _request(n, r.officers, "GET", "/check", cookie="A" * 43)
        assert (page.status, page.location) == (303, "/signin")
        posted = _request(n, r.officers, "POST", "/signout", cookie="A" * 43,
                          form={"csrf": "x"})
        assert (posted.status, posted.reason) == (401, "not_signed_in")


def test_while_the_database_is_down_the_console_says_so_and_then_serves_again(
        replicas: Replicas) -> None:
    """Sessions are in the database: while it is down a page is refused 503 with the
    reason (not a bare 500), on every replica; once it is back the same session serves."""
    r = replicas
    cookie = _sign_in(r, r.a)
    cluster = r.cluster
    cluster.stop()
    try:
        for n in (r.a, r.b):
            down = _request(n, r.officers, "GET", "/check", cookie=cookie)
            assert (down.status, down.reason) == (503, "database_unavailable"), down.body[:300]
            assert "database does not answer" in down.body
            signin = _request(n, r.officers, "GET", "/signin")
            assert (signin.status, signin.reason) == (503, "database_unavailable")
    finally:
        cluster.start()
    back = _request(r.b, r.officers, "GET", "/check", cookie=cookie)
    assert (back.status, _signed_in_as(back)) == (200, OFFICER)


def test_a_sync_previewed_on_one_replica_is_applied_once_on_the_other(
        replicas: Replicas) -> None:
    """The difference is shown by A; the confirmation lands on B, which applies it (the
    preview is in the database); a second confirmation, on A, finds nothing to apply."""
    r = replicas
    cookie = _sign_in(r, r.a, MANAGER)
    page = _request(r.a, r.officers, "GET", "/watchlist", cookie=cookie, officer=MANAGER)
    assert page.status == 200
    header = ("kind,owner_ref,action,expires,contact,number,issuing_state,doc_type,"
              "loss_type,family_name,given_names,patronymic,dob,nationality,sex")
    rows = [f"document,MVD-REP-{i:03d},seize_document,2036-01-01,,MR{i:07d},KAZ,P,stolen,,,,,,"
            for i in range(1, 6)]
    shown = _request(r.a, r.officers, "POST", "/watchlist/sync", cookie=cookie,
                     officer=MANAGER, form={"csrf": _csrf(page), "source": "MVD-REP",
                                            "max_withdraw": "100", "reason": ""},
                     upload=("mvd.csv", ("\n".join([header, *rows]) + "\n").encode()))
    assert shown.status == 200, shown.body[:500]
    assert re.search(r'id="count-added">5<', shown.body)
    token = re.search(r'name="sync_token" value="([^"]+)"', shown.body)
    assert token is not None
    applied = _request(r.b, r.officers, "POST", "/watchlist/sync/apply", cookie=cookie,
                       officer=MANAGER, form={"csrf": _csrf(shown),
                                              "sync_token": token.group(1)})
    assert applied.status == 200 and "The sync was applied." in applied.body
    again = _request(r.a, r.officers, "POST", "/watchlist/sync/apply", cookie=cookie,
                     officer=MANAGER, form={"csrf": _csrf(shown),
                                            "sync_token": token.group(1)})
    assert (again.status, again.reason) == (409, "sync_not_pending")


def test_a_request_the_browser_gives_up_on_does_not_end_the_session(
        replicas: Replicas) -> None:
    """A browser cancels requests it no longer needs (a page's favicon when the officer
    clicks on): the connection is gone before the console checks the session's
    certificate.  That is not another certificate: the session lives on.  (It ended: the
    check read no certificate from the closed connection, and signed the officer out.)"""
    r = replicas
    cookie = _sign_in(r, r.a)
    for _ in range(5):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(str(r.officers.root / f"{OFFICER}.crt"),
                            str(r.officers.root / f"{OFFICER}.key"))
        with socket.create_connection(("127.0.0.1", r.a.console.port)) as raw, \
                ctx.wrap_socket(raw) as tls:
            tls.sendall(f"GET /favicon.ico HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        f"Cookie: {COOKIE}={cookie}\r\n\r\n".encode())
        # closed at once, before any answer
    still = _request(r.b, r.officers, "GET", "/check", cookie=cookie)
    assert (still.status, _signed_in_as(still)) == (200, OFFICER)


def test_a_session_brought_by_another_certificate_ends(replicas: Replicas) -> None:
    """The cookie of a session signed in by certificate, sent with another officer's
    certificate (a stolen cookie), is refused 401 session_certificate_mismatch, audited,
    and the session ends on every replica."""
    r = replicas
    cookie = _sign_in(r, r.a)
    stolen = _request(r.b, r.officers, "GET", "/check", cookie=cookie, officer=MANAGER)
    assert (stolen.status, stolen.reason) == (401, "session_certificate_mismatch")
    gone = _request(r.a, r.officers, "GET", "/check", cookie=cookie)
    assert (gone.status, gone.location) == (303, "/signin")
    db = open_database(load_config(r.fed.dirs["KAZ-BS"]))
    try:
        refused = [e for e in MerkleAuditLog(store=db).bodies()
                   if e.get("reason") == "session_certificate_mismatch"]
    finally:
        db.close()
    assert [(e["event"], e["outcome"], e["caller"], e["session_of"], e["certificate_of"])
            for e in refused] == [("console_call", "refused", "anonymous", OFFICER, MANAGER)]
