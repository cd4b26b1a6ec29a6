"""PKCS#11 URIs (RFC 7512) as [keys] signing_key: what is accepted and each refusal."""

from __future__ import annotations

import pytest

from node.core.errors import ConfigError
from node.keys.uri import MAX_URI_LEN, parse_pkcs11_uri


def test_token_and_object_with_percent_encoding() -> None:
    uri = parse_pkcs11_uri("pkcs11:token=Border%20Node;object=signing-2026;type=private")
    assert (uri.token, uri.object, uri.id, uri.serial) == ("Border Node", "signing-2026",
                                                           None, None)
    assert str(uri) == "pkcs11:token=Border%20Node;object=signing-2026;type=private"


def test_id_is_bytes_and_serial_manufacturer_model_slot() -> None:
    uri = parse_pkcs11_uri("pkcs11:serial=0a1b;manufacturer=SoftHSM%20project;model=SoftHSM%20v2;"
                           "slot-id=7;id=%01%ff")
    assert (uri.serial, uri.manufacturer, uri.model, uri.slot_id, uri.id, uri.object) == (
        "0a1b", "SoftHSM project", "SoftHSM v2", 7, b"\x01\xff", None)


@pytest.mark.parametrize(("text", "says"), [
    ("file:signing.key", "does not start with 'pkcs11:'"),
    ("pkcs11:token=a;object=b?pin-value=1234", "holds a PIN: put it in the environment variable"),
    ("pkcs11:token=a;object=b?module-path=/x.so", "has a query component"),
    ("pkcs11:token=a;object=b#frag", "has a fragment"),
    ("pkcs11:token=a;token=b;object=c", "gives token twice"),
    ("pkcs11:token=a;objekt=c", "has the attribute 'objekt', which bxnode does not support"),
    ("pkcs11:token=a;x-vendor=1;object=c", "has the attribute 'x-vendor'"),
    ("pkcs11:token=a;object", "not an attribute=value pair"),
    ("pkcs11:token=a b;object=c", "has ' ' in token; percent-encode it"),
    ("pkcs11:token=a;object=c%4", "has a broken percent-escape in object"),
    ("pkcs11:token=a;object=c%zz", "has a broken percent-escape in object"),
    ("pkcs11:token=a;object=%ff", "has object= that is not UTF-8"),
    ("pkcs11:token=a;object=c;type=public", "must name a private key (type=private)"),
    ("pkcs11:token=a;slot-id=x1;object=c", "has a slot-id that is not a decimal number"),
    ("pkcs11:token=a;id=", "has an empty id"),
    ("pkcs11:object=c", "names no token"),
    ("pkcs11:token=a", "names no key"),
    ("pkcs11:", "names no token"),
])
def test_refusals(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_pkcs11_uri(text)
    assert err.value.reason == "bad_pkcs11_uri"
    assert says in str(err.value), str(err.value)


def test_length_bounds_at_the_limit_and_one_past() -> None:
    head = "pkcs11:token=t;object="
    parse_pkcs11_uri(head + "a" * 256)                        # a value: at most 256 bytes
    with pytest.raises(ConfigError, match="longer than 256 bytes"):
        parse_pkcs11_uri(head + "a" * 257)
    exact = "pkcs11:token=" + "t" * 200 + ";object=" + "o" * 199 + ";id=" + "%01" * 200
    assert len(exact) == MAX_URI_LEN
    assert parse_pkcs11_uri(exact).id == b"\x01" * 200      # the whole URI: 1024 characters
    with pytest.raises(ConfigError, match=f"longer than {MAX_URI_LEN} characters"):
        parse_pkcs11_uri(exact + "1")
