"""``[retention]``: defaults, out-of-range values refused naming the key (issue 13)."""

from __future__ import annotations

import pytest

from node.core.errors import ConfigError
from node.retention.settings import RetentionSettings


def test_defaults_follow_the_rules() -> None:
    s = RetentionSettings.parse({})
    assert (s.receipts_days, s.crossings_days, s.followups_days, s.withdrawn_alerts_days,
            s.expired_alerts_days, s.nonces_days, s.audit_bodies_days) == (
        1095, 1095, 1095, 90, 90, 1, 1095)
    assert RetentionSettings.parse({}, audit_retention_days=730).audit_bodies_days == 730


@pytest.mark.parametrize(("doc", "words"), [
    ({"receipts_days": 29}, "[retention] receipts_days must be a whole number 30..3650"),
    ({"nonces_days": 31}, "[retention] nonces_days must be a whole number 0..30"),
    ({"crossings_days": "3y"}, "[retention] crossings_days must be a whole number"),
    ({"followups_days": True}, "[retention] followups_days must be a whole number"),
    ({"sweep_interval_s": 1}, "[retention] sweep_interval_s must be a whole number 60..86400"),
    ({"receipt_days": 100}, "[retention] has no key 'receipt_days'"),
])
def test_out_of_range_refused_naming_the_key(doc: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as err:
        RetentionSettings.parse(doc)
    assert words in str(err.value)
