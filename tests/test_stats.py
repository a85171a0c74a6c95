"""Bootstrap intervals, paired tests and the one-line verdict, against sklearn and brute force."""

from __future__ import annotations

import itertools
import json
from math import comb

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from textlora.stats import (
    METRICS_WITH_INTERVALS,
    Comparison,
    bootstrap_intervals,
    compare,
    mcnemar_exact,
    metric_value,
    paired_bootstrap,
    resample_indices,
)


def random_case(n: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    probs = rng.dirichlet(np.ones(n_classes), n)
    probs[np.arange(n), labels] += 0.3  # better than chance, so metrics are not all ~0.5
    return labels, probs / probs.sum(axis=1, keepdims=True)


def sklearn_metric(metric: str, labels: np.ndarray, probs: np.ndarray) -> float | None:
    """The reference: plain sklearn calls, one per metric."""
    k = probs.shape[1]
    if metric == "accuracy":
        return accuracy_score(labels, probs.argmax(axis=1))
    if metric == "f1_macro":
        return f1_score(labels, probs.argmax(axis=1), average="macro", labels=list(range(k)), zero_division=0)
    present = len(np.unique(labels))
    if present < 2 or (k > 2 and present < k):
        return None
    if k == 2:
        return roc_auc_score(labels, probs[:, 1])
    return roc_auc_score(labels, probs, multi_class="ovr", labels=list(range(k)))


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metric_value_equals_sklearn(n_classes, seed):
    labels, probs = random_case(60, n_classes, seed)
    for metric in METRICS_WITH_INTERVALS:
        ours = metric_value(metric, labels, probs)
        assert ours == pytest.approx(sklearn_metric(metric, labels, probs), abs=1e-12), metric
        assert 0.3 < ours < 1.0  # a real value, not a degenerate 0 or 1


def test_f1_macro_counts_a_never_predicted_absent_class_as_zero():
    # Class 2 is neither true nor predicted: sklearn (zero_division=0) averages in a 0.
    labels = np.array([0, 1, 1, 0])
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0], [0.7, 0.3, 0.0]])
    expected = f1_score(labels, probs.argmax(1), average="macro", labels=[0, 1, 2], zero_division=0)
    assert metric_value("f1_macro", labels, probs) == pytest.approx(expected)
    assert expected == pytest.approx((0.8 + 2 / 3) / 3)


def test_roc_auc_undefined_cases():
    one_class = np.array([1, 1, 1])
    assert metric_value("roc_auc", one_class, np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])) is None
    missing_class = np.array([0, 1, 0, 1])  # class 2 of 3 absent
    probs = np.full((4, 3), 1 / 3)
    assert metric_value("roc_auc", missing_class, probs) is None
    with pytest.raises(ValueError, match="unknown metric"):
        metric_value("precision", missing_class, probs)


def test_resample_indices_are_one_draw_from_default_rng():
    expected = np.random.default_rng(7).integers(0, 9, size=(4, 9))
    np.testing.assert_array_equal(resample_indices(9, 4, seed=7), expected)


# Five rows: A is right on rows 0-2 and wrong on 3-4 (accuracy 0.6).
FIVE_LABELS = np.array([0, 1, 1, 0, 1])
FIVE_PROBS = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.45, 0.55], [0.9, 0.1]])


def exact_bootstrap_values(metric: str) -> np.ndarray:
    """The metric on all 5^5 equally likely resamples: the exact bootstrap distribution.

    Uses metric_value (checked against sklearn above): this test is about the
    resampling and the percentiles, and sklearn would take seconds here.
    """
    return np.array([
        metric_value(metric, FIVE_LABELS[list(rows)], FIVE_PROBS[list(rows)])
        for rows in itertools.product(range(5), repeat=5)
    ])


def test_bootstrap_matches_exact_distribution_on_five_rows():
    ours = bootstrap_intervals(FIVE_LABELS, {"a": FIVE_PROBS}, ("accuracy", "f1_macro"), n_resamples=20_000)["a"]
    exact_acc = exact_bootstrap_values("accuracy")
    assert len(exact_acc) == 5**5
    # Accuracy is Binomial(5, 0.6) / 5; its 2.5% and 97.5% points are 0.2 and 1.0
    # (P(0) = 0.010, P(<= 0.2) = 0.087; P(1.0) = 0.078), far from a step.
    np.testing.assert_allclose(np.percentile(exact_acc, [2.5, 97.5]), [0.2, 1.0])
    assert ours["accuracy"] == pytest.approx((0.2, 1.0))
    # Macro F1 takes more values; allow the discrete step by bracketing with
    # the exact 1.5/3.5% and 96.5/98.5% points. (ROC-AUC's skipping of
    # undefined resamples is checked against a plain loop below.)
    exact = exact_bootstrap_values("f1_macro")
    low, high = ours["f1_macro"]
    lo_band = np.percentile(exact, [1.5, 3.5])
    hi_band = np.percentile(exact, [96.5, 98.5])
    assert lo_band[0] <= low <= lo_band[1], (low, lo_band)
    assert hi_band[0] <= high <= hi_band[1], (high, hi_band)
    assert high - low > 0.4  # five rows: a wide interval, as it must be


def test_bootstrap_equals_plain_loop_with_same_draws():
    labels, probs = random_case(40, 3, seed=3)
    ours = bootstrap_intervals(labels, {"m": probs}, n_resamples=150, seed=11)["m"]
    indices = np.random.default_rng(11).integers(0, 40, size=(150, 40))
    for metric in METRICS_WITH_INTERVALS:
        values = []
        for rows in indices:
            value = sklearn_metric(metric, labels[rows], probs[rows])
            if value is not None:  # roc_auc is skipped where a class is missing
                values.append(value)
        expected = np.percentile(values, [2.5, 97.5])
        assert ours[metric] == pytest.approx(tuple(expected), abs=1e-12), metric


def test_bootstrap_is_paired_across_names():
    labels, probs = random_case(80, 2, seed=4)
    flipped = probs[:, ::-1]  # right exactly where `probs` is wrong
    out = bootstrap_intervals(labels, {"a": probs, "same": probs.copy(), "flipped": flipped}, n_resamples=200)
    assert out["same"] == out["a"]
    # On shared resamples acc(flipped) = 1 - acc(a) row for row, so the
    # interval mirrors exactly; independent draws would break this.
    low, high = out["a"]["accuracy"]
    assert out["flipped"]["accuracy"] == pytest.approx((1 - high, 1 - low), abs=1e-12)
    low, high = out["a"]["roc_auc"]
    assert out["flipped"]["roc_auc"] == pytest.approx((1 - high, 1 - low), abs=1e-12)
    alone = bootstrap_intervals(labels, {"a": probs}, n_resamples=200)
    assert alone["a"] == out["a"]


def test_bootstrap_none_when_metric_never_defined():
    labels = np.zeros(6, dtype=int)
    probs = np.tile([0.7, 0.3], (6, 1))
    out = bootstrap_intervals(labels, {"m": probs}, n_resamples=50)["m"]
    assert out["roc_auc"] is None
    assert out["accuracy"] == (1.0, 1.0)


def test_mcnemar_hand_worked_table():
    # 20 rows both right, 5 both wrong, b = 1 only A right, c = 7 only B right.
    a = np.array([True] * 20 + [False] * 5 + [True] + [False] * 7)
    b = np.array([True] * 20 + [False] * 5 + [False] + [True] * 7)
    expected = 2 * sum(comb(8, k) for k in range(2)) / 2**8
    assert expected == 0.0703125
    assert mcnemar_exact(a, b) == pytest.approx(0.0703125)
    assert mcnemar_exact(b, a) == pytest.approx(0.0703125)
    assert mcnemar_exact(a, a) == 1.0
    # b = 0, c = 6: 2 / 2^6
    assert mcnemar_exact(np.zeros(6, bool), np.ones(6, bool)) == pytest.approx(2 / 64)


def better_and_worse(n: int = 400, seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A is right on 90% of rows; B is right on a subset of those (75%)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    right_a = rng.random(n) < 0.9
    right_b = right_a & (rng.random(n) < 0.83)
    def probs(right):
        predicted = np.where(right, labels, 1 - labels)
        confidence = rng.uniform(0.55, 0.95, n)
        p = np.empty((n, 2))
        p[np.arange(n), predicted] = confidence
        p[np.arange(n), 1 - predicted] = 1 - confidence
        return p
    return labels, probs(right_a), probs(right_b)


def test_paired_bootstrap_detects_a_better_model():
    labels, a, b = better_and_worse()
    diff, low, high, p = paired_bootstrap(labels, a, b, "accuracy", n_resamples=1000)
    expected = accuracy_score(labels, a.argmax(1)) - accuracy_score(labels, b.argmax(1))
    assert diff == pytest.approx(expected)
    assert 0.1 < diff < 0.2
    assert 0 < low < diff < high
    # Every resample favours A, so p sits at its floor 2 / (R + 1).
    assert p == pytest.approx(2 / 1001)
    swapped = paired_bootstrap(labels, b, a, "accuracy", n_resamples=1000)
    assert swapped == pytest.approx((-diff, -high, -low, p))


def test_paired_bootstrap_skips_resamples_where_either_side_is_undefined():
    # One positive in eight rows: about a third of resamples lack it, and
    # ROC-AUC is undefined there for both models.
    labels = np.array([0, 0, 0, 1, 0, 0, 0, 0])
    rng = np.random.default_rng(9)
    a, b = rng.dirichlet([1, 1], 8), rng.dirichlet([1, 1], 8)
    diff, low, high, p = paired_bootstrap(labels, a, b, "roc_auc", n_resamples=200, seed=4)
    diffs = []
    for rows in np.random.default_rng(4).integers(0, 8, size=(200, 8)):
        if labels[rows].any():
            diffs.append(roc_auc_score(labels[rows], a[rows, 1]) - roc_auc_score(labels[rows], b[rows, 1]))
    assert 100 < len(diffs) < 175
    assert diff == pytest.approx(roc_auc_score(labels, a[:, 1]) - roc_auc_score(labels, b[:, 1]))
    assert (low, high) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])))
    # sklearn's trapezoids can leave 1e-16 between two equal AUCs (a tie counted on one side only);
    # the rank sums stats.py uses are exact, so ties are compared after rounding the reference.
    d = np.round(np.array(diffs), 12)
    tails = (np.sum(d <= 0) + 1, np.sum(d >= 0) + 1)
    assert p == pytest.approx(min(1.0, 2 * min(tails) / (len(d) + 1)))


def test_paired_bootstrap_of_a_model_with_itself():
    labels, probs = random_case(50, 3, seed=6)
    for metric in METRICS_WITH_INTERVALS:
        assert paired_bootstrap(labels, probs, probs, metric, n_resamples=100) == (0.0, 0.0, 0.0, 1.0)


def test_compare_fields_agree_with_the_primitives():
    labels, a, b = better_and_worse(n=300, seed=8)
    c = compare(labels, a, b, "fine-tuned", "TF-IDF + LR", n_resamples=150, seed=2)
    assert c.n == 300
    acc = paired_bootstrap(labels, a, b, "accuracy", n_resamples=150, seed=2)
    assert (c.accuracy_diff, *c.accuracy_interval) == pytest.approx(acc[:3])
    assert c.mcnemar_p == mcnemar_exact(a.argmax(1) == labels, b.argmax(1) == labels)
    assert c.mcnemar_p < 1e-6 and c.significant
    f1 = paired_bootstrap(labels, a, b, "f1_macro", n_resamples=150, seed=2)
    assert (c.f1_macro_diff, *c.f1_macro_interval, c.f1_macro_p) == pytest.approx(f1)
    auc = paired_bootstrap(labels, a, b, "roc_auc", n_resamples=150, seed=2)
    assert (c.roc_auc_diff, *c.roc_auc_interval, c.roc_auc_p) == pytest.approx(auc)
    assert c.verdict.startswith("fine-tuned vs TF-IDF + LR: +")
    assert "significantly better (McNemar p < 0.001) on 300 test texts" in c.verdict
    stored = json.loads(json.dumps({**c.as_dict(), "verdict": c.verdict, "a": "finetuned", "b": "tfidf"}))
    assert stored["accuracy_interval"] == list(c.accuracy_interval)
    assert Comparison.from_dict(stored) == c
    del stored["mcnemar_p"]
    with pytest.raises(ValueError, match="lacks \\['mcnemar_p'\\]"):
        Comparison.from_dict(stored)


def crafted(n: int, acc: float, interval, p: float, f1_p: float | None = None) -> Comparison:
    return Comparison(
        name_a="fine-tuned", name_b="TF-IDF + LR", n=n, accuracy_diff=acc, accuracy_interval=interval,
        mcnemar_p=p, f1_macro_diff=0.023, f1_macro_interval=(0.004, 0.041),
        f1_macro_p=p if f1_p is None else f1_p, roc_auc_diff=None, roc_auc_interval=None, roc_auc_p=None,
    )


def test_verdict_exact_strings():
    assert crafted(379, 0.010, (-0.021, 0.042), 0.55).verdict == (
        "fine-tuned vs TF-IDF + LR: +1.0 pt accuracy [-2.1, +4.2], McNemar p = 0.55: "
        "no significant difference on 379 test texts"
    )
    assert crafted(1000, 0.030, (0.011, 0.049), 0.003).verdict == (
        "fine-tuned vs TF-IDF + LR: +3.0 pt accuracy [+1.1, +4.9]: "
        "significantly better (McNemar p = 0.003) on 1,000 test texts"
    )
    assert crafted(25000, -0.0124, (-0.018, -0.0066), 0.0004).verdict == (
        "fine-tuned vs TF-IDF + LR: -1.2 pt accuracy [-1.8, -0.7]: "
        "significantly worse (McNemar p < 0.001) on 25,000 test texts"
    )
    # Two significant digits; a tiny negative rounds to +0.0, never -0.0.
    assert crafted(50, -0.0001, (-0.05, 0.05), 0.031234).verdict == (
        "fine-tuned vs TF-IDF + LR: +0.0 pt accuracy [-5.0, +5.0]: "
        "significantly worse (McNemar p = 0.031) on 50 test texts"
    )
    for c in (crafted(379, 0.01, (-0.02, 0.04), 0.55), crafted(1000, 0.03, (0.01, 0.05), 0.003)):
        assert "wins" not in c.verdict and "\n" not in c.verdict


def test_verdict_adds_macro_f1_only_when_its_significance_differs():
    line = crafted(2000, 0.012, (-0.004, 0.028), 0.14, f1_p=0.012).verdict
    assert line == (
        "fine-tuned vs TF-IDF + LR: +1.2 pt accuracy [-0.4, +2.8], McNemar p = 0.14: "
        "no significant difference on 2,000 test texts; macro F1 +2.3 pt [+0.4, +4.1] is significant (p = 0.012)"
    )
    assert "macro F1" not in crafted(2000, 0.012, (-0.004, 0.028), 0.14, f1_p=0.3).verdict


@pytest.mark.parametrize("n_classes", [2, 3])
def test_vectorised_resamples_equal_metric_value_per_resample(n_classes):
    """_resampled scores all resamples at once; every value equals metric_value on that resample,
    including undefined ROC-AUC (one class only, or a class missing) and tied scores."""
    from textlora.stats import _resampled, metric_value, resample_indices

    rng = np.random.default_rng(5)
    labels = rng.integers(0, n_classes, 12)
    probs = rng.dirichlet(np.ones(n_classes), 12).round(1)  # rounded: ties among the scores
    probs = probs / probs.sum(axis=1, keepdims=True)
    indices = resample_indices(12, 300, seed=3)
    for metric in ("accuracy", "f1_macro", "roc_auc"):
        fast = _resampled(metric, labels, probs, indices)
        slow = [metric_value(metric, labels[rows], probs[rows]) for rows in indices]
        assert [v is None for v in fast] == [v is None for v in slow], metric
        np.testing.assert_allclose([v for v in fast if v is not None], [v for v in slow if v is not None],
                                   rtol=0, atol=1e-12, err_msg=metric)
    assert any(v is None for v in _resampled("roc_auc", labels, probs, indices)) or n_classes == 2
