"""Errors shared by every package; each one carries a short machine reason (metric label)."""

from __future__ import annotations


class FoyerError(Exception):
    """Base of Foyer's own errors."""


class Refused(FoyerError):
    """A message or pack refused by the protocol rules.

    `reason` is a stable, low-cardinality label used in metrics; the message is the
    human diagnostic sent back to the device (CoAP payload) and logged.
    """

    def __init__(self, reason: str, diagnostic: str) -> None:
        super().__init__(diagnostic)
        self.reason = reason
        self.diagnostic = diagnostic


class StoreUnavailable(FoyerError):
    """The telemetry store cannot take writes now (network, outage); retry later."""


class StoreRejected(FoyerError):
    """The telemetry store refused the data itself; retrying the same batch will not help."""
