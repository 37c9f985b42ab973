"""Billing errors: a bad tariff file, engine input the tariff cannot price, a run or
invoice action the registry's state does not allow."""

from __future__ import annotations

from core.errors import FoyerError


class BillingError(FoyerError):
    """Base of the billing package's errors."""


class TariffError(BillingError):
    """A tariff file that does not validate; the message names the file and the key.

    ``key`` is the dotted TOML path (``grid.lift_price."120"``), ``problem`` what is
    wrong with it, so an operator can fix the file without reading code.
    """

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


class BillingInputError(BillingError):
    """Engine input the tariff cannot price (a bin volume without a price, a period
    outside the tariff's dates, a correction without an operator or a reason)."""


class BillingRunError(BillingError):
    """A billing run or invoice action the registry's state does not allow."""


class UnknownRun(BillingRunError):
    """A run id the registry does not hold."""


class UnknownInvoice(BillingRunError):
    """An invoice number the registry does not hold."""
