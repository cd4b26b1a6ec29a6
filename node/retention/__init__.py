"""Retention for everything that holds personal data (issue 13): per-kind periods
(``[retention]`` in node.toml), holds, and the erasure sweep."""

from node.retention.settings import RETENTION_KINDS, RetentionSettings
from node.retention.sweep import HoldDesk, RetentionSweep, SweepReport

__all__ = ["RETENTION_KINDS", "HoldDesk", "RetentionSettings", "RetentionSweep", "SweepReport"]
