"""deployments/bxnode.service (issue 17 §4): the unit as shipped, and both commented
variants for a signing key in a USB token (through pcscd; the module opening the device
itself), are units systemd accepts without a warning (``systemd-analyze verify``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.packaging._common import BIN, ROOT

UNIT = ROOT / "deployments" / "bxnode.service"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze (Debian's systemd) is not installed "
                                "(scripts/ensure-systemd-analyze.sh installs it as root)")


def _shipped() -> str:
    """The unit, its ExecStart pointed at this checkout's bxnode (verify wants it to exist)."""
    text = UNIT.read_text()
    assert "ExecStart=/opt/bxnode/.venv/bin/bxnode serve" in text
    return text.replace("/opt/bxnode/.venv/bin/bxnode", str(BIN / "bxnode"))


def _pcscd(text: str) -> str:
    out = text.replace("# After=pcscd.socket\n# Wants=pcscd.socket\n",
                       "After=pcscd.socket\nWants=pcscd.socket\n")
    assert out != text
    return out


def _usb_device(text: str) -> str:
    """PrivateDevices=yes replaced by the commented lines that admit USB devices."""
    block = re.search(r"# PrivateDevices=no\n(?:# [^\n]*\n)+?# RestrictAddressFamilies=[^\n]*\n",
                      text)
    assert block is not None
    lines = [ln[2:] for ln in block.group(0).splitlines()]
    out = text.replace(block.group(0), "".join(f"{ln}\n" for ln in lines))
    out = out.replace("\nPrivateDevices=yes\n", "\n")
    out = out.replace("\nRestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n", "\n")
    return out


def _verify(tmp_path: Path, name: str, text: str) -> tuple[int, str]:
    path = tmp_path / name
    path.write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stderr.strip()


def test_the_unit_and_its_token_variants_verify(tmp_path: Path) -> None:
    shipped = _shipped()
    usb = _usb_device(shipped)
    assert re.findall(r"^(PrivateDevices|DevicePolicy|DeviceAllow)=(.*)$", usb, re.M) == [
        ("PrivateDevices", "no"), ("DevicePolicy", "closed"),
        ("DeviceAllow", "char-usb_device rw"), ("DeviceAllow", "char-hidraw rw")]
    assert re.findall(r"^RestrictAddressFamilies=(.*)$", usb, re.M) == [
        "AF_INET AF_INET6 AF_UNIX AF_NETLINK"]  # one line: no duplicate left behind
    for name, text in (("bxnode.service", shipped), ("bxnode-pcscd.service", _pcscd(shipped)),
                       ("bxnode-usb.service", usb)):
        assert _verify(tmp_path, name, text) == (0, ""), name


def test_verify_reports_a_misspelt_key(tmp_path: Path) -> None:
    _, err = _verify(tmp_path, "bxnode-typo.service",
                     _shipped().replace("\nPrivateDevices=yes\n", "\nPrivateDevics=yes\n"))
    assert "Unknown key" in err and "PrivateDevics" in err
