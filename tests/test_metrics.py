import numpy as np
import pytest
from sklearn import metrics as skm

from textlora.metrics import classification_metrics


def test_binary_metrics_equal_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    p1 = np.clip(labels * 0.6 + rng.normal(0.2, 0.25, 200), 0.01, 0.99)
    probs = np.stack([1 - p1, p1], axis=1)
    predictions = probs.argmax(1)
    out = classification_metrics(labels, probs, ["neg", "pos"])
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(labels, predictions))
    assert out["precision"] == pytest.approx(skm.precision_score(labels, predictions))
    assert out["recall"] == pytest.approx(skm.recall_score(labels, predictions))
    assert out["f1"] == pytest.approx(skm.f1_score(labels, predictions))
    assert out["f1_macro"] == pytest.approx(skm.f1_score(labels, predictions, average="macro"))
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, p1))
    assert out["loss"] == pytest.approx(skm.log_loss(labels, probs))
    assert out["confusion_matrix"] == skm.confusion_matrix(labels, predictions).tolist()
    assert set(out["per_class"]) == {"neg", "pos"}


def test_known_small_case_by_hand():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.8, 0.2]])
    out = classification_metrics(labels, probs, ["a", "b"])
    assert out["accuracy"] == 0.5
    assert out["precision"] == 0.5 and out["recall"] == 0.5
    assert out["confusion_matrix"] == [[1, 1], [1, 1]]
    assert out["roc_auc"] == pytest.approx(0.75)  # 3 of 4 (positive, negative) pairs ranked right


def test_multiclass_macro_weighted_and_ovr_auc():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + np.eye(3)[labels] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    predictions = probs.argmax(1)
    out = classification_metrics(labels, probs, ["n", "u", "p"])
    assert out["f1"] == pytest.approx(skm.f1_score(labels, predictions, average="macro"))
    assert out["f1_weighted"] == pytest.approx(skm.f1_score(labels, predictions, average="weighted"))
    assert out["precision_macro"] == pytest.approx(skm.precision_score(labels, predictions, average="macro"))
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro"))


def test_single_class_labels_give_no_auc():
    out = classification_metrics(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]), ["a", "b"])
    assert out["roc_auc"] is None and out["accuracy"] == 0.5
