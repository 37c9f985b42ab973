"""Tariff files: validated at load, every error naming the file and the key."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from billing import tariff
from billing.errors import TariffError
from billing.model import Tariff

GOOD = """
[tariff]
territory = "t"
name = "T 2024"
source = "test"
illustrative = true
effective_from = 2024-01-01
effective_to = 2024-12-31
period = "semester"

[grid]
household_fixed = "43.50"
bin_fixed = { "120" = "16.50" }
minimum_lifts = 6
lift_price = { "120" = "2.80", "240" = "5.60" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_with(tmp_path: Path, old: str, new: str) -> Tariff:
    assert old in GOOD
    return tariff.load(write(tmp_path, GOOD.replace(old, new)))


def error(tmp_path: Path, old: str, new: str) -> TariffError:
    with pytest.raises(TariffError) as info:
        load_with(tmp_path, old, new)
    return info.value


def test_a_valid_file_loads_money_as_exact_decimals(tmp_path: Path) -> None:
    t = tariff.load(write(tmp_path, GOOD))
    assert t.grid.lift_price == {120: Decimal("2.80"), 240: Decimal("5.60")}
    assert t.grid.household_fixed == Decimal("43.50")
    assert (t.effective_from, t.period, t.grid.minimum_lifts) == (date(2024, 1, 1), "semester", 6)


def test_defaults_are_no_vat_15_eur_threshold_carry_over_and_ten_minute_dedupe(
    tmp_path: Path,
) -> None:
    t = tariff.load(write(tmp_path, GOOD))
    assert t.vat_rate == 0
    assert (t.recovery_threshold, t.below_threshold) == (Decimal("15.00"), "carry_over")
    assert (
        t.duplicate_window
        == timedelta(seconds=tariff.DEFAULT_DUPLICATE_WINDOW_S)
        == (timedelta(minutes=10))
    )
    assert (t.prorate_counts, t.count_rounding, t.timezone) == (True, "half_up", "Europe/Paris")


def test_a_price_that_is_not_a_decimal_names_its_key(tmp_path: Path) -> None:
    err = error(tmp_path, '"120" = "2.80"', '"120" = "2,80"')
    assert str(err) == f'{tmp_path / "t.toml"}: grid.lift_price."120": not a decimal amount'
    assert err.key == 'grid.lift_price."120"'


def test_a_toml_float_for_money_is_refused_with_a_hint(tmp_path: Path) -> None:
    err = error(tmp_path, 'household_fixed = "43.50"', "household_fixed = 43.50")
    assert err.key == "grid.household_fixed"
    assert "TOML float" in err.problem and '"2.80"' in err.problem


def test_an_integer_for_money_is_refused_too(tmp_path: Path) -> None:
    assert "string" in error(tmp_path, '"120" = "16.50"', '"120" = 16').problem


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        ('"120" = "16.50"', '"120" = "-1.00"', 'grid.bin_fixed."120"', ">= 0"),
        ('"120" = "16.50"', '"120" = "16.50001"', 'grid.bin_fixed."120"', "decimals"),
        ('"120" = "16.50"', '"12O" = "16.50"', 'grid.bin_fixed."12O"', "whole number > 0"),
        ("minimum_lifts = 6", "minimum_lifts = -6", "grid.minimum_lifts", "whole number"),
        ("minimum_lifts = 6", "minimum_lifts = true", "grid.minimum_lifts", "whole number"),
        ("minimum_lifts = 6", "minimum_lift = 6", "grid.minimum_lift", "unknown key"),
        ('period = "semester"', 'period = "month"', "tariff.period", "semester, year"),
        ("effective_to = 2024-12-31", "effective_to = 2023-12-31", "tariff.effective_to", "before"),
        ("effective_to = 2024-12-31", 'effective_to = "2024"', "tariff.effective_to", "date"),
        ('source = "test"', "", "tariff.source", "missing"),
        ("illustrative = true", 'illustrative = "yes"', "tariff.illustrative", "true or false"),
        ("[grid]", "[grid]\nkg_price = 0.2", "grid.kg_price", "TOML float"),
        ("[grid]", '[vat]\nrate = "120"\n[grid]', "vat.rate", "below 100"),
        ("[grid]", '[prorata]\ncount_rounding = "banker"\n[grid]', "prorata.count_rounding", "one"),
        ("[grid]", "[tariff2]\nx = 1\n[grid]", "tariff2", "unknown key"),
        ("[grid]", "[grids.holiday]\nincluded_lifts = 3\n[grid]", "grids.holiday", "unknown key"),
        ("[grid]", '[recovery]\nbelow_threshold = "drop"\n[grid]', "recovery.below_threshold", ""),
        ("period =", 'timezone = "Mars/Olympus"\nperiod =', "tariff.timezone", "time zone"),
    ],
)
def test_each_invalid_value_is_refused_naming_its_key(
    tmp_path: Path, old: str, new: str, key: str, problem: str
) -> None:
    err = error(tmp_path, old, new)
    assert err.key == key
    assert problem in err.problem


def test_a_missing_grid_table_is_named(tmp_path: Path) -> None:
    text = GOOD.split("[grid]")[0]
    with pytest.raises(TariffError, match=r": grid: missing table"):
        tariff.load(write(tmp_path, text))


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(TariffError, match=r"t\.toml: not valid TOML"):
        tariff.load(write(tmp_path, GOOD + "\n[grid\n"))


def test_a_category_grid_overrides_only_its_own_keys(tmp_path: Path) -> None:
    t = load_with(tmp_path, "[grid]", '[grids.secondary]\nhousehold_fixed = "30.00"\n[grid]')
    second = t.grid_for("secondary")
    assert second.household_fixed == Decimal("30.00")
    assert second.lift_price == t.grid.lift_price
    assert t.grid_for("professional") is t.grid


def test_an_error_in_a_category_grid_names_the_category(tmp_path: Path) -> None:
    err = error(tmp_path, "[grid]", '[grids.professional]\nlift_price = { "120" = "x" }\n[grid]')
    assert err.key == 'grids.professional.lift_price."120"'


def test_every_bundled_tariff_validates() -> None:
    names = tariff.bundled_names()
    assert "batzendorf-2013" in names and len(names) >= 4
    for name in names:
        t = tariff.bundled(name)
        assert t.illustrative == name.startswith("illustrative-")


def test_an_unknown_bundled_name_lists_the_known_ones() -> None:
    with pytest.raises(TariffError, match="batzendorf-2013"):
        tariff.bundled("nowhere-1999")
