"""Classical text classifiers: TF-IDF + logistic regression, and NBSVM; for task: multi_label TF-IDF +
one-vs-rest logistic regressions (one per label), for task: regression TF-IDF + ridge regression.

Every neural row is compared against these, so they must be strong for their
kind (NBSVM is the bag-of-n-grams model that is hard to beat on long
reviews), quick on two CPU cores, and saved without pickle: a run folder may
come from anyone, and unpickling runs arbitrary code. A saved model is JSON
(settings, vocabulary) plus safetensors (arrays); loading rebuilds the
scikit-learn objects from those and gives bit-identical probabilities.

Probabilities always have one column per class id 0..K-1; a class the model
never saw in training gets a column of zeros.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from textlora.errors import TextloraError
from textlora.metrics import softmax

from textlora.runs import CLASSICAL_ROWS as CLASSICAL_KINDS  # noqa: E402  (display names: runs.ROW_NAMES)

FORMAT_VERSION = 1
SETTINGS_FILE, VOCABULARY_FILE, ARRAYS_FILE = "classical.json", "vocabulary.json", "arrays.safetensors"

# Exactly the settings of the original TF-IDF baseline, so numbers stay comparable across versions.
TFIDF_C = 4.0
# Ridge's default penalty on TF-IDF features; not tuned (and never on a test split), like TFIDF_C.
RIDGE_ALPHA = 1.0
# A label present in every (or no) training row gets a constant logit: sigmoid(±12) is 1 - 6e-6.
CONSTANT_LOGIT = 12.0
# C=4 is the value the common NBSVM-LR recipe uses on binarized 1-3 grams; it was
# not tuned here, and certainly not on any test split.
NBSVM_C = 4.0
# Laplace smoothing of the n-gram counts in the log-count ratio, as in Wang & Manning (2012).
NBSVM_ALPHA = 1.0
# Keep one-letter words ("i", "a", the "t" of "don't"): they carry sentiment inside
# bigrams and trigrams ("a must see", "don t like"), unlike sklearn's default pattern.
NBSVM_TOKENS = r"(?u)\b\w+\b"
# Bounds memory: 25k IMDB reviews have ~8M distinct 1-3 grams; the most frequent
# 500k (seen at least twice) keep the accuracy at a fraction of the size.
NBSVM_MAX_FEATURES = 500_000


def _vectorizer_settings(kind: str, n_texts: int) -> dict[str, Any]:
    """JSON-able constructor arguments; min_df=2 drops hapaxes once there is enough text to afford it."""
    min_df = 2 if n_texts >= 50 else 1
    if kind == "tfidf":
        return {"ngram_range": [1, 2], "min_df": min_df, "sublinear_tf": True, "max_features": 200_000}
    return {"binary": True, "ngram_range": [1, 3], "token_pattern": NBSVM_TOKENS, "min_df": min_df,
            "max_features": NBSVM_MAX_FEATURES}


def _make_vectorizer(kind: str, settings: dict[str, Any],
                     vocabulary: dict[str, int] | None = None) -> TfidfVectorizer | CountVectorizer:
    args = {**settings, "ngram_range": tuple(settings["ngram_range"])}  # JSON turns tuples into lists
    return (TfidfVectorizer if kind == "tfidf" else CountVectorizer)(vocabulary=vocabulary, **args)


def log_count_ratio(counts: sparse.spmatrix, positive: np.ndarray, alpha: float = NBSVM_ALPHA) -> np.ndarray:
    """Wang & Manning's r = log((p/|p|_1) / (q/|q|_1)), p/q = alpha + summed rows in/out of the class.

    Written by hand because scikit-learn has no NB-feature transformer.
    """
    positive = np.asarray(positive, dtype=bool)
    p = alpha + np.asarray(counts[positive].sum(axis=0)).ravel()
    q = alpha + np.asarray(counts[~positive].sum(axis=0)).ravel()
    return np.log(p / p.sum()) - np.log(q / q.sum())


class ClassicalModel:
    """One fitted vectorizer and one or more logistic regressions.

    tfidf: a single (multinomial when K>2) regression over TF-IDF features.
    nbsvm: one-vs-rest regressions, each over binarized counts scaled by its
    class's log-count ratio; with two classes only the one for the higher id.
    """

    def __init__(self, kind: str, task: str = "classification") -> None:
        if kind not in CLASSICAL_KINDS:
            raise TextloraError(f"unknown classical model {kind!r}; use one of {', '.join(CLASSICAL_KINDS)}")
        if task != "classification" and kind != "tfidf":
            raise TextloraError(f"the {kind} row is for task: classification; task: {task} has the tfidf row")
        self.kind = kind
        self.task = task
        self.n_classes = 0
        self.classes = np.zeros(0, dtype=np.int64)  # class ids present in the training rows
        self.targets = np.zeros(0, dtype=np.int64)  # nbsvm: the class each regression scores
        self.settings: dict[str, Any] = {}
        self.vectorizer: TfidfVectorizer | CountVectorizer | None = None
        self.ratios = np.zeros((0, 0))  # nbsvm: one log-count ratio row per target
        self.regressions: list[LogisticRegression] = []

    def fit(self, texts: Sequence[str], labels: Sequence[int], n_classes: int, seed: int = 42) -> ClassicalModel:
        """Learn vocabulary, ratios and regressions from these rows only; `n_classes` fixes the output width."""
        if self.task != "classification":
            return self._fit_task(list(texts), labels, seed)
        texts, y = list(texts), np.asarray(labels, dtype=np.int64)
        if len(texts) != len(y) or len(y) == 0:
            raise TextloraError(f"need as many labels as texts (got {len(texts)} texts, {len(y)} labels), at least one")
        if y.min() < 0 or y.max() >= n_classes:
            raise TextloraError(f"labels must be class ids 0..{n_classes - 1}; found {y.min()}..{y.max()}")
        self.n_classes, self.classes = int(n_classes), np.unique(y)
        self.settings = _vectorizer_settings(self.kind, len(texts))
        self.vectorizer = _make_vectorizer(self.kind, self.settings)
        try:
            features = self.vectorizer.fit_transform(texts)
        except ValueError as error:  # sklearn's "empty vocabulary" / "no terms remain" after pruning
            raise TextloraError(f"the training texts have no usable words ({error}); check the text column") from None
        if len(self.classes) < 2:  # nothing to learn: predict_proba answers the one class seen
            return self
        if self.kind == "tfidf":
            self.regressions = [LogisticRegression(C=TFIDF_C, max_iter=2000, random_state=seed).fit(features, y)]
            return self
        # Two classes need one regression (class 0's ratio is just the negation); more need one per class.
        self.targets = self.classes[1:] if len(self.classes) == 2 else self.classes
        self.ratios = np.vstack([log_count_ratio(features, y == c) for c in self.targets])
        # liblinear's dual solver suits many more features than rows and is fast on two cores.
        self.regressions = [
            LogisticRegression(C=NBSVM_C, solver="liblinear", dual=True, max_iter=2000, random_state=seed)
            .fit(features.multiply(ratio).tocsr(), (y == c).astype(np.int64))
            for c, ratio in zip(self.targets, self.ratios)
        ]
        return self

    def _fit_task(self, texts: list[str], labels, seed: int) -> ClassicalModel:
        """multi_label: one binary logistic regression per label column of the (n, K) matrix `labels`;
        regression: one ridge regression on the numbers `labels`."""
        y = np.asarray(labels, dtype=np.float64 if self.task == "regression" else np.int64)
        if len(texts) != len(y) or len(y) == 0:
            raise TextloraError(f"need as many labels as texts (got {len(texts)} texts, {len(y)} labels), at least one")
        self.n_classes = 1 if self.task == "regression" else int(y.shape[1])
        self.regressions = []
        self.settings = _vectorizer_settings(self.kind, len(texts))
        self.vectorizer = _make_vectorizer(self.kind, self.settings)
        try:
            features = self.vectorizer.fit_transform(texts)
        except ValueError as error:
            raise TextloraError(f"the training texts have no usable words ({error}); check the text column") from None
        if self.task == "regression":
            from sklearn.linear_model import Ridge

            self.regressions = [Ridge(alpha=RIDGE_ALPHA, random_state=seed).fit(features, y)]
            return self
        for k in range(self.n_classes):
            column = y[:, k]
            if column.min() == column.max():  # one value in every training row: nothing to fit
                lr = _fitted_lr(np.zeros((1, features.shape[1])), np.array([CONSTANT_LOGIT if column[0] else -CONSTANT_LOGIT]),
                                np.array([0, 1]))
            else:
                lr = LogisticRegression(C=TFIDF_C, max_iter=2000, random_state=seed).fit(features, column)
            self.regressions.append(lr)
        return self

    def predict_outputs(self, texts: Sequence[str]) -> np.ndarray:
        """The row's outputs for its task: class probabilities (n, K), label probabilities (n, K; each a
        sigmoid, rows need not sum to 1), or predicted numbers (n,)."""
        if self.task == "classification":
            return self.predict_proba(texts)
        if self.vectorizer is None:
            raise TextloraError("this classical model is not fitted; call fit() or load_classical() first")
        features = self.vectorizer.transform(list(texts))
        if self.task == "regression":
            return np.asarray(self.regressions[0].predict(features), dtype=np.float64).reshape(-1)
        from scipy.special import expit

        return np.column_stack([expit(lr.decision_function(features)) for lr in self.regressions]) \
            if self.regressions else np.zeros((len(texts), 0))

    def transform(self, texts: Sequence[str]) -> list[sparse.csr_matrix]:
        """The feature matrix each regression sees: TF-IDF, or binarized counts times r_c per target."""
        if self.vectorizer is None:
            raise TextloraError("this classical model is not fitted; call fit() or load_classical() first")
        features = self.vectorizer.transform(list(texts))
        if self.kind == "tfidf":
            return [features]
        return [features.multiply(ratio).tocsr() for ratio in self.ratios]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(n, n_classes) probabilities; rows sum to 1, unseen classes get 0 (task: multi_label: each
        label's own probability)."""
        if self.task == "multi_label":
            return self.predict_outputs(texts)
        if self.task == "regression":
            raise TextloraError("a regression row predicts numbers, not probabilities: call predict_outputs()")
        texts = list(texts)
        probs = np.zeros((len(texts), self.n_classes))
        if len(self.classes) == 1:
            probs[:, self.classes[0]] = 1.0
            return probs
        matrices = self.transform(texts)
        if self.kind == "tfidf" or len(self.targets) == 1:
            # The regression's columns follow its classes_: the trained ids (tfidf) or
            # [not target, target] = [lower id, higher id] (binary nbsvm).
            probs[:, self.classes] = self.regressions[0].predict_proba(matrices[0])
        else:
            # One-vs-rest: normalise the K sigmoids, in log space so that rows whose
            # sigmoids all underflow still sum to 1. log sigmoid(d) = -log(1 + e^-d).
            decisions = np.column_stack([lr.decision_function(x) for lr, x in zip(self.regressions, matrices)])
            probs[:, self.targets] = softmax(-np.logaddexp(0.0, -decisions))
        return probs

    def save(self, folder: Path) -> None:
        """JSON for settings and vocabulary, safetensors for arrays; nothing that executes code on load."""
        from safetensors.numpy import save_file

        if self.vectorizer is None:
            raise TextloraError("this classical model is not fitted; call fit() before save()")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"classes": self.classes, "targets": self.targets, "ratios": self.ratios}
        if self.kind == "tfidf":
            arrays["idf"] = np.asarray(self.vectorizer.idf_)
        for i, lr in enumerate(self.regressions):
            arrays.update({f"coef_{i}": lr.coef_, f"intercept_{i}": np.atleast_1d(lr.intercept_)})
            if hasattr(lr, "classes_"):  # a ridge regression has none
                arrays[f"classes_{i}"] = lr.classes_
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(folder / ARRAYS_FILE))
        vocabulary = {term: int(column) for term, column in self.vectorizer.vocabulary_.items()}
        (folder / VOCABULARY_FILE).write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
        settings = {"format": FORMAT_VERSION, "kind": self.kind, "n_classes": self.n_classes,
                    "vectorizer": self.settings, "n_regressions": len(self.regressions)}
        if self.task != "classification":  # absent for classification: its files stay as they were
            settings["task"] = self.task
        (folder / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def load_classical(folder: Path | str) -> ClassicalModel:
    """Rebuild a saved model: the vectorizer from its vocabulary (and idf), each regression from its arrays."""
    from safetensors.numpy import load_file

    folder = Path(folder)
    if not (folder / SETTINGS_FILE).is_file():
        raise TextloraError(f"no classical model in {folder} (missing {SETTINGS_FILE}); point at a folder save() wrote")
    settings = json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
    if settings.get("format") != FORMAT_VERSION or settings.get("kind") not in CLASSICAL_KINDS:
        raise TextloraError(f"{folder / SETTINGS_FILE} is not a classical model this textlora can read; refit it")
    arrays = load_file(str(folder / ARRAYS_FILE))
    vocabulary = json.loads((folder / VOCABULARY_FILE).read_text(encoding="utf-8"))
    model = ClassicalModel(settings["kind"], settings.get("task", "classification"))
    model.n_classes, model.settings = int(settings["n_classes"]), settings["vectorizer"]
    model.classes, model.targets, model.ratios = arrays["classes"], arrays["targets"], arrays["ratios"]
    model.vectorizer = _make_vectorizer(model.kind, model.settings, vocabulary)
    if model.kind == "tfidf":
        model.vectorizer.idf_ = arrays["idf"]  # also fixes the vocabulary, as fit would
    for i in range(int(settings["n_regressions"])):
        # Setting the fitted attributes is all predict_proba reads; the constructor
        # arguments only matter for fitting, which a loaded model never does again.
        if model.task == "regression":
            from sklearn.linear_model import Ridge

            ridge = Ridge()
            ridge.coef_, ridge.intercept_ = arrays[f"coef_{i}"], float(arrays[f"intercept_{i}"][0])
            ridge.n_features_in_ = ridge.coef_.shape[-1]
            model.regressions.append(ridge)
            continue
        model.regressions.append(_fitted_lr(arrays[f"coef_{i}"], arrays[f"intercept_{i}"], arrays[f"classes_{i}"]))
    return model


def _fitted_lr(coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray) -> LogisticRegression:
    """A LogisticRegression holding these fitted arrays (what predict_proba and decision_function read)."""
    lr = LogisticRegression()
    lr.coef_, lr.intercept_, lr.classes_ = coef, intercept, classes
    lr.n_features_in_ = coef.shape[1]
    return lr


def fit_classical(kind: str, texts: Sequence[str], labels, n_classes: int, seed: int = 42,
                  task: str = "classification") -> ClassicalModel:
    """Fit a classical model of the given kind ("tfidf" or "nbsvm") on these rows. task: multi_label takes
    the (n, K) multi-hot matrix as `labels`, task: regression the numbers (tfidf only)."""
    return ClassicalModel(kind, task).fit(texts, labels, n_classes, seed=seed)


def out_of_fold_probs(kind: str, texts: Sequence[str], labels: Sequence[int], n_classes: int, folds: int = 5,
                      seed: int = 42) -> np.ndarray:
    """Each row's probabilities from a model that never saw that row, for spotting label issues.

    Folds are stratified, shuffled and seeded; with fewer rows than folds in the
    smallest class, fewer folds (at least two) keep every class in every fold.
    """
    texts_array, y = np.asarray(list(texts), dtype=object), np.asarray(labels, dtype=np.int64)
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise TextloraError(f"labels must be class ids 0..{n_classes - 1}; found {y.min()}..{y.max()}")
    smallest = int(np.bincount(y)[np.unique(y)].min()) if len(y) else 0
    n_splits = max(2, min(folds, smallest))
    if len(y) < n_splits:
        raise TextloraError(f"out-of-fold probabilities need at least {n_splits} rows; got {len(y)}")
    probs = np.zeros((len(y), n_classes))
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train, held_out in splitter.split(texts_array, y):
        model = fit_classical(kind, texts_array[train].tolist(), y[train], n_classes, seed=seed)
        probs[held_out] = model.predict_proba(texts_array[held_out].tolist())
    return probs
