"""Fixed material the harnesses and seeds share: the public dev keys and a fixed clock."""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path

import nacl.signing

from node.audit.checkpoint import CosignatureV1Signer, CosignatureV1Verifier
from node.audit.log import log_origin
from node.audit.note import Ed25519NoteSigner, Ed25519NoteVerifier
from node.core.members import StaticDirectory
from node.federation.members_file import parse_members
from node.federation.registry import Registry, parse_registry

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "keys" / "dev"
DEMO = ROOT / "deployments" / "demo"
FUZZ = Path(__file__).resolve().parent
CORPUS = FUZZ / "corpus"
FIXTURES = FUZZ / "fixtures"

#: The harnesses' clock: inside every dev key's and the dev registry's validity window.
NOW_MS = 1_780_000_000_000  # 2026-05-28
TODAY = dt.date(2026, 5, 28)
#: BCPs the crossings import harness treats as its own: every demo BCP (deployments/demo).
OWN_BCPS = frozenset(b["code"] for b in json.loads((DEMO / "bcps.json").read_text())["bcps"])


@functools.cache
def signing_key(folder: str) -> nacl.signing.SigningKey:
    """A demo node's dev signing key (``kaz``, ``kgz``, ``uzb``, ``tjk``): a hex seed."""
    return nacl.signing.SigningKey(bytes.fromhex((DEV / folder / "signing.key").read_text()))


def public_key(folder: str) -> bytes:
    return bytes(signing_key(folder).verify_key)


@functools.cache
def directory() -> StaticDirectory:
    return parse_members((DEV / "members.json").read_bytes())


@functools.cache
def dev_registry() -> Registry:
    return parse_registry((DEV / "registry.json").read_bytes())


def log_signer(node: str = "KAZ-BS", folder: str = "kaz") -> Ed25519NoteSigner:
    return Ed25519NoteSigner(name=log_origin(node), seed=bytes(signing_key(folder)))


def log_verifier(node: str = "KAZ-BS", folder: str = "kaz") -> Ed25519NoteVerifier:
    return Ed25519NoteVerifier(name=log_origin(node), public_key=public_key(folder))


def cosigner(node: str = "KGZ-BS", folder: str = "kgz") -> CosignatureV1Signer:
    return CosignatureV1Signer(name=f"bxnode-witness/{node}", seed=bytes(signing_key(folder)))


def cosigner_verifier(node: str = "KGZ-BS", folder: str = "kgz") -> CosignatureV1Verifier:
    return cosigner(node, folder).verifier


@functools.cache
def witness_state() -> dict[str, str]:
    """A witness's stored state for KAZ-BS's log (written by ``seeds.py`` from a real log)."""
    doc: dict[str, str] = json.loads((FIXTURES / "witness_state.json").read_text())
    return doc
