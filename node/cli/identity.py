"""Who the CLI acts as (issue 11 §2; README, "For the national system integrator").

Every command that acts for an officer (``query doc|person|batch|paxlst``, ``followup
file|status|watch|list|approve|deny``, ``crossings confirm|reconcile``) runs one of two ways:

* **Under an officer identity**: ``--officer-cert`` / ``--officer-key`` (the officer's or
  workstation's certificate from the agency CA) and/or ``--token-file`` (an OpenID Connect
  bearer token from the agency's identity provider), or the environment variables
  ``BXNODE_OFFICER_CERT``, ``BXNODE_OFFICER_KEY``, ``BXNODE_TOKEN_FILE``.  The CLI is then
  a client of the running node's LocalService (its ``[local] api_socket``, else its
  ``api_tcp``); the node authenticates the identity, checks its role, audits the call and
  signs every request with that identity as the operator.  The CLI itself opens no
  database and holds no node key.  A ``--operator`` given as well must name that same
  identity (checked with ``WhoAmI`` before anything else is asked).
* **In development only** (``[node] dev_mode = true``): the CLI asks the peers itself with
  a typed ``--operator`` (default ``[client] operator``), and logs the warning
  ``dev_typed_operator`` each time, since a typed name is not an identity.

Outside ``dev_mode`` a typed ``--operator`` without an identity, or no identity at all, is
a one-sentence error (exit 1) before anything is read or sent.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from node.local.client import LocalClient, PeerResult

__all__ = ["ENV_CERT", "ENV_KEY", "ENV_TOKEN", "MAX_TOKEN_FILE_BYTES", "Officer",
           "OfficerCredentials", "add_officer_args", "check_operator_flag", "credentials",
           "fan_out_exit", "officer", "peer_result_json", "peer_result_lines"]

log = structlog.get_logger("bxnode.cli")

ENV_CERT = "BXNODE_OFFICER_CERT"
ENV_KEY = "BXNODE_OFFICER_KEY"
ENV_TOKEN = "BXNODE_TOKEN_FILE"  # noqa: S105 (the name of a variable, not a secret)
#: A bearer token file is read at most this far (the node refuses tokens over 8 KiB).
MAX_TOKEN_FILE_BYTES = 16 * 1024


def _cli_error(message: str, code: int = 1) -> Exception:
    from node.cli.main import CliError

    return CliError(message, code)


def add_officer_args(sp: argparse.ArgumentParser) -> None:
    """The identity options of a command that acts for an officer."""
    sp.add_argument("--operator", help="DEVELOPMENT ONLY (dev_mode): a typed operator id; "
                    "otherwise only the identity your certificate or token names")
    sp.add_argument("--officer-cert", metavar="PEM",
                    help=f"your officer/workstation certificate (or ${ENV_CERT}): act "
                         "through the node's LocalService under that identity")
    sp.add_argument("--officer-key", metavar="PEM",
                    help=f"its private key (or ${ENV_KEY})")
    sp.add_argument("--token-file", metavar="FILE",
                    help=f"a file holding your OpenID Connect bearer token (or ${ENV_TOKEN})")


@dataclass(frozen=True, slots=True)
class OfficerCredentials:
    """What the officer brought: a certificate and key, a bearer token, or both."""

    cert: Path | None
    key: Path | None
    token: str | None


def credentials(args: argparse.Namespace) -> OfficerCredentials | None:
    """The officer's credentials from the options, else the environment; None if none."""
    def pick(attr: str, env: str) -> Path | None:
        value = getattr(args, attr, None) or os.environ.get(env) or ""
        return Path(value) if value else None

    cert, key = pick("officer_cert", ENV_CERT), pick("officer_key", ENV_KEY)
    token_file = pick("token_file", ENV_TOKEN)
    if (cert is None) != (key is None):
        raise _cli_error("--officer-cert and --officer-key go together")
    for p, what in ((cert, "--officer-cert"), (key, "--officer-key"),
                    (token_file, "--token-file")):
        if p is not None and not p.is_file():
            raise _cli_error(f"{what} {p} is not a readable file")
    token = None
    if token_file is not None:
        with token_file.open("rb") as f:
            raw = f.read(MAX_TOKEN_FILE_BYTES + 1)
        if len(raw) > MAX_TOKEN_FILE_BYTES:
            raise _cli_error(f"--token-file {token_file} is larger than "
                             f"{MAX_TOKEN_FILE_BYTES} bytes, so it holds no bearer token")
        try:
            token = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise _cli_error(f"--token-file {token_file} does not hold an ASCII bearer "
                             "token") from None
        if not token or any(c.isspace() for c in token):
            raise _cli_error(f"--token-file {token_file} must hold one bearer token "
                             "(a compact JWT) and nothing else")
    if cert is None and token is None:
        return None
    return OfficerCredentials(cert=cert, key=key, token=token)


def check_operator_flag(cfg: Any, operator: str | None) -> None:
    """A typed ``--operator`` is believed only in development."""
    if operator and not cfg.dev_mode:
        raise _cli_error("--operator is accepted only when node.toml sets dev_mode = true; "
                         "outside development the operator is the officer the LocalService "
                         "authenticates (--officer-cert/--officer-key or --token-file)")


@dataclass(slots=True)
class Officer:
    """Who a command acts for: ``local`` is the LocalService client when the CLI runs under
    an officer identity (``operator`` is then what the node authenticated), None in
    development, where ``operator`` is the typed id."""

    operator: str
    local: LocalClient | None

    def close(self) -> None:
        if self.local is not None:
            self.local.close()

    def __enter__(self) -> Officer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _connect(cfg: Any, creds: OfficerCredentials) -> LocalClient:
    from node.local.client import LocalClient

    s = cfg.local_api
    ca = s.server_ca or cfg.tls_ca
    if s.api_socket is not None:
        path = Path(s.api_socket[len("unix:"):])
        if not path.exists():
            raise _cli_error(f"the node's LocalService socket {path} does not exist "
                             "(is 'bxnode serve' running with a [local] section?)")
        if creds.cert is None:
            return LocalClient.over_socket(path, token=creds.token)
        return LocalClient.over_socket(path, cert=creds.cert, key=creds.key, ca=ca,
                                       token=creds.token)
    if s.api_tcp is not None:
        if creds.cert is None:
            raise _cli_error("the node's LocalService listens on TCP only, which needs "
                             "--officer-cert and --officer-key (mTLS)")
        assert creds.key is not None
        return LocalClient.over_tcp(s.api_tcp, cert=creds.cert, key=creds.key, ca=ca,
                                    token=creds.token)
    raise _cli_error("this node serves no LocalService ([local] api_socket is off and no "
                     "api_tcp), so an officer identity cannot be used")


def officer(args: argparse.Namespace, cfg: Any, command: str) -> Officer:
    """Who ``command`` acts for (see the module text); refuses before anything is sent."""
    typed = getattr(args, "operator", None)
    creds = credentials(args)
    if creds is not None:
        local = _connect(cfg, creds)
        if typed:
            try:
                who = call(local.whoami)
            except BaseException:
                local.close()
                raise
            if who.identity != typed:
                local.close()
                raise _cli_error(f"--operator {typed[:64]} is not the identity your "
                                 f"credentials name ({who.identity}); drop --operator")
            return Officer(operator=who.identity, local=local)
        return Officer(operator="", local=local)
    if not cfg.dev_mode:
        if typed:
            check_operator_flag(cfg, typed)
        raise _cli_error(f"'bxnode {command}' acts for an officer: give --officer-cert and "
                         "--officer-key or --token-file (a typed operator is accepted only "
                         "when node.toml sets dev_mode = true)")
    operator = typed or cfg.operator
    if not operator:
        raise _cli_error("no operator id: pass --operator or set [client] operator in node.toml")
    log.warning("dev_typed_operator", command=command,
                source="--operator" if typed else "[client] operator",
                note="development only: a typed operator id is not an authenticated identity")
    return Officer(operator=str(operator), local=None)


def call(fn: Any, *a: Any, **kw: Any) -> Any:
    """One LocalService call; a refusal of the call itself becomes one CLI sentence."""
    from node.local.client import LocalCallError

    try:
        return fn(*a, **kw)
    except LocalCallError as exc:
        raise local_refusal(exc) from None


def local_refusal(exc: Any) -> Exception:
    """A peer's refusal carried by the call is that peer's (exit 3, as when the CLI asks
    it directly); anything else is the node's own refusal of the call (exit 1)."""
    from node.cli.main import LocalRefused
    from node.core.errors import RemoteError

    if exc.refused_by:
        return RemoteError(f"{exc.refused_by} refused: {exc.details}", status=exc.status,
                           reason=exc.reason, refusal_verified=exc.refusal_verified)
    return LocalRefused(status=exc.status, reason=exc.reason, details=exc.details)


# --- one fan-out result, printed as the direct commands print one peer's answer ---------------


def _item_text(r: Any) -> str:
    if r.outcome.value != "hit":
        return "no hit"
    return (f"HIT  ref={r.reference or '-'} action={r.action.value if r.action else '-'} "
            f"contact={r.contact or '-'}" + (f" source={r.source_agency}" if r.source_agency
                                             else ""))


def _item_json(r: Any) -> dict[str, Any]:
    return {"index": r.index, "outcome": r.outcome.value, "reference": r.reference,
            "action": r.action.value if r.action else None, "contact": r.contact,
            **({"source_agency": r.source_agency} if r.source_agency else {})}


def peer_result_lines(p: PeerResult, *, per_item: bool = True) -> list[str]:
    """The text of one peer's result."""
    if p.outcome == "answered":
        lines = [f"#{r.index}: {_item_text(r)}" for r in p.results] if per_item else []
        lines.append(f"{p.peer}: {p.hits} hit(s) in {len(p.results)} item(s); answer "
                     f"verified, receipt kept (peer audit entry {p.peer_audit_seq})")
        return lines
    what = {"refused": "REFUSED", "unreachable": "UNREACHABLE", "unverified": "UNVERIFIED",
            "not_asked": "NOT ASKED"}.get(p.outcome, p.outcome.upper())
    verified = " (signed refusal verified)" if p.refusal_verified else ""
    code = "/".join(x for x in (p.status.lower(), p.reason) if x)
    return [f"{p.peer}: {what} {code}{verified}".rstrip()]


def peer_result_json(p: PeerResult) -> dict[str, Any]:
    out: dict[str, Any] = {"peer": p.peer, "outcome": p.outcome}
    if p.outcome == "answered":
        out.update(results=[_item_json(r) for r in p.results], hits=p.hits,
                   peer_audit_seq=p.peer_audit_seq, verified=True)
    else:
        out.update(status=p.status or None, reason=p.reason or None,
                   refusal_verified=p.refusal_verified)
    return out


def fan_out_exit(peers: Sequence[PeerResult]) -> int:
    """0 when every peer asked answered, 1 when one could not be reached or its answer did
    not verify, else 3 when one refused (NOT_ASKED is not a failure)."""
    outcomes = {p.outcome for p in peers}
    if outcomes & {"unreachable", "unverified"}:
        return 1
    if "refused" in outcomes:
        return 3
    return 0


