"""Key ids of the development signing keys in keys/dev (generated)."""

DEV_SIGNING_KEY_IDS = frozenset({
    '388f767f60ed2ca4',
    '4ccb1b06fc4cde99',
    'ce0db6d15e1b1c51',
    'e46cfa26f299205f',
})
