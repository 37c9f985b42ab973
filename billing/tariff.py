"""Tariff files: one TOML file per territory and year, validated at load.

Every problem names the file and the key (``grid.lift_price."120": not a decimal
amount``). Money is written as strings and parsed as ``Decimal``; a TOML float is
refused because it is a binary float (2.80 is not 2.80 in binary). The format is
documented key by key in docs/billing.md.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from billing.document import issuer_from_toml
from billing.errors import TariffError
from billing.model import RESIDUAL, STREAMS, Grid, Tariff, Tier, Tiers

T = TypeVar("T")

# Shortest window between two reads of one bin that are two real lifts: a truck
# re-reads a chip while the lifter shakes or retries within a minute or two, and a
# bin is not emptied twice in one round; coming back takes far longer than this.
DEFAULT_DUPLICATE_WINDOW_S = 600
MAX_DECIMALS = 4  # a price per kg may have mills (0.215 EUR/kg); more is a typo
HOUSEHOLD_KINDS = ("primary", "secondary", "professional")  # core/registry/models.py
# A building's shared bins, billed to its manager (billing/collective.py).
COLLECTIVE = "collective"

_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_ROUNDINGS = ("half_up", "down", "up", "hundredths")
_SECTIONS = {
    "tariff",
    "prorata",
    "hygiene",
    "recovery",
    "vat",
    "grid",
    "grids",
    "streams",  # waste streams' own grids (yellow bin, biowaste)
    "issuer",
}
# A tiered key replaces its flat one (docs/billing.md, "Tiered prices").
_FLAT_OF_TIERS = {
    "lift_tiers": "lift_price",
    "kg_tiers": "kg_price",
    "opening_tiers": "opening_price",
}
_EMPTY = Grid()
# What a waste stream's own grid may price: its bins (household parts stay in [grid]).
_STREAM_KEYS = {
    "bin_fixed",
    "included_lifts",
    "minimum_lifts",
    "lift_price",
    "lift_tiers",
    "kg_price",
    "kg_tiers",
    "tare_kg",
}


def load(path: Path) -> Tariff:
    """Read and validate one tariff file."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise TariffError(str(path), "", f"not valid TOML: {err}") from err
    return parse(data, str(path))


def bundled(name: str) -> Tariff:
    """One of the example tariffs shipped in billing/tariffs (``batzendorf-2013``)."""
    res = resources.files("billing") / "tariffs" / f"{name}.toml"
    if not res.is_file():
        raise TariffError(name, "", f"no bundled tariff of that name (known: {bundled_names()})")
    return parse(tomllib.loads(res.read_text(encoding="utf-8")), f"{name}.toml")


def bundled_names() -> list[str]:
    folder = resources.files("billing") / "tariffs"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def parse(data: Mapping[str, Any], source: str) -> Tariff:
    """Validate a decoded TOML document into a ``Tariff``."""
    r = _Reader(source)
    r.no_unknown(data, "", _SECTIONS)
    head = r.table(data, "tariff", required=True)
    r.no_unknown(head, "tariff", _HEAD_KEYS)
    grid = _grid(r, r.table(data, "grid", required=True), "grid", Grid())
    tariff = Tariff(
        territory=r.get(head, "tariff", "territory", r.text),
        name=r.get(head, "tariff", "name", r.text),
        source=r.get(head, "tariff", "source", r.text),
        illustrative=r.get(head, "tariff", "illustrative", r.boolean),
        effective_from=r.get(head, "tariff", "effective_from", r.day),
        effective_to=r.get(head, "tariff", "effective_to", r.day),
        period=r.get(head, "tariff", "period", r.choice("semester", "year")),
        timezone=r.get(head, "tariff", "timezone", r.zone, "Europe/Paris"),
        variable_in_arrears=r.get(head, "tariff", "variable_in_arrears", r.boolean, False),
        grid=grid,
        grids=_category_grids(r, r.table(data, "grids"), grid),
        streams=_stream_grids(r, r.table(data, "streams")),
    )
    tariff = _settings(r, data, tariff)
    if "issuer" in data:
        tariff = replace(tariff, issuer=issuer_from_toml(r.table(data, "issuer"), source))
    if tariff.effective_to < tariff.effective_from:
        raise TariffError(source, "tariff.effective_to", "before effective_from")
    return tariff


_HEAD_KEYS = {
    "territory",
    "name",
    "source",
    "illustrative",
    "effective_from",
    "effective_to",
    "period",
    "timezone",
    "variable_in_arrears",
}


def _settings(r: _Reader, data: Mapping[str, Any], t: Tariff) -> Tariff:
    pro, hyg = r.table(data, "prorata"), r.table(data, "hygiene")
    rec, vat = r.table(data, "recovery"), r.table(data, "vat")
    r.no_unknown(pro, "prorata", {"counts", "count_rounding"})
    r.no_unknown(hyg, "hygiene", {"duplicate_window_s"})
    r.no_unknown(rec, "recovery", {"threshold", "below_threshold"})
    r.no_unknown(vat, "vat", {"rate"})
    window = r.get(hyg, "hygiene", "duplicate_window_s", r.count, DEFAULT_DUPLICATE_WINDOW_S)
    return replace(
        t,
        prorate_counts=r.get(pro, "prorata", "counts", r.boolean, True),
        count_rounding=r.get(
            pro,
            "prorata",
            "count_rounding",
            r.choice("half_up", "down", "up", "hundredths"),
            "half_up",
        ),
        duplicate_window=timedelta(seconds=window),
        vat_rate=r.get(vat, "vat", "rate", r.vat_rate, Decimal(0)),
        recovery_threshold=r.get(rec, "recovery", "threshold", r.amount, Decimal("15.00")),
        below_threshold=r.get(
            rec, "recovery", "below_threshold", r.choice("carry_over", "cancel"), "carry_over"
        ),
    )


def _grid(r: _Reader, raw: Mapping[str, Any], path: str, base: Grid) -> Grid:
    """A grid; keys absent from ``raw`` keep ``base``'s values (category overrides)."""
    names = {f.name for f in fields(Grid)}
    r.no_unknown(raw, path, names)
    readers: dict[str, Callable[[Any, str], Any]] = {
        "household_fixed": r.amount,
        "size_fixed": r.by_int(r.amount, "persons"),
        "bin_fixed": r.by_int(r.amount, "volume"),
        "included_lifts": r.count,
        "minimum_lifts": r.count,
        "lift_price": r.by_int(r.amount, "volume"),
        "kg_price": r.amount,
        "tare_kg": r.by_int(r.quantity, "volume"),
        "included_openings": r.count,
        "opening_price": r.amount,
        "lift_tiers": r.by_int(r.tiers, "volume"),
        "kg_tiers": r.tiers,
        "opening_tiers": r.tiers,
    }
    changes = {k: readers[k](raw[k], r.key(path, k)) for k in raw}
    for tiered, flat in _FLAT_OF_TIERS.items():
        if tiered in raw and flat in raw:
            raise r.fail(r.key(path, tiered), f"give {flat} or {tiered}, not both")
        # An override giving one form drops the other it would inherit from [grid].
        if tiered in raw:
            changes[flat] = getattr(_EMPTY, flat)
        elif flat in raw:
            changes[tiered] = getattr(_EMPTY, tiered)
    return replace(base, **changes)


def _category_grids(r: _Reader, raw: Mapping[str, Any], base: Grid) -> dict[str, Grid]:
    r.no_unknown(raw, "grids", {*HOUSEHOLD_KINDS, COLLECTIVE})
    return {kind: _grid(r, r.table(raw, kind, path="grids"), f"grids.{kind}", base) for kind in raw}


def _stream_grids(r: _Reader, raw: Mapping[str, Any]) -> dict[str, Grid]:
    """``[streams.<stream>]``: a stream's own prices, for every household kind. They
    start empty, never from [grid]: a yellow bin priced like a residual one is a wrong
    bill, and a stream without a table is not billed at all."""
    r.no_unknown(raw, "streams", set(STREAMS) - {RESIDUAL})
    out = {}
    for stream in raw:
        table = r.table(raw, stream, path="streams")
        r.no_unknown(table, f"streams.{stream}", _STREAM_KEYS)
        out[stream] = _grid(r, table, f"streams.{stream}", Grid())
    return out


class _Reader:
    """Typed readers that name the offending key in their errors."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> TariffError:
        return TariffError(self.source, key, problem)

    @staticmethod
    def key(path: str, name: str) -> str:
        part = name if _BARE_KEY.fullmatch(name) and not name.isdigit() else f'"{name}"'
        return f"{path}.{part}" if path else part

    def no_unknown(self, raw: Mapping[str, Any], path: str, known: set[str]) -> None:
        for name in raw:
            if name not in known:
                raise self.fail(self.key(path, name), f"unknown key (known: {sorted(known)})")

    def table(
        self, raw: Mapping[str, Any], name: str, *, required: bool = False, path: str = ""
    ) -> Mapping[str, Any]:
        if name not in raw:
            if required:
                raise self.fail(self.key(path, name), "missing table")
            return {}
        value = raw[name]
        if not isinstance(value, dict):
            raise self.fail(self.key(path, name), "must be a table")
        return cast(Mapping[str, Any], value)

    _MISSING: Any = object()

    def get(
        self,
        raw: Mapping[str, Any],
        path: str,
        name: str,
        read: Callable[[Any, str], T],
        default: Any = _MISSING,
    ) -> T:
        if name not in raw:
            if default is self._MISSING:
                raise self.fail(self.key(path, name), "missing")
            return cast(T, default)
        return read(raw[name], self.key(path, name))

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "must be a non-empty string")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def day(self, value: Any, key: str) -> date:
        if not isinstance(value, date) or hasattr(value, "hour"):
            raise self.fail(key, "must be a TOML date such as 2013-01-01")
        return value

    def zone(self, value: Any, key: str) -> str:
        try:
            ZoneInfo(self.text(value, key))
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise self.fail(key, f"unknown time zone {value!r}") from err
        return cast(str, value)

    def count(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(key, "must be a whole number >= 0")
        return value

    def choice(self, *allowed: str) -> Callable[[Any, str], Any]:
        def read(value: Any, key: str) -> str:
            if value not in allowed:
                raise self.fail(key, f"must be one of {', '.join(allowed)}")
            return cast(str, value)

        return read

    def decimal(self, value: Any, key: str, what: str) -> Decimal:
        if isinstance(value, float):
            raise self.fail(
                key, f'{value!r} is a TOML float; write {what} as a string, e.g. "2.80"'
            )
        if not isinstance(value, str):
            raise self.fail(key, f'not a decimal {what}: write it as a string, e.g. "2.80"')
        try:
            number = Decimal(value.strip())
        except InvalidOperation as err:
            raise self.fail(key, f"not a decimal {what}") from err
        exponent = number.as_tuple().exponent
        if not number.is_finite() or number < 0 or not isinstance(exponent, int):
            raise self.fail(key, f"not a decimal {what} >= 0")
        if -exponent > MAX_DECIMALS:
            raise self.fail(key, f"more than {MAX_DECIMALS} decimals")
        return number

    def amount(self, value: Any, key: str) -> Decimal:
        return self.decimal(value, key, "amount")

    def quantity(self, value: Any, key: str) -> Decimal:
        return self.decimal(value, key, "quantity")

    def vat_rate(self, value: Any, key: str) -> Decimal:
        # CGI art. 260 A: REOM is outside VAT unless the territory opted in.
        rate = self.decimal(value, key, "percentage")
        if rate >= 100:
            raise self.fail(key, "a VAT rate is a percentage below 100 (5.5 or 10)")
        return rate

    def tiers(self, value: Any, key: str) -> Tiers:
        """``[ { upto = 12, price = "2.50" }, ..., { price = "5.00" } ]``: bounds are
        whole numbers (lifts, openings, kg), ascending; the last tier has none.
        Tiers are named from 1 in errors (``grid.kg_tiers[2].upto``)."""
        if not isinstance(value, list):
            example = '[ { upto = 12, price = "2.50" }, { price = "3.50" } ]'
            raise self.fail(key, f"must be an array of tiers, e.g. {example}")
        if not value:
            raise self.fail(key, "needs at least one tier")
        out: list[Tier] = []
        for n, item in enumerate(value, start=1):
            sub = f"{key}[{n}]"
            if not isinstance(item, dict):
                raise self.fail(sub, "must be a table { upto = ..., price = ... }")
            self.no_unknown(item, sub, {"upto", "price"})
            price = self.get(item, sub, "price", self.amount)
            last = n == len(value)
            if last and "upto" in item:
                raise self.fail(f"{sub}.upto", "the last tier has no upto: it is open-ended")
            upto = None if last else self.get(item, sub, "upto", self.bound)
            if upto is not None and out and (out[-1].upto or 0) >= upto:
                raise self.fail(f"{sub}.upto", f"must be above the previous tier's {out[-1].upto}")
            out.append(Tier(upto, price))
        return tuple(out)

    def bound(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(key, "must be a whole number > 0")
        return value

    def by_int(
        self, read: Callable[[Any, str], T], what: str
    ) -> Callable[[Any, str], dict[int, T]]:
        def table(value: Any, key: str) -> dict[int, T]:
            if not isinstance(value, dict):
                raise self.fail(key, f'must be a table by {what}, e.g. {{ "120" = "2.80" }}')
            out: dict[int, T] = {}
            for name, item in value.items():
                sub = self.key(key, name)
                if not name.isdigit() or int(name) == 0:
                    raise self.fail(sub, f"a {what} key must be a whole number > 0")
                out[int(name)] = read(item, sub)
            return out

        return table
