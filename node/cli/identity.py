"""Who the CLI acts as: ``--operator`` is a typed string, so it is believed only in
development.  Outside ``dev_mode`` the operator is the officer the LocalService
authenticated (the CLI's LocalService client with ``--cert``/``--key`` or a token), never a
name anyone can type (README, "For the national system integrator")."""

from __future__ import annotations

from typing import Any

__all__ = ["check_operator_flag"]


def check_operator_flag(cfg: Any, operator: str | None) -> None:
    from node.cli.main import CliError

    if operator and not cfg.dev_mode:
        raise CliError("--operator is accepted only when node.toml sets dev_mode = true; "
                       "outside development the operator is the officer the LocalService "
                       "authenticates (officer certificate or OpenID Connect token)")
