"""``bxnode keys``: the node's signing key, in a file or a PKCS#11 token (README "Hardware keys").

* ``keys show``: open the configured key (token, PIN, object, a self-test signature) and
  print its key id and public key: what the members file or registry must list.
* ``keys generate KEY``: a new key, for a first key or a rotation: ``KEY`` is a
  ``pkcs11:`` URI (generated inside the token, never extractable) or a file name (a new
  0600 seed file).  It never replaces an existing object or file.
* ``keys import FILE KEY``: a key file's seed into a token object (sensitive, never
  extractable again); the same key, so the same key id and the same signatures.

For a token, the module and PIN come from ``--pkcs11-module`` and ``--pin-env`` /
``--pin-file`` when given, else from ``[keys]`` of the node's node.toml.
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path
from typing import Any

from node.cli.main import CliError, _config, _emit, add_command, add_group

__all__ = ["register"]


def _describe(kind: str, where: str, public_key: bytes) -> dict[str, Any]:
    from node.core.envelope import key_id_for

    return {"kind": kind, "key": where, "key_id": key_id_for(public_key),
            "public_key": base64.b64encode(public_key).decode()}


def _text(d: dict[str, Any]) -> str:
    return f"{d['kind']} key {d['key']}\nkey id {d['key_id']}\npublic key {d['public_key']}"


def _token_key(args: argparse.Namespace, uri: str) -> Any:
    """``uri`` with the module and PIN source from the options, else from node.toml."""
    from node.core.errors import ConfigError
    from node.keys import Pkcs11Key, parse_keys

    section: dict[str, Any] = {"signing_key": uri}
    if args.pkcs11_module:
        section["pkcs11_module"] = str(Path(args.pkcs11_module).resolve())
    if args.pin_env:
        section["pkcs11_pin_env"] = args.pin_env
    if args.pin_file:
        section["pkcs11_pin_file"] = str(Path(args.pin_file).resolve())
    have_pin = "pkcs11_pin_env" in section or "pkcs11_pin_file" in section
    if "pkcs11_module" not in section or not have_pin:
        try:
            configured = _config(args).signing_key
        except ConfigError as exc:
            raise CliError(f"give --pkcs11-module and --pin-env or --pin-file ({exc})") from None
        if not isinstance(configured, Pkcs11Key):
            raise CliError("give --pkcs11-module and --pin-env or --pin-file: this node's "
                           "signing key is not in a token")
        section.setdefault("pkcs11_module", str(configured.module))
        if not have_pin:
            if configured.pin_env is not None:
                section["pkcs11_pin_env"] = configured.pin_env
            else:
                section["pkcs11_pin_file"] = str(configured.pin_file)
    return parse_keys(Path.cwd(), section)


def cmd_show(args: argparse.Namespace) -> int:
    from node.keys import load_signer

    ref = _config(args).signing_key
    signer = load_signer(ref)
    d = _describe("file" if isinstance(ref, Path) else "pkcs11", str(ref), signer.public_key)
    _emit(args, d, _text(d))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from node.keys.uri import is_pkcs11_uri

    if is_pkcs11_uri(args.key):
        from node.keys.pkcs11 import generate_key

        key = _token_key(args, args.key)
        d = _describe("pkcs11", str(key), generate_key(key))
    else:
        from node.federation.pki import new_signing_key_file

        path = Path(args.key)
        if path.exists():
            raise CliError(f"{path} exists; name a new file for the new key")
        sk = new_signing_key_file(path)
        d = _describe("file", str(path.resolve()), bytes(sk.verify_key))
    _emit(args, d, _text(d) + "\nnext: list it for this node (bxnode registry propose "
                             "--rotate-key NODE --new-key PUB ...), then set [keys] "
                             "signing_key to it and restart")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from node.federation.pki import load_signing_key
    from node.keys.pkcs11 import import_seed
    from node.keys.uri import is_pkcs11_uri

    if not is_pkcs11_uri(args.key):
        raise CliError(f"{args.key!r} is not a pkcs11: URI naming the new token object")
    key = _token_key(args, args.key)
    seed = bytes(load_signing_key(Path(args.file)))
    d = _describe("pkcs11", str(key), import_seed(key, seed))
    _emit(args, d, _text(d) + f"\nthe token now holds the key of {args.file}; set [keys] "
                             "signing_key to it and remove the file")
    return 0


def _token_options(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--pkcs11-module", help="the token's PKCS#11 library "
                                            "(default: [keys] pkcs11_module)")
    pin = sp.add_mutually_exclusive_group()
    pin.add_argument("--pin-env", help="the environment variable holding the PIN")
    pin.add_argument("--pin-file", help="a 0600 file holding the PIN")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    g = add_group(sub, "keys", "the node's signing key: in a file or a PKCS#11 token")
    add_command(g, "show", cmd_show, "open the configured signing key and print its key id "
                                     "and public key", common)
    sp = add_command(g, "generate", cmd_generate,
                     "make a new signing key: in a token (pkcs11: URI) or a new 0600 file",
                     common)
    sp.add_argument("key", help='a pkcs11: URI ("pkcs11:token=T;object=NAME") or a file name')
    _token_options(sp)
    sp = add_command(g, "import", cmd_import,
                     "copy a signing key file's key into a token object (non-extractable)",
                     common)
    sp.add_argument("file", help="the signing key file (64 hex characters, mode 0600)")
    sp.add_argument("key", help='the new token object: "pkcs11:token=T;object=NAME"')
    _token_options(sp)
