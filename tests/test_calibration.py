"""Temperature scaling, ECE, Brier and reliability bins, against hand-worked values."""

from __future__ import annotations

from math import log

import numpy as np
import pytest

from textlora.calibration import (
    apply_temperature,
    brier_score,
    calibration_metrics,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    probs = apply_temperature(logits, temperature)
    return float(-np.log(probs[np.arange(len(labels)), labels]).mean())


def synthetic(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): calibrated by construction (T = 1)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, size=(n, 3))
    probs = apply_temperature(logits, 1.0)
    labels = np.array([rng.choice(3, p=p) for p in probs])
    return logits, labels


def test_temperature_is_about_one_on_calibrated_data():
    logits, labels = synthetic()
    t = fit_temperature(logits, labels)
    assert abs(t - 1.0) < 0.15


def test_temperature_softens_an_over_confident_model():
    logits, labels = synthetic(seed=1)
    sharp = 5.0 * logits  # same ranking, five times too confident
    t = fit_temperature(sharp, labels)
    assert 4.0 < t < 6.0  # recovers the factor
    assert nll(sharp, labels, t) < 0.5 * nll(sharp, labels, 1.0)
    # It is the minimiser: nudging T either way is worse.
    assert nll(sharp, labels, t) < min(nll(sharp, labels, t * 1.05), nll(sharp, labels, t / 1.05))
    np.testing.assert_array_equal(apply_temperature(sharp, t).argmax(1), sharp.argmax(1))


def test_temperature_with_label_noise():
    rng = np.random.default_rng(2)
    logits = rng.normal(0.0, 1.0, size=(2000, 2)) * 5.0
    labels = logits.argmax(1)
    flip = rng.random(2000) < 0.3  # 30% of labels wrong: confidence should fall
    labels[flip] = 1 - labels[flip]
    t = fit_temperature(logits, labels)
    assert t > 1.5
    assert nll(logits, labels, t) < nll(logits, labels, 1.0) - 0.5
    assert calibration_metrics(labels, apply_temperature(logits, t))["ece"] < calibration_metrics(
        labels, apply_temperature(logits, 1.0))["ece"]


def test_fit_temperature_is_stable_with_huge_logits():
    logits = np.array([[1000.0, -1000.0], [-800.0, 900.0], [500.0, 400.0]])
    labels = np.array([0, 1, 1])
    t = fit_temperature(logits, labels)
    assert np.isfinite(t) and t > 1  # the third row is confidently wrong
    probs = apply_temperature(logits, t)
    assert probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(1), 1.0)
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(logits, 0.0)


def test_apply_temperature_values():
    probs = apply_temperature(np.array([[2.0, 0.0], [0.0, 0.0]]), 2.0)
    e = np.exp(1.0)
    np.testing.assert_allclose(probs, [[e / (e + 1), 1 / (e + 1)], [0.5, 0.5]])


# Four binary rows worked by hand. Confidence, correct, 15-bin index:
#   0.9  right  13 (0.867, 0.933]
#   0.9  wrong  13
#   0.7  right  10 (0.667, 0.733]
#   0.55 wrong   8 (0.533, 0.600]
HAND_LABELS = np.array([1, 0, 0, 0])
HAND_PROBS = np.array([[0.1, 0.9], [0.1, 0.9], [0.7, 0.3], [0.45, 0.55]])


def test_ece_by_hand():
    # bin 13: |0.5 - 0.9| x 2/4 = 0.2; bin 10: |1 - 0.7| x 1/4 = 0.075; bin 8: |0 - 0.55| x 1/4 = 0.1375
    assert expected_calibration_error(HAND_LABELS, HAND_PROBS) == pytest.approx(0.4125)
    # One bin over [0, 1]: |accuracy 0.5 - mean confidence 0.7625|
    assert expected_calibration_error(HAND_LABELS, HAND_PROBS, bins=1) == pytest.approx(0.2625)


def test_brier_by_hand():
    # rows: 0.01+0.01, 0.81+0.81, 0.09+0.09, 0.3025+0.3025 -> 2.425 / 4
    assert brier_score(HAND_LABELS, HAND_PROBS) == pytest.approx(0.60625)
    labels = np.array([0, 2])
    probs = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    # (0.25 + 0.09 + 0.04 + 0.04 + 0.04 + 0.16) / 2
    assert brier_score(labels, probs) == pytest.approx(0.31)


def test_calibration_metrics_by_hand():
    out = calibration_metrics(HAND_LABELS, HAND_PROBS)
    assert set(out) == {"ece", "brier", "log_loss"}
    assert out["ece"] == pytest.approx(0.4125)
    assert out["brier"] == pytest.approx(0.60625)
    assert out["log_loss"] == pytest.approx(-(log(0.9) + log(0.1) + log(0.7) + log(0.45)) / 4)
    # A hard zero on the true class costs log(1e-12), not infinity.
    hard = calibration_metrics(np.array([0, 1]), np.array([[0.0, 1.0], [0.0, 1.0]]))
    assert hard["log_loss"] == pytest.approx(-log(1e-12) / 2, rel=1e-6)


def test_reliability_bins_by_hand():
    bins = reliability_bins(HAND_LABELS, HAND_PROBS)
    assert len(bins) == 15
    assert [b["count"] for b in bins] == [0] * 8 + [1, 0, 1, 0, 0, 2, 0]
    assert bins[13]["confidence"] == pytest.approx(0.9) and bins[13]["accuracy"] == 0.5
    assert bins[8]["low"] == pytest.approx(8 / 15) and bins[8]["high"] == pytest.approx(9 / 15)
    assert bins[0] == {"low": 0.0, "high": pytest.approx(1 / 15), "count": 0, "confidence": None, "accuracy": None}
    # Bins are (low, high]: confidence 0.6 = 9/15 closes bin 8, 0.8 = 12/15
    # closes bin 11, 1.0 falls in the last bin.
    edge = reliability_bins(np.zeros(3, dtype=int), np.array([[1.0, 0.0], [0.6, 0.4], [0.8, 0.2]]))
    assert [i for i, b in enumerate(edge) if b["count"]] == [8, 11, 14]


def test_reliability_bins_cover_every_row():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(4), 500)
    labels = rng.integers(0, 4, 500)
    bins = reliability_bins(labels, probs, bins=10)
    assert sum(b["count"] for b in bins) == 500
    # The count-weighted mean of bin confidences is the mean top-label confidence.
    weighted = sum(b["count"] * b["confidence"] for b in bins if b["count"]) / 500
    assert weighted == pytest.approx(probs.max(1).mean())
    # Top-label confidence with 4 classes is at least 0.25: the lowest bins are empty.
    assert bins[0]["count"] == 0 and bins[1]["count"] == 0
