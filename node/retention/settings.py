"""``[retention]``: how long each kind of record holding personal data is kept.

Days per kind, each within a range; a value out of range, of the wrong type, or an
unknown key is refused naming the key.  The defaults follow the rules this field works
under (README, "Retention"): logs and the records of an exchange 3 years (SIS,
Regulation (EU) 2018/1862 Art. 12(4); EES, Regulation (EU) 2017/2226 Art. 34 and 46;
LED, Directive (EU) 2016/680 Art. 25 leaves the period to national law, 1-3 years in
practice), withdrawn and expired alerts a short grace period after they stopped hitting
(kept only to answer follow-ups and complaints about them), nonces one day past expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from node.core.errors import ConfigError

__all__ = ["RETENTION_KINDS", "RetentionSettings"]

DAY_MS: Final = 86_400_000
#: kind -> (config key, default days, lowest, highest)
RETENTION_KINDS: Final[dict[str, tuple[str, int, int, int]]] = {
    "receipts": ("receipts_days", 1095, 30, 3650),
    "crossings": ("crossings_days", 1095, 1, 3650),
    "followups": ("followups_days", 1095, 30, 3650),
    "withdrawn_alerts": ("withdrawn_alerts_days", 90, 0, 3650),
    "expired_alerts": ("expired_alerts_days", 90, 0, 3650),
    "nonces": ("nonces_days", 1, 0, 30),
    "audit_bodies": ("audit_bodies_days", 1095, 1, 36500),
}
_INTERVAL: Final = ("sweep_interval_s", 3600, 60, 86_400)


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """Days each kind is kept (see :data:`RETENTION_KINDS`) and the sweep interval."""

    receipts_days: int = 1095
    crossings_days: int = 1095
    followups_days: int = 1095
    withdrawn_alerts_days: int = 90
    expired_alerts_days: int = 90
    nonces_days: int = 1
    audit_bodies_days: int = 1095
    sweep_interval_s: int = 3600

    def days(self, kind: str) -> int:
        return int(getattr(self, RETENTION_KINDS[kind][0]))

    def ms(self, kind: str) -> int:
        return self.days(kind) * DAY_MS

    @classmethod
    def parse(cls, doc: dict[str, Any], *, audit_retention_days: int | None = None
              ) -> RetentionSettings:
        """``doc`` is the ``[retention]`` table; ``audit_retention_days`` the older
        ``[audit] retention_days`` (the default for ``audit_bodies_days``)."""
        keys = {k for k, *_ in RETENTION_KINDS.values()} | {_INTERVAL[0]}
        unknown = sorted(set(doc) - keys)
        if unknown:
            raise ConfigError(f"config: [retention] has no key {unknown[0]!r} (known: "
                              f"{', '.join(sorted(keys))})", reason="bad_config")
        values: dict[str, int] = {}
        for key, default, lo, hi in (*RETENTION_KINDS.values(), _INTERVAL):
            if key == "audit_bodies_days" and audit_retention_days is not None:
                default = audit_retention_days
            value = doc.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise ConfigError(f"config: [retention] {key} must be a whole number "
                                  f"{lo}..{hi}, not {value!r}", reason="bad_retention")
            values[key] = value
        return cls(**values)
