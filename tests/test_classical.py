"""Classical classifiers: NB features by hand, parity with the old baseline, pickle-free save/load, OOF."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest
from conftest import FILLER, NEGATIVE, POSITIVE, SHARED_DATA, synthetic_reviews
from sklearn.metrics import accuracy_score

from textlora.classical import (
    CLASSICAL_KINDS, ClassicalModel, fit_classical, load_classical, out_of_fold_probs,
)
from textlora.errors import TextloraError
from textlora.metrics import classification_metrics

NEUTRAL = ["okay", "average", "fine", "mixed", "decent", "middling"]


def labelled(n: int, n_classes: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Synthetic reviews; with 3 classes a neutral class joins negative (0) and positive (1) as id 2."""
    if n_classes == 2:
        frame = synthetic_reviews(n, seed=seed)
        return frame["text"].tolist(), (frame["label"] == "positive").to_numpy(np.int64)
    rng = random.Random(seed)
    pools = [NEGATIVE, POSITIVE, NEUTRAL]
    texts, labels = [], []
    for i in range(n):
        label = i % 3
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 8))] + [rng.choice(pools[label]) for _ in range(3)]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.asarray(labels)


def flip(labels: np.ndarray, rows: list[int]) -> np.ndarray:
    noisy = labels.copy()
    noisy[rows] = 1 - noisy[rows]
    return noisy


def test_names_cover_every_kind_and_unknown_kind_is_a_user_error():
    from textlora.runs import ROW_NAMES

    assert set(CLASSICAL_KINDS) == {"tfidf", "nbsvm"} and {ROW_NAMES[k] for k in CLASSICAL_KINDS} == {"TF-IDF + LR", "NBSVM"}
    with pytest.raises(TextloraError, match="nbsvm"):
        fit_classical("svm", ["a b", "c d"], [0, 1], 2)


def test_nbsvm_ratios_and_features_match_a_hand_computation():
    texts = ["good movie", "good good fun", "bad movie", "bad plot"]
    model = fit_classical("nbsvm", texts, [1, 1, 0, 0], 2)
    vocab = model.vectorizer.vocabulary_
    # Binarized 1-3 grams (min_df=1 on 4 texts): 5 words, 5 bigrams, 1 trigram.
    assert len(vocab) == 11 and "good good fun" in vocab
    # Binary: one regression, for class 1. p = 1 + counts in class 1, |p|_1 = 11 + (3 + 5) = 19;
    # q = 1 + counts in class 0, |q|_1 = 11 + (3 + 3) = 17 ("good good" counts once: binarized).
    assert model.targets.tolist() == [1] and model.ratios.shape == (1, 11)
    expected = {
        "good": math.log((3 / 19) / (1 / 17)),
        "movie": math.log((2 / 19) / (2 / 17)),
        "bad": math.log((1 / 19) / (3 / 17)),
        "good good fun": math.log((2 / 19) / (1 / 17)),
        "bad plot": math.log((1 / 19) / (2 / 17)),
    }
    for term, r in expected.items():
        assert model.ratios[0, vocab[term]] == pytest.approx(r, abs=1e-12), term
    # Features x ∘ r: each present n-gram (once, however often it occurs) carries its ratio.
    row = model.transform(["good good movie movie"])[0].toarray()[0]
    present = {"good": 3 / 19 * 17, "movie": 17 / 19, "good good": 2 / 19 * 17, "good movie": 2 / 19 * 17}
    hand = np.zeros(11)
    for term, ratio in present.items():
        hand[vocab[term]] = math.log(ratio)
    np.testing.assert_allclose(row, hand, atol=1e-12)
    # And the classifier learned the direction of the ratios.
    probs = model.predict_proba(["good fun", "bad plot"])
    assert probs[0, 1] > 0.5 > probs[1, 1]


def test_nbsvm_multiclass_has_one_ratio_per_class():
    texts, labels = labelled(90, 3)
    model = fit_classical("nbsvm", texts, labels, 3)
    assert model.targets.tolist() == [0, 1, 2] and len(model.regressions) == 3
    vocab = model.vectorizer.vocabulary_
    # Each class's own sentiment words get a positive ratio against the rest.
    assert model.ratios[2, vocab["okay"]] > 1.0 and model.ratios[0, vocab["okay"]] < -1.0
    probs = model.predict_proba(texts)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert accuracy_score(labels, probs.argmax(axis=1)) == 1.0


def old_tfidf_baseline(train_texts, train_labels, test_texts, test_labels, names, seed):
    """The TF-IDF + LR baseline textlora shipped before classical.py, rebuilt here with sklearn:
    word 1-2 grams, sublinear tf, C=4; columns placed at the class ids."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2 if len(train_texts) >= 50 else 1, sublinear_tf=True,
                        max_features=200_000),
        LogisticRegression(C=4.0, max_iter=2000, random_state=seed))
    pipeline.fit(list(train_texts), np.asarray(train_labels))
    probs = np.zeros((len(test_texts), len(names)))
    probs[:, pipeline.classes_] = pipeline.predict_proba(list(test_texts))
    return classification_metrics(np.asarray(test_labels), probs, names)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_tfidf_equals_the_old_baseline(n_classes):
    texts, labels = labelled(300, n_classes, seed=1)
    if n_classes == 3:
        labels = np.where(labels == 1, 0, labels)  # class 1 absent: the baseline places columns at ids too
    noisy = list(range(0, 300, 7))  # so that the numbers are not a trivial accuracy 1.0, loss ~0
    labels[noisy] = np.where(labels[noisy] == 0, n_classes - 1, 0)
    names = ["negative", "positive", "neutral"][:n_classes]
    old = old_tfidf_baseline(texts[:200], labels[:200], texts[200:], labels[200:], names, seed=42)
    probs = fit_classical("tfidf", texts[:200], labels[:200], n_classes, seed=42).predict_proba(texts[200:])
    new = classification_metrics(labels[200:], probs, names)
    assert new["accuracy"] == old["accuracy"] and new["loss"] == old["loss"]
    assert new["confusion_matrix"] == old["confusion_matrix"]
    assert 0.5 < new["accuracy"] < 1.0 and new["loss"] > 0.05


@pytest.mark.parametrize("kind", CLASSICAL_KINDS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_save_then_load_gives_identical_probabilities_without_pickle(tmp_path, kind, n_classes):
    texts, labels = labelled(150, n_classes, seed=2)
    model = fit_classical(kind, texts, labels, n_classes)
    unseen = ["great plot", "the worst", "okay film", "never seen words", ""] + texts[:20]
    before = model.predict_proba(unseen)
    model.save(tmp_path / "model")
    files = {p.name for p in (tmp_path / "model").iterdir()}
    assert files == {"classical.json", "vocabulary.json", "arrays.safetensors"}
    assert not any(name.endswith((".pkl", ".pickle", ".joblib", ".bin")) for name in files)
    loaded = load_classical(tmp_path / "model")
    after = loaded.predict_proba(unseen)
    assert loaded.kind == kind and loaded.n_classes == n_classes
    assert after.shape == (len(unseen), n_classes)
    assert np.array_equal(before, after)
    # Not vacuous: the probabilities vary and are confident where the text is clear.
    assert before[:, 0].std() > 0.1 and before[1, 0] > 0.5


@pytest.mark.parametrize("kind", CLASSICAL_KINDS)
@pytest.mark.parametrize("n_classes", [3, 4])
def test_class_absent_from_training_gets_a_zero_column(tmp_path, kind, n_classes):
    texts, labels = labelled(120, 3, seed=3)
    keep = labels != 1  # train on classes 0 and 2 only (and with 4 classes, id 3 never appears either)
    texts, labels = [t for t, k in zip(texts, keep) if k], labels[keep]
    model = fit_classical(kind, texts, labels, n_classes)
    probs = model.predict_proba(texts)
    assert probs.shape == (len(texts), n_classes)
    assert np.all(probs[:, 1] == 0.0) and np.all(probs[:, 3:] == 0.0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert accuracy_score(labels, probs.argmax(axis=1)) == 1.0
    model.save(tmp_path / "m")
    assert np.array_equal(load_classical(tmp_path / "m").predict_proba(texts), probs)


def test_a_single_training_class_predicts_it_with_certainty(tmp_path):
    model = fit_classical("nbsvm", ["good film", "great film"], [1, 1], 3)
    probs = model.predict_proba(["anything", "bad"])
    assert probs.tolist() == [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]
    model.save(tmp_path / "m")
    assert load_classical(tmp_path / "m").predict_proba(["x"]).tolist() == [[0.0, 1.0, 0.0]]


def test_loading_a_folder_without_a_model_is_a_user_error(tmp_path):
    with pytest.raises(TextloraError, match="classical.json"):
        load_classical(tmp_path)
    with pytest.raises(TextloraError, match="not fitted"):
        ClassicalModel("tfidf").predict_proba(["a"])
    with pytest.raises(TextloraError, match="no usable words"):
        fit_classical("tfidf", ["", "!!"], [0, 1], 2)


@pytest.mark.parametrize("kind", CLASSICAL_KINDS)
def test_out_of_fold_probabilities_put_flipped_labels_at_the_bottom(kind):
    texts, clean = labelled(200, 2, seed=4)
    flipped = [3, 50, 88, 121, 160, 199]
    labels = flip(clean, flipped)
    probs = out_of_fold_probs(kind, texts, labels, 2, folds=5, seed=0)
    assert probs.shape == (200, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    given = probs[np.arange(200), labels]
    # The six flipped rows are exactly the six the held-out models doubt most.
    assert set(np.argsort(given)[: len(flipped)].tolist()) == set(flipped)
    assert given[flipped].max() < 0.5 < np.median(given)
    # Seeded: the same call gives the same numbers.
    assert np.array_equal(probs, out_of_fold_probs(kind, texts, labels, 2, folds=5, seed=0))


def test_out_of_fold_uses_fewer_folds_for_a_tiny_class():
    texts, labels = labelled(60, 3, seed=5)
    rare = np.flatnonzero(labels == 2)[3:]  # keep only 3 rows of class 2: at most 3 stratified folds
    keep = np.setdiff1d(np.arange(60), rare)
    texts, labels = [texts[i] for i in keep], labels[keep]
    assert np.bincount(labels).tolist() == [20, 20, 3]
    probs = out_of_fold_probs("tfidf", texts, labels, 3, folds=5)
    assert probs.shape == (43, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    # Every row was predicted (no row left at zeros) and the easy classes are mostly right.
    assert accuracy_score(labels[labels < 2], probs[labels < 2].argmax(axis=1)) > 0.9


def test_nbsvm_keeps_up_with_tfidf_on_an_imdb_slice():
    if not (SHARED_DATA / "imdb" / "train.parquet").is_file():
        pytest.skip(f"no shared IMDB data at {SHARED_DATA}")
    # The parquet files are sorted by label: sample rows, never take the head.
    folder = SHARED_DATA / "imdb"
    train = pd.read_parquet(folder / "train.parquet", columns=["text", "label"]).sample(2000, random_state=0)
    test = pd.read_parquet(folder / "test.parquet", columns=["text", "label"]).sample(1000, random_state=0)
    accuracy = {}
    for kind in CLASSICAL_KINDS:
        model = fit_classical(kind, train["text"].tolist(), train["label"].to_numpy(), 2)
        accuracy[kind] = accuracy_score(test["label"], model.predict_proba(test["text"].tolist()).argmax(axis=1))
    # Measured: tfidf 0.870, nbsvm 0.889 on these rows.
    assert accuracy["tfidf"] > 0.84
    assert accuracy["nbsvm"] >= accuracy["tfidf"] - 0.01
