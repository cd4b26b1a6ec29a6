"""A SoftHSM2 token of the tests' own, in a temporary folder (tests/integration/test_pkcs11*).

``SoftHsm.create`` writes a softhsm2.conf pointing at a fresh token directory, sets
``SOFTHSM2_CONF`` for this process (SoftHSM reads it once, at the first C_Initialize, and
sees only the tokens that exist then: every token is made here, before any test opens
one) and initialises the token ``bxnode`` with a user PIN.  Where Debian's softhsm2 is
not installed, :class:`SoftHsmUnavailable` says so in one line (the tests skip with it).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

TOKEN = "bxnode"
PIN = "246810"
SO_PIN = "13579111"
PIN_ENV = "BXNODE_TEST_PKCS11_PIN"


class SoftHsmUnavailable(Exception):
    pass


def module_path() -> Path:
    for p in ("/usr/lib/softhsm/libsofthsm2.so", *glob.glob("/usr/lib/*/softhsm/libsofthsm2.so")):
        if Path(p).is_file():
            return Path(p)
    raise SoftHsmUnavailable("SoftHSM2 (Debian's softhsm2) is not installed: "
                             "no libsofthsm2.so (scripts/ensure-softhsm.sh installs it)")


@dataclass
class SoftHsm:
    root: Path
    module: Path
    conf: Path

    @classmethod
    def create(cls, root: Path) -> SoftHsm:
        module = module_path()
        util = shutil.which("softhsm2-util")
        if util is None:
            raise SoftHsmUnavailable("SoftHSM2 (Debian's softhsm2) is not installed: "
                                     "no softhsm2-util")
        tokens = root / "tokens"
        tokens.mkdir(parents=True)
        conf = root / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                        "log.level = ERROR\nslots.removable = false\n")
        os.environ["SOFTHSM2_CONF"] = str(conf)
        subprocess.run([util, "--init-token", "--free", "--label", TOKEN, "--pin", PIN,
                        "--so-pin", SO_PIN], check=True, capture_output=True, text=True,
                       env={**os.environ})
        return cls(root=root, module=module, conf=conf)

    def env(self) -> dict[str, str]:
        """The environment a bxnode subprocess needs to reach the token with the PIN."""
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf), PIN_ENV: PIN}

    def keys_section(self, obj: str, *, pin_file: Path | None = None) -> str:
        """``[keys]`` for the key ``obj`` in the token, the PIN from $PIN_ENV or ``pin_file``."""
        pin = (f'pkcs11_pin_file = "{pin_file}"' if pin_file is not None
               else f'pkcs11_pin_env = "{PIN_ENV}"')
        return (f'[keys]\nsigning_key = "pkcs11:token={TOKEN};object={obj}"\n'
                f'pkcs11_module = "{self.module}"\n{pin}\n')
