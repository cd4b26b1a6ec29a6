"""border-exchange-node: a sovereign node for signed, policy-governed border-data queries."""

__version__ = "0.1.0"
