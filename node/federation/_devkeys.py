"""Key ids of the development signing keys in keys/dev (generated)."""

DEV_SIGNING_KEY_IDS = frozenset({
    '388f767f60ed2ca4',
    '4ccb1b06fc4cde99',
    'ce0db6d15e1b1c51',
    'e46cfa26f299205f',
})

#: Development governance keys (keys/dev/governance, generated).
DEV_GOVERNANCE_KEY_IDS = frozenset({
    '0be9ed1f6de984d8',
    '267c0b4d9680a8c1',
    '9ffde4ce5d05762a',
    'ae1d534d8d5c586f',
    'fe263cb1214ebc22',
})
