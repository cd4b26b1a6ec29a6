"""KeyedCodec: blind indexes and sealed fields for the PostgreSQL backend (no server needed).

Property-style: each property is checked over a few hundred generated values (seeded, so a
failure reproduces), Cyrillic, Latin, digits and the empty string among them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from node.core.errors import ConfigError
from node.store.db import FieldCodec
from node.store.fieldcrypt import FIELD_KEY_ENV, KeyedCodec, SealedFieldError, load_field_key
from node.store.keys import write_private

KEY = bytes(range(32))
CODEC = KeyedCodec.from_key(KEY)
ALPHABET = "ABCXYZ0123456789 -'АБВЮСУПОВТИМУРҚайратғʻ"


def values(seed: int, n: int = 300) -> list[str]:
    rng = random.Random(seed)
    out = ["", "AC7654321", "Юсупов", "IUSUPOV"]
    out += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 24))) for _ in range(n)]
    return out


def test_it_is_a_field_codec_that_protects() -> None:
    codec: FieldCodec = CODEC
    assert codec.protects is True


def test_index_is_hmac_sha256_under_an_hkdf_subkey() -> None:
    subkey = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                  info=b"bxnode field key v1: index").derive(KEY)
    want = hmac.new(subkey, b"documents.number\x00AC7654321", hashlib.sha256).digest()
    assert CODEC.index("documents.number", "AC7654321") == want
    assert len(want) == 32


def test_every_index_is_the_hmac_of_its_own_kind_and_value_alone() -> None:
    """The codec keeps one keyed HMAC per kind and copies it for each value: interleaved
    kinds, repeated values and a fresh codec give what one HMAC computed anew gives."""
    subkey = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                  info=b"bxnode field key v1: index").derive(KEY)
    codec = KeyedCodec.from_key(KEY)
    kinds = ("documents.number", "watchlist.owner_ref", "persons.family")
    for i, v in enumerate(values(7) * 2):
        kind = kinds[i % 3]
        want = hmac.new(subkey, kind.encode() + b"\x00" + v.encode(), hashlib.sha256).digest()
        assert codec.index(kind, v) == want, (kind, v)
    for _ in range(2):  # a refused kind is refused every time, not remembered
        with pytest.raises(ValueError):
            codec.index("a\x00b", "c")


def test_equal_values_give_equal_indexes_and_distinct_values_distinct() -> None:
    vs = values(1)
    again = KeyedCodec.from_key(KEY)
    for v in vs:
        assert CODEC.index("k", v) == again.index("k", v)
    assert len({CODEC.index("k", v) for v in set(vs)}) == len(set(vs))


def test_distinct_kinds_give_distinct_indexes() -> None:
    for v in values(2):
        assert CODEC.index("documents.number", v) != CODEC.index("persons.family", v)
    # the separator: kind "ab" + value "c" is not kind "a" + value "bc"
    assert CODEC.index("ab", "c") != CODEC.index("a", "bc")
    with pytest.raises(ValueError):
        CODEC.index("a\x00b", "c")
    with pytest.raises(ValueError):
        CODEC.index("", "c")


def test_another_key_gives_other_indexes() -> None:
    other = KeyedCodec.from_key(b"\x01" * 32)
    for v in values(3, 50):
        assert other.index("k", v) != CODEC.index("k", v)


def test_seal_round_trips_with_a_fresh_nonce_each_time() -> None:
    for v in values(4):
        raw = v.encode()
        sealed = CODEC.seal("persons.sealed", raw)
        assert len(sealed) == 12 + len(raw) + 16
        assert CODEC.open("persons.sealed", sealed) == raw
        assert len(raw) < 6 or raw not in sealed  # short byte strings occur by chance
    assert CODEC.seal("k", b"same") != CODEC.seal("k", b"same")


def test_a_changed_byte_anywhere_is_refused() -> None:
    sealed = CODEC.seal("k", "Юсупов Тимур".encode())
    for i in range(len(sealed)):
        bad = bytearray(sealed)
        bad[i] ^= 0x01
        with pytest.raises(SealedFieldError) as exc:
            CODEC.open("k", bytes(bad))
        assert exc.value.reason == "sealed_field_unreadable"
    with pytest.raises(SealedFieldError):
        CODEC.open("k", sealed[:-1])
    with pytest.raises(SealedFieldError) as exc:
        CODEC.open("k", sealed[:27])
    assert exc.value.reason == "sealed_field_malformed"


def test_a_value_sealed_for_another_kind_or_key_is_refused() -> None:
    sealed = CODEC.seal("persons.sealed", b"KZ-ALERT-0042")
    with pytest.raises(SealedFieldError, match="sealed for another column"):
        CODEC.open("documents.sealed", sealed)
    with pytest.raises(SealedFieldError, match="different field key"):
        KeyedCodec.from_key(b"\x02" * 32).open("persons.sealed", sealed)


def test_index_and_seal_keys_are_separate() -> None:
    index_subkey = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                        info=b"bxnode field key v1: index").derive(KEY)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    sealed = CODEC.seal("k", b"x")
    with pytest.raises(Exception):  # noqa: B017 (cryptography's InvalidTag)
        AESGCM(index_subkey).decrypt(sealed[:12], sealed[12:], b"k")
    assert CODEC.key_check != KeyedCodec.from_key(b"\x01" * 32).key_check
    assert KEY.hex() not in CODEC.key_check


# --- the key: environment or a 0600 file -----------------------------------------------------


def test_the_key_comes_from_the_environment_first(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setenv(FIELD_KEY_ENV, KEY.hex())
    assert load_field_key(tmp_path / "absent.key") == KEY


def test_the_key_file_must_be_private_and_64_hex(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.delenv(FIELD_KEY_ENV, raising=False)
    path = tmp_path / "field.key"
    write_private(path, KEY.hex() + "\n")
    assert load_field_key(path) == KEY
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError) as exc:
        load_field_key(path)
    assert exc.value.reason == "insecure_file_mode"
    short = tmp_path / "short.key"
    write_private(short, "abcd")
    with pytest.raises(ConfigError) as exc:
        load_field_key(short)
    assert exc.value.reason == "bad_field_key"
    with pytest.raises(ConfigError) as exc:
        load_field_key(None)
    assert exc.value.reason == "no_field_key"
    monkeypatch.setenv(FIELD_KEY_ENV, "not hex")
    with pytest.raises(ConfigError) as exc:
        load_field_key(path)
    assert exc.value.reason == "bad_field_key"
    with pytest.raises(ConfigError) as exc:
        KeyedCodec.from_key(b"short")
    assert exc.value.reason == "bad_field_key"
