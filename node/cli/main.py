"""``bxnode``: the operator's console.  Thin over the library.

Every command takes ``--node-dir`` (default ``$BXNODE_HOME`` or ``.``) and
``--json``.  Errors go to stderr as one sentence and the exit status is
non-zero: 1 for a failure, 2 for a usage error, 3 when a peer refused.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from node.core.errors import BxError, ConfigError, RemoteError

__all__ = ["main"]

EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.code = code


class LocalRefused(Exception):
    """The node's LocalService refused a call the CLI made under an officer identity
    (not a peer's refusal: that is a per-peer result)."""

    def __init__(self, *, status: str, reason: str, details: str) -> None:
        super().__init__(details)
        self.status, self.reason, self.details = status, reason, details


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one sentence on stderr, exit 2
        if message == "the following arguments are required: COMMAND":
            message = f"'{self.prog}' needs a command"
        elif message.startswith("argument COMMAND: invalid choice: "):
            message = "unknown command " + message.removeprefix(
                "argument COMMAND: invalid choice: ")
        self.exit(EXIT_USAGE, f"bxnode: {message} (see --help)\n")


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(payload, ensure_ascii=False, sort_keys=True))
    else:
        print(text)


def _json_error(args: argparse.Namespace, **error: Any) -> None:
    """With --json, a refusal or error is a JSON object on stdout too (the one line on
    stderr stays): a script reading stdout always gets one document."""
    if getattr(args, "json", False):
        print(json.dumps({"error": error}, ensure_ascii=False, sort_keys=True))


def _node_dir(args: argparse.Namespace) -> Path:
    return Path(args.node_dir or os.environ.get("BXNODE_HOME") or ".").resolve()


def _config(args: argparse.Namespace) -> Any:
    from node.config import load_config

    return load_config(_node_dir(args))


# --- init --------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from node.config import CONFIG_NAME
    from node.core.model import validate_id, validate_state

    d = _node_dir(args)
    try:
        validate_id(args.node_id, "node id")
        validate_state(args.country, "country")
    except BxError as exc:
        raise CliError(str(exc)) from exc
    if (d / CONFIG_NAME).exists():
        raise CliError(f"{d} already holds a node; refusing to overwrite it")
    dev_from = Path(args.dev_keys).resolve() if args.dev_keys else None
    if dev_from and not args.dev:
        raise CliError("--dev-keys needs --dev: development keys are refused otherwise")
    # Check every input before the first byte is written: init is all or nothing.
    if dev_from:
        for src in (dev_from / "signing.key", dev_from / "tls.key", dev_from / "tls.crt",
                    dev_from.parent / "ca.crt"):
            if not src.is_file():
                raise CliError(f"{dev_from} has no {src.relative_to(dev_from.parent)}")
    if bool(args.ca_cert) != bool(args.ca_key):
        raise CliError("--ca-cert and --ca-key must be given together")
    ca = _load_ca(args.ca_cert, args.ca_key) if args.ca_cert and not dev_from else None
    members_path = Path(args.members).resolve() if args.members else d / "members.json"
    if args.members and not members_path.is_file():
        raise CliError(f"members file {members_path} does not exist")
    policy_dir = Path(args.policy_dir).resolve() if args.policy_dir else d / "policies"
    if args.policy_dir and not policy_dir.is_dir():
        raise CliError(f"policy folder {policy_dir} does not exist")
    created = [d / n for n in ("signing.key", "tls.key", "tls.crt", "ca.crt", "db.key",
                               "node.db", "node.db-wal", "node.db-shm")]
    if not args.members:
        created.append(members_path)
    if not args.policy_dir:
        created.append(policy_dir)
    leftover = next((p for p in created if p.exists()), None)
    if leftover is not None:
        raise CliError(f"{d} already holds {leftover.name}; use an empty folder")
    created.append(d / CONFIG_NAME)
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    try:
        entry = _init_files(args, d, dev_from, ca, members_path, policy_dir)
    except BaseException:
        for p in created:  # nothing half-written: none of these existed before
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        raise
    _emit(args, {"node_dir": str(d), "member": entry},
          f"initialised node {args.node_id} in {d}\n"
          f"send this member entry to the federation (members file):\n"
          f"{json.dumps(entry, indent=2, ensure_ascii=False)}")
    return 0


def _load_ca(cert_path: str, key_path: str) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    except (OSError, ValueError):
        raise CliError(f"--ca-cert {cert_path} is not a readable PEM certificate") from None
    try:
        key = load_pem_private_key(Path(key_path).read_bytes(), None)
    except (OSError, ValueError, TypeError):
        raise CliError(f"--ca-key {key_path} is not a readable unencrypted PEM private key"
                       ) from None
    return key, cert


def _init_files(args: argparse.Namespace, d: Path, dev_from: Path | None,
                ca: tuple[Any, Any] | None, members_path: Path,
                policy_dir: Path) -> dict[str, Any]:
    """Write a new node's files into ``d``; the caller removes them if this fails."""
    from node.config import CONFIG_NAME, render_config
    from node.core.envelope import key_id_for
    from node.core.members import Member, MemberKey
    from node.federation import pki
    from node.federation.members_file import member_to_json
    from node.store.keys import new_db_key_file, write_private
    from node.store.sqlcipher import Store

    if dev_from:
        write_private(d / "signing.key", (dev_from / "signing.key").read_bytes())
        write_private(d / "tls.key", (dev_from / "tls.key").read_bytes())
        shutil.copyfile(dev_from / "tls.crt", d / "tls.crt")
        shutil.copyfile(dev_from.parent / "ca.crt", d / "ca.crt")
        import nacl.signing

        try:
            sk = nacl.signing.SigningKey(bytes.fromhex((d / "signing.key").read_text().strip()))
        except ValueError:
            raise CliError(f"{dev_from / 'signing.key'} does not hold a 32-byte hex seed"
                           ) from None
    else:
        sk = pki.new_signing_key_file(d / "signing.key")
        tls_key = pki.new_tls_key()
        hosts = args.host or ["localhost", "127.0.0.1"]
        cert = pki.issue_cert(cn=args.node_id, org=args.agency or args.node_id,
                              key=tls_key, hosts=hosts, ca=ca)
        pki.write_tls(d / "tls.key", d / "tls.crt", tls_key, cert)
        if ca is not None:
            shutil.copyfile(args.ca_cert, d / "ca.crt")
        else:
            shutil.copyfile(d / "tls.crt", d / "ca.crt")
    key = new_db_key_file(d / "db.key")
    store = Store.open(d / "node.db", key, create=True)
    try:
        from node.audit.log import MerkleAuditLog

        MerkleAuditLog(store=store)  # creates the (empty) audit log's tables
    finally:
        store.close()
    me = Member(node_id=args.node_id, country=args.country, agency=args.agency,
                endpoint=args.endpoint or args.listen, roles=("node",),
                keys=(MemberKey(key_id=key_id_for(bytes(sk.verify_key)),
                                public_key=bytes(sk.verify_key)),),
                tls_cert_sha256=(pki.cert_fingerprint((d / "tls.crt").read_bytes()),),
                contact=args.contact)
    entry: dict[str, Any] = member_to_json(me)
    if not args.members:
        members_path.write_text(json.dumps({"version": 1, "members": [entry]}, indent=2) + "\n")
    if not args.policy_dir:
        _install_default_policy(policy_dir)
    (d / CONFIG_NAME).write_text(render_config(
        node_id=args.node_id, country=args.country, agency=args.agency, contact=args.contact,
        listen=args.listen, dev_mode=args.dev, members=os.path.relpath(members_path, d),
        policy_dir=os.path.relpath(policy_dir, d), operator=args.operator or ""))
    return entry


def _install_default_policy(dest: Path) -> None:
    """Copy the shipped Rego policy with NO agreements: a new node denies everything."""
    src = Path(__file__).resolve().parents[2] / "policies"
    dest.mkdir(parents=True, exist_ok=True)
    for rego in (src / "bxnode").glob("*.rego"):
        (dest / "bxnode").mkdir(exist_ok=True)
        if not rego.name.endswith("_test.rego"):
            shutil.copyfile(rego, dest / "bxnode" / rego.name)
    (dest / "data.json").write_text(json.dumps({"bxnode": {"agreements": []}}, indent=2) + "\n")


# --- serve -------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    import structlog

    from node.app import NodeRuntime
    from node.local.server import serve_with_local_api
    from node.server.assemble import build_server
    from node.server.grpc_server import serve_forever
    from node.server.heap import GcPauses, freeze_long_lived, freeze_startup_heap
    from node.server.workers import parse_worker, supervise, write_port_file

    cfg = _config(args)
    if args.dev_plaintext and not cfg.dev_mode:
        raise CliError("--dev-plaintext is refused unless the node config sets dev_mode = true")
    listen = args.listen or cfg.listen
    node_dir = _node_dir(args)
    if not 1 <= args.workers <= 64:
        raise CliError("--workers must be 1..64")
    if args.workers > 1 and args.worker is None:  # the supervisor
        port_file = node_dir / "serve.port"
        try:
            return supervise(node_dir=node_dir, listen=listen, workers=args.workers,
                             extra=["--dev-plaintext"] if args.dev_plaintext else [],
                             on_ready=lambda port: write_port_file(port_file, port))
        finally:
            port_file.unlink(missing_ok=True)
    try:
        worker = None if args.worker is None else parse_worker(args.worker)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if worker is not None:  # every log line of a worker says which one it is
        from node.logging import set_process_fields

        set_process_fields(worker=worker.index)
    rt = NodeRuntime.load(cfg, with_tls=not args.dev_plaintext)
    tls = None if args.dev_plaintext else NodeRuntime.tls(cfg)
    primary = worker is None or worker.primary
    metrics = None
    if cfg.metrics is not None:  # [metrics]: this process's own endpoint (node/observability)
        from node.observability.endpoint import MetricsEndpoint

        metrics = MetricsEndpoint.for_node(rt, cfg.metrics, node_dir=node_dir,
                                           worker=0 if worker is None else worker.index)
    buckets = None
    if worker is not None:  # the per-peer limits are the whole node's, not this worker's
        from node.server.shared_limits import LIMITS_FILE, SharedBuckets, SharedLimitsError

        try:
            buckets = SharedBuckets.attach(node_dir / LIMITS_FILE, worker=worker.index,
                                           workers=worker.count)
        except SharedLimitsError as exc:
            rt.close()
            raise CliError(str(exc)) from None
    server = build_server(rt, tls=tls, dev_plaintext=args.dev_plaintext, primary=primary,
                          buckets=buckets)
    server.reuse_port = worker is not None
    if metrics is not None:
        metrics.attach(server)
        metrics.start()
    port_file = node_dir / ("serve.port" if worker is None
                            else f"serve.worker-{worker.index}.port")

    def ready(port: int) -> None:
        write_port_file(port_file, port)

    # The startup heap out of the garbage collector's way, then every pause measured while
    # serving (node/server/heap.py)
    serve_log = structlog.get_logger("bxnode.serve")
    frozen = freeze_startup_heap()
    pauses = GcPauses().install()
    if metrics is not None:
        metrics.metrics.watch_gc(pauses)
    serve_log.info("heap_frozen", objects=frozen)
    rt.watchlist.on_rebuilt = lambda: serve_log.info(
        "heap_frozen", objects=freeze_long_lived(), after="person_index_rebuilt")
    try:
        if primary:
            asyncio.run(serve_with_local_api(rt, server, listen,
                                             dev_plaintext=args.dev_plaintext, on_ready=ready))
        else:
            asyncio.run(serve_forever(server, listen, on_ready=ready))
    finally:
        port_file.unlink(missing_ok=True)
        pauses.uninstall()
        serve_log.info("gc_pauses", **pauses.report())
        if metrics is not None:
            metrics.stop()
        if buckets is not None:
            buckets.close()
        rt.close()
    return 0


# --- watchlist -----------------------------------------------------------------------------


def cmd_watchlist_import(args: argparse.Namespace) -> int:
    from node.app import now_ms, open_store
    from node.audit.log import MerkleAuditLog
    from node.keys import load_signer
    from node.watchlist.importer import ImportResult, import_file

    cfg = _config(args)
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path} is not a readable file")
    size = path.stat().st_size
    bar = None
    if size > 1_000_000 and sys.stderr.isatty() and not args.json:
        from tqdm import tqdm

        bar = tqdm(unit=" rows", desc="validating", file=sys.stderr)
    signing_key = load_signer(cfg.signing_key)
    store = open_store(cfg)

    def audit(result: ImportResult) -> None:
        audit_log = MerkleAuditLog(store=store, node_id=cfg.node_id, signing_key=signing_key)
        audit_log.append({
            "event": "watchlist_import", "documents": result.document_count,
            "persons": result.person_count, "operator": args.operator or cfg.operator,
            "source": path.name}, time_ms=now_ms())

    try:
        result = import_file(path, store=store, fmt=args.format,
                             today=dt.datetime.now(dt.UTC).date(),
                             progress=bar.update if bar else None, before_commit=audit)
    finally:
        store.close()
        if bar:
            bar.close()
    if result.error_count:
        lines = [f"line {n}: {msg}" if n else msg for n, msg in result.errors]
        if args.json:
            print(json.dumps({"imported": 0, "errors": [
                {"line": n, "error": m} for n, m in result.errors],
                "error_count": result.error_count}))
        else:
            print("\n".join(lines), file=sys.stderr)
        raise CliError(f"{result.error_count} bad row(s) in {path.name}; nothing was imported")
    if not result.written:
        raise CliError(f"{path.name} holds no records; nothing was imported")
    _emit(args, {"imported": result.document_count + result.person_count,
                 "documents": result.document_count, "persons": result.person_count,
                 "already_expired": result.already_expired},
          f"imported {result.document_count} document(s) and {result.person_count} person(s)"
          + (f"; {result.already_expired} already expired and will never hit"
             if result.already_expired else ""))
    return 0


# --- query -------------------------------------------------------------------------------


def _client(cfg: Any, store: Any) -> Any:
    from node.app import NodeRuntime, now_ms
    from node.client.peer import PeerClient
    from node.federation.directory import load_directory
    from node.keys import load_signer

    return PeerClient(node_id=cfg.node_id, signing_key=load_signer(cfg.signing_key),
                      directory=load_directory(cfg, store=store, clock_ms=now_ms),
                      tls=NodeRuntime.tls(cfg), store=store, clock_ms=now_ms)


def _run_query(args: argparse.Namespace, kind: Any, items: list[Any],
               rows: Callable[[list[Any]], tuple[list[Any], list[str]]] | None = None) -> int:
    """Ask ``args.peer`` one signed question; ``rows`` turns the item results into a
    manifest's rows (JSON ``rows``, and the text lines instead of one per item)."""
    from node.app import open_store
    from node.cli.identity import officer
    from node.client.peer import QueryContext

    cfg = _config(args)
    with officer(args, cfg, f"query {args.sub}") as off:
        if off.local is not None:
            from node.cli.query import ask_through_local

            return ask_through_local(args, off, kind, items, rows)
    operator = off.operator
    from node.federation.members_file import load_members

    if cfg.registry is None and args.peer not in {
            m.node_id for m in load_members(cfg.members).members()}:
        raise CliError(f"peer {args.peer} is not in the members file {cfg.members}")
    store = open_store(cfg)
    try:
        client = _client(cfg, store)
    except BaseException:
        store.close()
        raise
    try:
        answer = client.lookup(args.peer, QueryContext(
            operator=operator, purpose=args.purpose, legal_basis=args.legal_basis,
            case_ref=args.case_ref), kind, items)
    finally:
        client.close()
        store.close()
    results = [{"index": r.index, "outcome": r.outcome.value, "reference": r.reference,
                "action": r.action.value if r.action else None, "contact": r.contact,
                **({"source_agency": r.source_agency} if r.source_agency else {})}
               for r in answer.results]
    text = []
    for r in answer.results:
        if r.outcome.value == "hit":
            text.append(f"#{r.index}: HIT  ref={r.reference or '-'} "
                        f"action={r.action.value if r.action else '-'} contact={r.contact or '-'}"
                        + (f" source={r.source_agency}" if r.source_agency else ""))
        else:
            text.append(f"#{r.index}: no hit")
    payload = {"peer": answer.responder, "results": results, "hits": answer.hits,
               "peer_audit_seq": answer.audit_seq, "verified": True}
    if rows is not None:
        payload["rows"], text = rows(list(answer.results))
    text.append(f"{answer.responder}: {answer.hits} hit(s) in {len(answer.results)} item(s); "
                f"answer verified, receipt kept (peer audit entry {answer.audit_seq})")
    _emit(args, payload, "\n".join(text))
    return 0


def cmd_query_doc(args: argparse.Namespace) -> int:
    from node.core.model import DocumentQuery, QueryKind

    return _run_query(args, QueryKind.DOCUMENT, [DocumentQuery(
        number=args.number.upper(), issuing_state=args.state.upper(), doc_type=args.type.upper())])


def cmd_query_person(args: argparse.Namespace) -> int:
    from node.core.model import PartialDate, PersonQuery, QueryKind, Sex

    return _run_query(args, QueryKind.PERSON, [PersonQuery(
        family_name=args.family, given_names=args.given or "", patronymic=args.patronymic or "",
        date_of_birth=PartialDate.parse(args.dob), nationality=args.nationality.upper(),
        sex=Sex(args.sex.upper()))])


def cmd_query_batch(args: argparse.Namespace) -> int:
    from node.cli.paxlst import cmd_query_batch as run  # with ``query paxlst``

    return run(args)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not at least 1")
    return value


# --- parser --------------------------------------------------------------------------------


def query_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--peer", required=True, help="node id of the peer to ask")
    sp.add_argument("--purpose", required=True,
                    help="border_check, visa_application, migration_control, "
                         "criminal_investigation or counter_terrorism")
    sp.add_argument("--case-ref", required=True, help="your case or file reference")
    sp.add_argument("--legal-basis", default="bilateral agreement",
                    help="legal basis of the request")
    from node.cli.identity import add_officer_args

    add_officer_args(sp)


#: Modules that add command groups: each defines ``register(sub, common)``.
COMMAND_MODULES: tuple[str, ...] = ("node.cli.names", "node.cli.audit", "node.cli.registry",
                                    "node.cli.crossings", "node.cli.followup", "node.cli.store",
                                    "node.cli.watchlist", "node.cli.paxlst",
                                    "node.cli.retention", "node.cli.health", "node.cli.keys",
                                    "node.cli.doctor", "node.cli.backup")


def add_command(parent: Any, name: str, fn: Callable[[argparse.Namespace], int], help_: str,
                common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add a subcommand with the common options; plugins use this too."""
    sp: argparse.ArgumentParser = parent.add_parser(name, parents=[common], help=help_,
                                                    description=help_)
    sp.set_defaults(fn=fn)
    return sp


def get_group(sub: Any, name: str) -> Any:
    """The subcommand set of an existing group (e.g. ``query``), for plugins that extend it."""
    parser = sub.choices[name]
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def add_group(sub: Any, name: str, help_: str) -> Any:
    return sub.add_parser(name, help=help_).add_subparsers(
        dest="sub", metavar="COMMAND", required=True, parser_class=_Parser)


def build_parser() -> argparse.ArgumentParser:
    # Given before the command or after it: the subcommands' copies default to SUPPRESS,
    # so an option the user put before the command is not overwritten by their default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--node-dir", default=argparse.SUPPRESS,
                        help="node directory (default: $BXNODE_HOME or .)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output")
    top = argparse.ArgumentParser(add_help=False)
    top.add_argument("--node-dir", help="node directory (default: $BXNODE_HOME or .)")
    top.add_argument("--json", action="store_true", help="machine-readable output")

    p = _Parser(prog="bxnode", parents=[top],
                description="border-exchange-node: signed, policy-governed border-data "
                            "exchange between sovereign nodes")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True,
                           parser_class=_Parser)

    def add(parent: Any, name: str, fn: Callable[[argparse.Namespace], int],
            help_: str) -> argparse.ArgumentParser:
        return add_command(parent, name, fn, help_, common)

    sp = add(sub, "init", cmd_init, "create a node directory: config, keys, encrypted database")
    sp.add_argument("--node-id", required=True, help="this node's id, e.g. KAZ-BS")
    sp.add_argument("--country", required=True, help="ICAO 3-letter country code")
    sp.add_argument("--agency", default="", help="agency name")
    sp.add_argument("--contact", default="", help="contact point returned with hits")
    sp.add_argument("--listen", default="0.0.0.0:50051", help="address to serve on")
    sp.add_argument("--endpoint", help="address peers use to reach this node")
    sp.add_argument("--host", action="append", help="TLS certificate host name or IP (repeat)")
    sp.add_argument("--ca-cert", help="issue the TLS certificate from this CA certificate")
    sp.add_argument("--ca-key", help="the CA's private key")
    sp.add_argument("--members", help="use an existing federation members file")
    sp.add_argument("--policy-dir", help="use an existing policy folder")
    sp.add_argument("--operator", help="default operator id for queries")
    sp.add_argument("--dev", action="store_true", help="development mode (allows keys/dev)")
    sp.add_argument("--dev-keys", help="with --dev: copy keys from a keys/dev/<node> folder")

    sp = add(sub, "serve", cmd_serve, "run the gRPC server (mTLS) until SIGTERM")
    sp.add_argument("--listen", help="override [server] listen")
    sp.add_argument("--workers", type=int, default=1,
                    help="serving processes sharing the port, one per core (default 1)")
    sp.add_argument("--worker", help=argparse.SUPPRESS)  # I/N: set by the supervisor
    sp.add_argument("--dev-plaintext", action="store_true",
                    help="serve WITHOUT TLS (development only; logs a warning)")

    wl = add_group(sub, "watchlist", "manage this node's watchlist")
    sp = add(wl, "import", cmd_watchlist_import,
             "import watchlist records from CSV or JSON Lines (all or nothing)")
    sp.add_argument("file")
    sp.add_argument("--format", choices=["csv", "jsonl"], help="default: from the file name")
    sp.add_argument("--operator", help="operator id recorded in the audit log")

    q = add_group(sub, "query", "ask a peer node")

    sp = add(q, "doc", cmd_query_doc, "check one travel document")
    sp.add_argument("--number", required=True)
    sp.add_argument("--state", required=True, help="issuing state, ICAO code")
    sp.add_argument("--type", default="P", help="document type (default P)")
    query_args(sp)
    sp = add(q, "person", cmd_query_person, "check one person")
    sp.add_argument("--family", required=True, help="family name as written")
    sp.add_argument("--given", help="given names as written")
    sp.add_argument("--patronymic")
    sp.add_argument("--dob", required=True, help="YYYY, YYYY-MM or YYYY-MM-DD")
    sp.add_argument("--nationality", required=True)
    sp.add_argument("--sex", default="X", choices=["M", "F", "X", "m", "f", "x"])
    query_args(sp)
    sp = add(q, "batch", cmd_query_batch, "check a whole manifest (CSV or JSON Lines)")
    sp.add_argument("file")
    query_args(sp)

    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub, common)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from node.logging import configure

    parser = build_parser()
    args = parser.parse_args(argv)
    configure()
    try:
        return int(args.fn(args))
    except CliError as exc:
        print(f"bxnode: {exc}", file=sys.stderr)  # the command printed its own --json result
        return exc.code
    except RemoteError as exc:
        print(f"bxnode: the peer refused: {exc.status.lower()}/{exc.reason}"
              f"{' (signed refusal verified)' if exc.refusal_verified else ''}", file=sys.stderr)
        _json_error(args, status=exc.status, reason=exc.reason, message=exc.message,
                    refused_by_peer=True, refusal_verified=exc.refusal_verified)
        return EXIT_REFUSED
    except ConfigError as exc:
        print(f"bxnode: {exc}", file=sys.stderr)
        _json_error(args, status=exc.status, reason=exc.reason, message=exc.message)
        return EXIT_FAIL
    except BxError as exc:
        print(f"bxnode: {exc} ({exc.reason})", file=sys.stderr)
        _json_error(args, status=exc.status, reason=exc.reason, message=exc.message)
        return EXIT_FAIL
    except LocalRefused as exc:  # one sentence: the node's own refusal of the call
        if exc.status == "UNAVAILABLE" and not exc.reason:
            print("bxnode: the node's LocalService is unavailable (is it serving, and does "
                  "its client CA trust your certificate?)", file=sys.stderr)
        else:
            text = exc.details.removeprefix(f"{exc.reason}: ")
            print(f"bxnode: the node refused the call: {exc.status.lower()}/{exc.reason}: "
                  f"{text}", file=sys.stderr)
        _json_error(args, status=exc.status, reason=exc.reason, message=exc.details,
                    refused_by_node=True)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a file we were pointed at: unreadable, a folder, disk full
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"bxnode: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    # Run through the imported module, so plugins and this file share one CliError class.
    from node.cli.main import main as _main

    sys.exit(_main())
