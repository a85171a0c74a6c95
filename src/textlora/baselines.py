"""The classical baseline every comparison must show: TF-IDF + logistic regression.

Trained on exactly the training rows of the run and scored on its test rows
with the same metrics function as the neural rows.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from textlora.metrics import classification_metrics


def tfidf_logreg(
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    test_texts: Sequence[str],
    test_labels: Sequence[int],
    label_names: list[str],
    seed: int = 42,
) -> dict[str, Any]:
    """Word 1-2 grams, sublinear tf, L2 logistic regression; returns metrics + seconds."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    start = time.perf_counter()
    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2 if len(train_texts) >= 50 else 1, sublinear_tf=True, max_features=200_000),
        LogisticRegression(C=4.0, max_iter=2000, random_state=seed),
    )
    pipeline.fit(list(train_texts), np.asarray(train_labels))
    fitted = time.perf_counter()
    # The classifier only knows the classes it saw; place its columns at
    # their label ids so the probability matrix has one column per class.
    known = pipeline.predict_proba(list(test_texts))
    probs = np.zeros((len(test_texts), len(label_names)))
    probs[:, pipeline.classes_] = known
    result = classification_metrics(np.asarray(test_labels), probs, label_names)
    result["train_seconds"] = fitted - start
    result["seconds"] = time.perf_counter() - start
    return result
