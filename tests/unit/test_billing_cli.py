"""``foyer billing simulate`` and ``foyer billing check`` through the real CLI root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli import main

BATZ = ["billing", "simulate", "--tariff", "batzendorf-2013", "--period", "2013-S1"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_simulate_prints_the_worked_move_in_example(capsys: pytest.CaptureFixture[str]) -> None:
    refused = ["--lift", "2013-06-03,refused"]
    argv = [*BATZ, "--volume", "120", "--from", "2013-03-15", "--lifts", "7", *refused]
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert "Non facturé : levée bac-1 le 03/06/2013 06:00, refusée par l'équipage" in out
    assert "Total : 55,41 € (mis en recouvrement)" in out
    assert "× 108/181 jours (du 15/03/2013 au 30/06/2013) = 25,96 €" in out  # noqa: RUF001


def test_simulate_json_has_exact_amounts_and_the_excluded_lifts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [
        *BATZ,
        "--volume",
        "120",
        "--lifts",
        "9",
        "--lift",
        "2013-05-02,refused",
        "--lift",
        "2013-05-03T06:10+02:00,unread",
        "--lang",
        "en",
        "--json",
    ]
    code, out, _ = run(argv, capsys)
    assert code == 0
    bill = json.loads(out)
    assert bill["total"] == "85.20"
    assert [line["amount"] for line in bill["lines"]] == ["43.50", "16.50", "25.20"]
    assert [e["reason"] for e in bill["excluded"]] == ["refused", "unread_chip"]
    assert bill["lines"][2]["explanation"].startswith("Lifts of the 120 L bin")


def test_simulate_splits_a_collective_bill(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        *BATZ,
        "--volume",
        "120",
        "--lifts",
        "8",
        "--split",
        "A=1",
        "--split",
        "B=1",
        "--split",
        "C=1",
        "--json",
    ]
    code, out, _ = run(argv, capsys)
    assert code == 0
    # 43.50 + 16.50 + 8 x 2.80 = 82.40; / 3 = 27.4667: 27.46 each and 2 cents left,
    # to the first two (equal remainders: the earlier key first)
    assert [s["amount"] for s in json.loads(out)["split"]] == ["27.47", "27.47", "27.46"]


def test_simulate_prices_the_net_weight_of_each_lift(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["billing", "simulate", "--tariff", "illustrative-weight-2024", "--period", "2024"]
    code, out, _ = run(
        [*argv, "--volume", "240", "--lifts", "12", "--weight", "40.5", "--json"], capsys
    )
    assert code == 0
    weight = json.loads(out)["lines"][-1]
    # 12 x (40.5 - 14.5 tare) = 312 kg x 0.22 = 68.64, VAT 10 % 6.86 (6.864)
    assert (weight["quantity"], weight["amount"], weight["vat"]) == ("312.0", "68.64", "6.86")


def test_simulate_with_badge_deposits(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["billing", "simulate", "--tariff", "illustrative-badges-2024", "--period", "2024"]
    code, out, _ = run([*argv, "--persons", "3", "--deposits", "40", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["total"] == "211.40"  # 196.00 + 14 x 1.10


def test_simulate_refuses_a_year_for_a_semestrial_tariff(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["billing", "simulate", "--tariff", "batzendorf-2013", "--period", "2013"]
    code, _, err = run([*argv, "--volume", "120"], capsys)
    assert code == 2
    assert "bills by semester" in err


def test_simulate_names_a_volume_the_tariff_does_not_price(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run([*BATZ, "--volume", "240"], capsys)
    assert code == 2
    assert "no grid.bin_fixed for a 240 L bin" in err


def test_check_names_the_bad_key_of_a_tariff_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[tariff]\nterritory = "x"\n[grid]\nlift_price = { "120" = 2.8 }\n', encoding="utf-8"
    )
    code, _, err = run(["billing", "check", str(bad)], capsys)
    assert code == 1
    assert 'grid.lift_price."120": 2.8 is a TOML float' in err


def test_check_validates_the_bundled_tariffs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["billing", "check"], capsys)
    assert code == 0
    assert "ok   batzendorf-2013" in out
