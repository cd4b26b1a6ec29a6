"""RFC 8785 (JCS) canonical bytes: the RFC's own examples and the value types a registry uses."""

from __future__ import annotations

import json

import pytest

from node.federation.registry import RegistryError, canonical


def test_rfc8785_section_3_2_2_example() -> None:
    # RFC 8785 3.2.2 (with 3.2.2.3's number serialisation)
    value = json.loads('{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, '
                       '0.000000000000000000000000001], "string": '
                       '"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", '
                       '"literals": [null, true, false]}')
    assert canonical(value) == (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}').encode()


def test_rfc8785_section_3_2_3_property_sorting() -> None:
    # RFC 8785 3.2.3: properties sort by their UTF-16 code units (the emoji before U+FB33)
    value = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet "
             "With Dagesh", "1": "One", "\U0001f600": "Emoji: Grinning Face",
             "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}
    keys = [k for k in json.loads(canonical(value))]
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert canonical(value).startswith(b'{"\\r":"Carriage Return","1":"One","\xc2\x80":')


def test_registry_value_types() -> None:
    assert canonical({"b": [True, False, None], "a": 9007199254740991, "c": "Асанов",
                      "d": {"z": 1, "y": -2}}) == (
        '{"a":9007199254740991,"b":[true,false,null],"c":"Асанов","d":{"y":-2,"z":1}}'
    ).encode()
    with pytest.raises(RegistryError):
        canonical(2**53)  # outside the interoperable integer range
