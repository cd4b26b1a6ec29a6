"""--operator is believed only in development (issue 11 §2)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from node.cli.identity import check_operator_flag
from node.cli.main import CliError


def test_operator_flag_refused_outside_dev_mode() -> None:
    with pytest.raises(CliError) as err:
        check_operator_flag(SimpleNamespace(dev_mode=False), "kz-0193")
    assert str(err.value).startswith("--operator is accepted only when node.toml sets "
                                     "dev_mode = true")
    check_operator_flag(SimpleNamespace(dev_mode=True), "kz-0193")
    check_operator_flag(SimpleNamespace(dev_mode=False), None)
