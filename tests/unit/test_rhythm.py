"""The rhythm model: normal nights are quiet, a daytime stop alerts, cold start is conservative."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

from alerts import rhythm

MONDAY = datetime(2025, 3, 3, tzinfo=UTC)


def _routine(days: int) -> list[datetime]:
    """Up at 07:00, uses every 10-90 min (a 2 h outing some days), in bed at 22:00."""
    rng = random.Random(4)
    out = []
    for d in range(days):
        day = MONDAY + timedelta(days=d)
        t = day.replace(hour=7)
        while t.hour < 22:
            out.append(t)
            t += timedelta(minutes=rng.uniform(10, 90) if rng.random() > 0.03 else 120)
    return out


def test_a_normal_night_never_alerts() -> None:
    model = rhythm.fit(_routine(28), MONDAY + timedelta(days=28))
    last = MONDAY + timedelta(days=28, hours=21, minutes=50)
    for minutes in range(0, 9 * 60 + 20, 5):  # until 07:00 the next morning
        _, crossed, _ = rhythm.assess(model, last, last + timedelta(minutes=minutes), away=False)
        assert not crossed, minutes


def test_a_stop_at_10_on_a_weekday_alerts_within_a_few_hours_with_an_explanation() -> None:
    model = rhythm.fit(_routine(28), MONDAY + timedelta(days=28))
    last = MONDAY + timedelta(days=29, hours=10)  # a Tuesday
    crossed_at = None
    for minutes in range(0, 12 * 60, 5):
        _, crossed, explanation = rhythm.assess(
            model, last, last + timedelta(minutes=minutes), away=False
        )
        if crossed:
            crossed_at = minutes
            break
    assert crossed_at is not None and crossed_at <= 6 * 60
    assert "no water since 10:00" in explanation["en"] and "weekdays" in explanation["en"]
    assert "pas d'eau depuis 10:00" in explanation["fr"] and "en semaine" in explanation["fr"]


def test_away_never_crosses() -> None:
    model = rhythm.fit(_routine(28), MONDAY + timedelta(days=28))
    last = MONDAY + timedelta(days=29, hours=10)
    score, crossed, _ = rhythm.assess(model, last, last + timedelta(days=3), away=True)
    assert not crossed and score == 0.0


def test_cold_start_uses_the_conservative_prior() -> None:
    empty = rhythm.fit([], MONDAY)
    trained = rhythm.fit(_routine(28), MONDAY + timedelta(days=28))
    cold, warm = rhythm.thresholds_s(empty), rhythm.thresholds_s(trained)
    assert empty.n_uses == 0
    assert cold[10] > warm[10]  # 10:00 weekday: the prior waits longer than the learnt rhythm
    last = MONDAY + timedelta(hours=10)
    assert not rhythm.assess(empty, last, last + timedelta(hours=4), away=False)[1]
    assert rhythm.assess(empty, last, last + timedelta(hours=12), away=False)[1]


def test_training_ignores_the_future_and_excluded_periods() -> None:
    uses = _routine(28)
    now = MONDAY + timedelta(days=14)
    assert (
        rhythm.fit(uses, now).to_dict() == rhythm.fit([u for u in uses if u < now], now).to_dict()
    )
    away = [(MONDAY + timedelta(days=3), MONDAY + timedelta(days=6))]
    assert rhythm.fit(uses, now, excluded=away).n != rhythm.fit(uses, now).n


def test_the_model_round_trips_through_json() -> None:
    model = rhythm.fit(_routine(10), MONDAY + timedelta(days=10))
    again = rhythm.RhythmModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model
    assert (rhythm.thresholds_s(again) == rhythm.thresholds_s(model)).all()
