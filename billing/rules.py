"""The fee engine: a tariff, one household's account and a period in, a ``Bill`` out.

Pure: no I/O, no clock. The rules (docs/billing.md has them with examples):
- Fixed parts are prorated by day of occupancy, first and last days included, over
  the days of the tariff's period (181 for a first semester of a common year).
- A bin is billed to whoever occupies its dwelling: its fixed part over the days
  both the bin and the occupancy are there, its lifts on those days.
- Minimum and included counts apply per bin and per tariff period (a semestrial
  minimum applied to a year gives a different, wrong result, so a period of the
  wrong kind is refused); whether they are prorated, and how rounded, is a tariff
  setting.
- Each line is rounded to the cent, half up; the total is the sum of the lines
  (billing/money.py). VAT, when the territory opted in, is computed per line.
Days and prorated counts are in billing/spans.py, the line builders in billing/lines.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from billing import money
from billing.errors import BillingInputError
from billing.explain import Words
from billing.lines import carried_line, correction_lines, fixed_lines, variable_lines
from billing.model import (
    Account,
    Bill,
    Disposition,
    Period,
    Tariff,
)


def compute(
    tariff: Tariff,
    account: Account,
    period: Period,
    *,
    language: str = "fr",
    arrears_tariff: Tariff | None = None,
    carried_over: Decimal = Decimal(0),
) -> Bill:
    """The bill of ``account`` for ``period``.

    With ``variable_in_arrears`` the lifts, weights and openings are those of the
    previous period, priced by ``arrears_tariff`` (the previous year's tariff) when
    ``tariff`` does not cover that period.
    """
    _check_period(tariff, period)
    words = Words(language)
    lines = fixed_lines(tariff, account, period, words)
    var_tariff, var_period = _variable_basis(tariff, period, arrears_tariff)
    variable, excluded = variable_lines(var_tariff, account, var_period, words)
    lines += variable + correction_lines(tariff, account, period, words)
    if carried_over:
        lines.append(carried_line(carried_over, period, words))
    total = sum((line.total for line in lines), Decimal("0.00"))
    return Bill(
        household_id=account.household_id,
        period=period,
        lines=tuple(lines),
        excluded=tuple(excluded),
        disposition=disposition(total, tariff),
        threshold=tariff.recovery_threshold,
        language=language,
    )


def split(bill: Bill, keys: Sequence[tuple[str, Decimal]]) -> list[tuple[str, Decimal]]:
    """A collective bill split between dwellings by a key (persons, shares); the
    parts add up exactly to the bill's total (largest remainder, billing/money.py)."""
    return money.split_largest_remainder(bill.total, keys)


def disposition(total: Decimal, tariff: Tariff) -> Disposition:
    """Issue, carry over or cancel. CGCT art. D1611-1: a local authority does not
    issue a claim under its recovery threshold (15 EUR); a credit is never cancelled."""
    if total >= tariff.recovery_threshold:
        return "issue"
    return "carry_over" if total < 0 else tariff.below_threshold


# -- periods -------------------------------------------------------------------------


def _check_period(tariff: Tariff, period: Period) -> None:
    if period.kind != tariff.period:
        raise BillingInputError(
            f"{tariff.name}: bills by {tariff.period}, not by {period.kind}; a minimum "
            "or an included count applies per tariff period"
        )
    if not tariff.covers(period):
        raise BillingInputError(
            f"{tariff.name}: effective {tariff.effective_from} to {tariff.effective_to}, "
            f"not for {period.label}"
        )


def _variable_basis(
    tariff: Tariff, period: Period, arrears_tariff: Tariff | None
) -> tuple[Tariff, Period]:
    if not tariff.variable_in_arrears:
        return tariff, period
    previous = period.previous()
    chosen = tariff if tariff.covers(previous) else arrears_tariff
    if chosen is None:
        raise BillingInputError(
            f"{tariff.name}: variable parts are billed in arrears; the tariff of "
            f"{previous.label} is needed"
        )
    _check_period(chosen, previous)
    return chosen, previous
