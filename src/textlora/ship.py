"""What a run ships, chosen on the validation rows only: the checkpoint metric, the ensemble
weight, and which of fine-tuned, ensemble or a classical row goes to predict / serve / ui.

The test rows never choose anything here: every function takes validation labels and
probabilities, and the pipeline applies the choices to the test rows afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from textlora.metrics import better, classification_metrics

# Candidate weights of the fine-tuned probabilities in the ensemble (the rest is the classical row's).
ENSEMBLE_WEIGHTS = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 21))
# When candidates tie on validation, the cheapest ships: a classical row (milliseconds, no
# transformer), then the fine-tuned model, then the ensemble (which needs both). Paying for more
# model than the validation rows can tell apart is what this project exists to avoid.
SHIP_ORDER = ("tfidf", "nbsvm", "finetuned", "ensemble")


def resolve_select_metric(setting: str, train_labels: np.ndarray, n_classes: int) -> str:
    """auto -> accuracy when the classes are balanced, macro F1 when the smallest training class
    has under half the rows of the largest (accuracy then rewards ignoring it)."""
    if setting != "auto":
        return setting
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=n_classes)
    return "f1_macro" if counts.min() < 0.5 * counts.max() else "accuracy"


def score(metric: str, labels: np.ndarray, probs: np.ndarray, label_names: list[str]) -> float | None:
    """One metric of probabilities on labelled rows (the same function as every table)."""
    return classification_metrics(np.asarray(labels), np.asarray(probs), label_names).get(metric)


Scorer = Callable[[str, np.ndarray, np.ndarray], "float | None"]
"""(metric, validation labels, outputs) -> score: how a task other than classification scores candidates
(tasks.validation_scorer); None means classification's `score` with the label names."""


def blend(finetuned: np.ndarray, classical: np.ndarray, weight: float) -> np.ndarray:
    """weight × fine-tuned + (1 − weight) × classical: rows still sum to 1 (predicted numbers of a
    regression blend the same way)."""
    return weight * np.asarray(finetuned) + (1.0 - weight) * np.asarray(classical)


@dataclass(frozen=True)
class EnsembleChoice:
    partner: str
    """The classical row it averages with (the best one on validation)."""
    weight: float
    """Weight of the fine-tuned probabilities."""
    validation_score: float | None


def choose_ensemble(metric: str, labels: np.ndarray, finetuned: np.ndarray, classical: dict[str, np.ndarray],
                    label_names: list[str], scorer: Scorer | None = None) -> EnsembleChoice | None:
    """The best classical row on validation and the weight that scores best with it on validation."""
    if not classical:
        return None
    if scorer is None:
        scorer = lambda m, y, p: score(m, y, p, label_names)  # noqa: E731
    partner = max_by(metric, {k: scorer(metric, labels, p) for k, p in classical.items()})
    best_weight, best_score = None, None
    for weight in ENSEMBLE_WEIGHTS:
        value = scorer(metric, labels, blend(finetuned, classical[partner], weight))
        # >= on the way up: ties go to the larger fine-tuned weight, the model the user trained.
        if best_weight is None or better(value, best_score, metric) or value == best_score:
            best_weight, best_score = weight, value
    return EnsembleChoice(partner=partner, weight=float(best_weight), validation_score=best_score)


def max_by(metric: str, scores: dict[str, float | None]) -> str:
    """The key with the best score, the first one on ties."""
    best = None
    for key, value in scores.items():
        if best is None or better(value, scores[best], metric):
            best = key
    assert best is not None
    return best


def choose_ship(setting: str, metric: str, validation_scores: dict[str, float | None]) -> tuple[str, str]:
    """(kind, reason): what ships. `validation_scores` holds finetuned, ensemble and classical kinds."""
    if setting in ("finetuned", "ensemble"):
        if setting == "ensemble" and "ensemble" not in validation_scores:
            setting = "finetuned"
            return setting, "ship: ensemble asked, but no classical row to average with; the fine-tuned model ships"
        return setting, f"ship: {setting} (asked for in the recipe)"
    ordered = {k: validation_scores[k] for k in SHIP_ORDER if k in validation_scores}
    kind = max_by(metric, ordered)
    shown = ", ".join(f"{k} {v:.4f}" if v is not None else f"{k} -" for k, v in ordered.items())
    return kind, f"ship: best = {kind}, the best {metric} on the validation rows ({shown})"


def plan_dict(kind: str, reason: str, metric: str, ensemble: EnsembleChoice | None) -> dict[str, Any]:
    """ship.json: what predict loads, and why."""
    out: dict[str, Any] = {"kind": kind, "reason": reason, "select_metric": metric}
    if kind == "ensemble" and ensemble is not None:
        out.update(partner=ensemble.partner, weight=ensemble.weight)
    if kind in ("tfidf", "nbsvm"):
        out["partner"] = kind
    return out


@dataclass(frozen=True)
class ShipDecision:
    """Everything chosen on the validation rows after training, and the test probabilities it implies."""

    ensemble: EnsembleChoice | None
    validation_scores: dict[str, float | None]
    kind: str
    reason: str
    plan: dict[str, Any]
    """ship.json."""


def decide(setting: str, metric: str, label_names: list[str], val_labels: np.ndarray,
           val_probs: dict[str, np.ndarray], test_probs: dict[str, np.ndarray],
           classical: tuple[str, ...], scorer: Scorer | None = None) -> ShipDecision:
    """The ensemble (weight and partner) and what ships, from validation probabilities only; adds the
    ensemble's validation and test probabilities to the two dicts. `scorer`: see Scorer."""
    if scorer is None:
        scorer = lambda m, y, p: score(m, y, p, label_names)  # noqa: E731
    classical_val = {k: val_probs[k] for k in classical if k in val_probs}
    ensemble = choose_ensemble(metric, val_labels, val_probs["finetuned"], classical_val, label_names, scorer)
    if ensemble is not None:
        for probs in (val_probs, test_probs):
            probs["ensemble"] = blend(probs["finetuned"], probs[ensemble.partner], ensemble.weight)
    candidates = ["finetuned", *(["ensemble"] if ensemble else []), *classical_val]
    scores = {k: scorer(metric, val_labels, val_probs[k]) for k in candidates}
    kind, reason = choose_ship(setting, metric, scores)
    return ShipDecision(ensemble=ensemble, validation_scores=scores, kind=kind, reason=reason,
                        plan=plan_dict(kind, reason, metric, ensemble))
