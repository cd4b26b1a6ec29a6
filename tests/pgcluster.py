"""A private, throwaway PostgreSQL cluster for the tests.

``initdb`` into a fresh temporary folder, ``pg_ctl start`` listening on a unix socket in
that folder and on 127.0.0.1 at a free port; ``stop()`` / ``start()`` for the "database
unreachable" tests; ``destroy()`` stops it and removes the folder.

The server binaries come from Debian's package (``/usr/lib/postgresql/<major>/bin``,
installed by ``scripts/ensure-postgresql.sh``).  ``initdb`` and ``pg_ctl`` refuse to run
as root, so as root every server command runs as the ``postgres`` system user
(``runuser -u postgres --``), or, where that user does not exist, as an unprivileged
``bxnode-pgtest`` user created for the purpose.  The folder is made theirs.

Authentication: the unix socket trusts local users (the tests' own tools, ``pg_dump``);
TCP on 127.0.0.1 asks for the superuser's password (SCRAM), so a wrong password is refused
as it would be in production.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import psycopg

__all__ = ["PgCluster", "PgClusterUnavailable", "find_bindir"]

SUPERUSER = "bxadmin"
_FALLBACK_USER = "bxnode-pgtest"


class PgClusterUnavailable(Exception):
    """PostgreSQL cannot be had on this machine; the message says why (one line)."""


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding initdb, pg_ctl and pg_dump."""
    root = Path("/usr/lib/postgresql")
    found: list[tuple[int, Path]] = []
    if root.is_dir():
        for d in root.iterdir():
            b = d / "bin"
            if d.name.isdigit() and all(os.access(b / t, os.X_OK)
                                        for t in ("initdb", "pg_ctl", "postgres", "pg_dump")):
                found.append((int(d.name), b))
    return max(found)[1] if found else None


def _server_user() -> str | None:
    """Who runs initdb/pg_ctl: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", _FALLBACK_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    r = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", _FALLBACK_USER], capture_output=True, text=True)
    if r.returncode != 0:
        raise PgClusterUnavailable(
            "running as root, no 'postgres' user, and useradd failed: "
            + (r.stderr.strip().splitlines() or ["?"])[-1])
    return _FALLBACK_USER


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One initdb'd cluster in a temporary folder.  Use :meth:`create`."""

    def __init__(self, *, bindir: Path, base: Path, user: str | None) -> None:
        self.bindir = bindir
        self.base = base
        self.user = user
        self.data = base / "data"
        self.socket_dir = base / "sock"
        self.log = base / "server.log"
        self.host = "127.0.0.1"
        self.port = 0
        self.superuser = SUPERUSER
        self.password = secrets.token_hex(16)
        self._dbs = 0
        self.running = False

    @classmethod
    def create(cls) -> PgCluster:
        bindir = find_bindir()
        if bindir is None:
            raise PgClusterUnavailable(
                "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin "
                "(scripts/ensure-postgresql.sh installs them when run as root)")
        user = _server_user()
        base = Path(tempfile.mkdtemp(prefix="bxpg-"))
        cluster = cls(bindir=bindir, base=base, user=user)
        try:
            cluster._initdb()
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        return cluster

    # --- running the server's tools as the right user ------------------------------------

    def _run(self, tool: str, args: Sequence[str], *, check: bool = True
             ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / tool), *args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        r = subprocess.run(cmd, cwd=self.base, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "LC_ALL": "C", "LANG": "C"})
        if check and r.returncode != 0:
            tail = (r.stderr.strip() or r.stdout.strip()).splitlines()[-1:] or ["?"]
            raise PgClusterUnavailable(f"{tool} failed: {tail[0]}")
        return r

    def _initdb(self) -> None:
        self.socket_dir.mkdir()
        pwfile = self.base / "pw"
        pwfile.write_text(self.password + "\n")
        if self.user is not None:
            u = pwd.getpwnam(self.user)
            for p in (self.base, self.socket_dir, pwfile):
                os.chown(p, u.pw_uid, u.pw_gid)
        os.chmod(self.base, 0o755)  # root's tools (pg_dump, psycopg) reach the socket
        pwfile.chmod(0o600)
        self._run("initdb", ["-D", str(self.data), "-U", self.superuser, f"--pwfile={pwfile}",
                             "--auth-local=trust", "--auth-host=scram-sha-256",
                             "--encoding=UTF8", "--locale=C", "--no-sync"])
        pwfile.unlink()
        self.port = _free_port()
        # Throwaway data: no fsync (our connections still ask for synchronous_commit).
        conf = (f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "fsync = off\nfull_page_writes = off\nmax_connections = 200\n"
                "log_min_messages = warning\n")
        with (self.data / "postgresql.conf").open("a") as f:
            f.write(conf)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self.user is not None:
            u = pwd.getpwnam(self.user)
            self.log.touch()
            os.chown(self.log, u.pw_uid, u.pw_gid)
        r = self._run("pg_ctl", ["start", "-D", str(self.data), "-l", str(self.log), "-w",
                                 "-t", "60"], check=False)
        if r.returncode != 0:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise PgClusterUnavailable(f"pg_ctl start failed: {tail[0]}")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect every client); waits until it is down."""
        self._run("pg_ctl", ["stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60"])
        self.running = False

    def destroy(self) -> None:
        try:
            if self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    # --- databases ------------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres", *, tcp: bool = True) -> str:
        """A libpq key=value DSN for the superuser, without the password."""
        host = self.host if tcp else str(self.socket_dir)
        return f"host={host} port={self.port} dbname={dbname} user={self.superuser}"

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit superuser connection over the unix socket (trusted)."""
        return psycopg.connect(self.dsn(dbname, tcp=False), autocommit=True)

    def create_database(self) -> str:
        """A fresh, empty database (CREATE DATABASE, a few ms); returns its name."""
        self._dbs += 1
        name = f"t{os.getpid()}_{self._dbs}"
        with self.admin() as conn:
            # FILE_COPY (PostgreSQL 15+) copies the template's files: faster here than
            # WAL-logging them, the default.
            fast = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
            conn.execute(f'CREATE DATABASE "{name}"{fast}')
        return name

    def drop_database(self, name: str) -> None:
        if not self.running:
            return
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def tool(self, name: str) -> Path:
        """A client tool from the same PostgreSQL (e.g. ``pg_dump``)."""
        return self.bindir / name


def to_postgresql(node_dir: Path, *, dsn: str, password: str, field_key: str,
                  listen: str | None) -> None:
    """Point a node directory at PostgreSQL: the DSN in node.toml, the password and the
    field key in 0600 files (kept when present, so a copied replica shares them)."""
    for name, text in (("pg.password", password + "\n"), ("field.key", field_key + "\n")):
        path = node_dir / name
        if not path.exists():
            path.write_text(text)
            path.chmod(0o600)
    text = (node_dir / "node.toml").read_text()
    start = text.index("[storage]")
    end = text.index("\n[", start + 1)
    storage = (f'[storage]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
               'password_file = "pg.password"\nfield_key_file = "field.key"\n')
    text = text[:start] + storage + text[end:]
    if listen is not None:
        text = "\n".join(f'listen = "{listen}"' if ln.startswith("listen") else ln
                         for ln in text.splitlines()) + "\n"
    (node_dir / "node.toml").write_text(text)


def node_on_postgresql(node_dir: Path, cluster: PgCluster, dsn: str, *,
                       watchlist: Path | None = None) -> None:
    """Move a node directory to PostgreSQL as an operator would: ``[storage]`` pointed at
    ``dsn`` (:func:`to_postgresql`), ``bxnode store migrate``, and ``watchlist`` imported."""
    from node.cli.main import main as bxnode

    to_postgresql(node_dir, dsn=dsn, password=cluster.password, field_key="5a" * 32,
                  listen=None)
    assert bxnode(["store", "migrate", "--node-dir", str(node_dir)]) == 0
    if watchlist is not None:
        assert bxnode(["watchlist", "import", str(watchlist), "--node-dir",
                       str(node_dir)]) == 0
