import numpy as np
import pandas as pd
import pytest

from textlora.config import DataConfig
from textlora.data import clean_html, fingerprint, load_splits
from textlora.errors import TextloraError


def write(tmp_path, name, frame):
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    elif name.endswith(".jsonl"):
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")
    return path


def reviews(n=60, labels=("neg", "pos")):
    return pd.DataFrame({"text": [f"review number {i} words" for i in range(n)], "label": [labels[i % len(labels)] for i in range(n)]})


def test_string_labels_are_sorted_and_mapped(tmp_path):
    path = write(tmp_path, "all.csv", reviews(60, ("pos", "neg", "mid")))
    splits = load_splits(DataConfig(source=str(path)), seed=1)
    assert splits.label_names == ["mid", "neg", "pos"]
    total = sum(len(f) for _, f in splits.items())
    assert total == 60
    # one file: test and validation were carved from it, without overlap
    assert not set(splits.test.text) & set(splits.train.text)
    assert not set(splits.validation.text) & set(splits.train.text)


def test_given_label_names_fix_the_order(tmp_path):
    path = write(tmp_path, "all.jsonl", reviews(40))
    splits = load_splits(DataConfig(source=str(path), label_names=["pos", "neg"]), seed=0)
    assert splits.label_names == ["pos", "neg"]
    row = splits.train.iloc[0]
    assert (row.label == 0) == (int(row.text.split()[2]) % 2 == 1)


def test_rating_bins_like_seed_004(tmp_path):
    frame = pd.DataFrame({"review": [f"r{i}" for i in range(100)], "rating": [1 + i % 10 for i in range(100)]})
    path = write(tmp_path, "train.parquet", frame)
    write(tmp_path, "test.parquet", frame)
    bins = {"negative": [None, 4], "neutral": [5, 6], "positive": [7, None]}
    # The same rows in both files: keep them (dedupe: none), this test is about the bins.
    splits = load_splits(DataConfig(source=str(tmp_path), text_column="review", label_column="rating", label_bins=bins,
                                    dedupe="none"), 0)
    assert splits.label_names == ["negative", "neutral", "positive"]
    counts = splits.summary()["splits"]["test"]["class_counts"]
    assert counts == {"negative": 40, "neutral": 20, "positive": 40}


def test_rating_outside_bins_is_an_error(tmp_path):
    frame = pd.DataFrame({"text": ["a", "b", "c", "d"], "rating": [1, 2, 9, 10]})
    path = write(tmp_path, "d.csv", frame)
    with pytest.raises(TextloraError, match="falls in no bin"):
        load_splits(DataConfig(source=str(path), label_column="rating", label_bins={"neg": [1, 2], "pos": [9, 9]}), 0)


def test_template_joins_fields_and_html_is_cleaned(tmp_path):
    frame = pd.DataFrame({
        "benefits": ["Helped a lot<br />really", "none"] * 10,
        "side": ["sleepy &amp; tired", None] * 10,
        "label": [0, 1] * 10,
    })
    path = write(tmp_path, "train.csv", frame)
    write(tmp_path, "test.csv", frame)
    cfg = DataConfig(source=str(tmp_path), text_template="{benefits} | {side}", clean_html=True, dedupe="none")
    splits = load_splits(cfg, 0)
    texts = set(splits.train.text) | set(splits.test.text)
    assert "Helped a lot really | sleepy & tired" in texts
    assert "none |" in texts  # a missing field renders as empty
    assert splits.label_names == ["0", "1"]


def test_clean_html():
    assert clean_html("Great<br /><br />film &#039;99") == "Great film '99"


def test_stratified_sampling_is_deterministic_per_seed(tmp_path):
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(1000)], "label": [int(i % 10 < 3) for i in range(1000)]})
    path = write(tmp_path, "train.csv", frame)
    write(tmp_path, "test.csv", frame)
    cfg = DataConfig(source=str(tmp_path), n_train=100, n_eval=50, dedupe="none")  # test rows = train rows here
    a, b, c = load_splits(cfg, 7), load_splits(cfg, 7), load_splits(cfg, 8)
    assert list(a.train.text) == list(b.train.text) and fingerprint(a) == fingerprint(b)
    assert list(a.train.text) != list(c.train.text)
    assert len(a.train) == 100 and len(a.test) == 50
    # stratified: 30 % positives in the pool, so exactly 30 of 100 and 15 of 50
    assert a.train.label.sum() == 30 and a.test.label.sum() == 15


def test_missing_column_lists_existing_ones(tmp_path):
    path = write(tmp_path, "d.csv", reviews())
    with pytest.raises(TextloraError, match=r"text column 'review' not in the train split; columns that exist: text, label"):
        load_splits(DataConfig(source=str(path), text_column="review"), 0)
    with pytest.raises(TextloraError, match=r"label column 'stars'.*columns that exist: text, label"):
        load_splits(DataConfig(source=str(path), label_column="stars"), 0)


def test_missing_path_and_unknown_packaged(tmp_path):
    with pytest.raises(TextloraError, match="does not exist"):
        load_splits(DataConfig(source=str(tmp_path / "nope.csv")), 0)
    with pytest.raises(TextloraError, match="unknown packaged dataset"):
        load_splits(DataConfig(source="packaged:nothing"), 0)


def test_one_class_only(tmp_path):
    path = write(tmp_path, "d.csv", reviews(30, ("pos",)))
    with pytest.raises(TextloraError, match="one class only"):
        load_splits(DataConfig(source=str(path)), 0)


def test_empty_split(tmp_path):
    write(tmp_path, "train.csv", reviews(30))
    (tmp_path / "test.csv").write_text("text,label\n")
    with pytest.raises(TextloraError, match="test split has no usable rows"):
        load_splits(DataConfig(source=str(tmp_path)), 0)


def test_blank_texts_and_labels_error_or_drop(tmp_path):
    frame = reviews(40)
    frame.loc[3, "text"] = "   "
    frame.loc[5, "label"] = None
    path = write(tmp_path, "d.csv", frame)
    with pytest.raises(TextloraError, match="2 row.*empty text or a missing label.*drop_invalid"):
        load_splits(DataConfig(source=str(path)), 0)
    splits = load_splits(DataConfig(source=str(path), drop_invalid=True), 0)
    assert sum(len(f) for _, f in splits.items()) == 38
    assert any("dropped 2" in note for note in splits.notes)


def test_label_in_test_never_seen_in_train(tmp_path):
    write(tmp_path, "train.csv", reviews(30))
    write(tmp_path, "test.csv", reviews(30, ("neg", "pos", "meh")))
    with pytest.raises(TextloraError, match="'meh' appears in the test split but not among the classes"):
        load_splits(DataConfig(source=str(tmp_path)), 0)


def test_non_utf8_and_ragged_csv(tmp_path):
    bad = tmp_path / "latin.csv"
    bad.write_bytes("text,label\ncaf\xe9 ok,1\nfine,0\n".encode("latin-1"))
    with pytest.raises(TextloraError, match="not valid UTF-8.*re-save"):
        load_splits(DataConfig(source=str(bad)), 0)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("text,label\na,1\nb,0,extra,field\n")
    with pytest.raises(TextloraError, match="could not be parsed"):
        load_splits(DataConfig(source=str(ragged)), 0)


def test_packaged_drugscom_has_three_classes():
    splits = load_splits(DataConfig(source="packaged:drugscom", text_column="review", label_column="rating"), 0)
    assert splits.label_names == ["negative", "neutral", "positive"]
    # 379 test reviews, one of which repeats a training review: the default data.dedupe: across drops it.
    assert len(splits.test) == 378 and len(splits.train) + len(splits.validation) == 600
    assert any("dropped 1 test row" in note for note in splits.notes)
    kept = load_splits(DataConfig(source="packaged:drugscom", text_column="review", label_column="rating",
                                  dedupe="none"), 0)
    assert len(kept.test) == 379


def test_imdb_parquet_folder_if_shared_data_present():
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "imdb").is_dir():
        pytest.skip(f"no shared IMDB data at {SHARED_DATA}")
    cfg = DataConfig(source=str(SHARED_DATA / "imdb"), label_names=["negative", "positive"], clean_html=True,
                     n_train=500, n_eval=200)
    splits = load_splits(cfg, 0)
    assert len(splits.train) == 500 and len(splits.test) == 200
    assert splits.train.label.sum() == 250
    assert not splits.train.text.str.contains("<br").any()


def test_oversampling_touches_only_training_rows(tmp_path):
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(400)], "label": ["a"] * 300 + ["b"] * 70 + ["c"] * 30})
    write(tmp_path, "train.csv", frame)
    write(tmp_path, "test.csv", frame.iloc[::4])
    plain = load_splits(DataConfig(source=str(tmp_path)), 3)
    grown = load_splits(DataConfig(source=str(tmp_path), oversample="majority"), 3)
    assert grown.validation.equals(plain.validation) and grown.test.equals(plain.test)
    counts = np.bincount(grown.train.label)
    assert counts.tolist() == [np.bincount(plain.train.label).max()] * 3
    assert set(grown.train.text) == set(plain.train.text)  # only repeats, nothing new
    assert not set(grown.train.text) & (set(grown.test.text) | set(grown.validation.text)) - set(plain.train.text)
    fixed = load_splits(DataConfig(source=str(tmp_path), oversample=100), 3)
    assert np.bincount(fixed.train.label).tolist() == [np.bincount(plain.train.label)[0], 100, 100]
    assert list(load_splits(DataConfig(source=str(tmp_path), oversample="majority"), 3).train.text) == list(grown.train.text)


def test_undersampling_then_oversampling_gives_exactly_n_per_class(tmp_path):
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(400)], "label": ["a"] * 300 + ["b"] * 70 + ["c"] * 30})
    write(tmp_path, "train.csv", frame)
    write(tmp_path, "test.csv", frame.iloc[::4])
    plain = load_splits(DataConfig(source=str(tmp_path)), 3)
    both = load_splits(DataConfig(source=str(tmp_path), undersample=50, oversample=50), 3)
    assert np.bincount(both.train.label).tolist() == [50, 50, 50]  # seed 004's "800 per class", scaled
    assert both.validation.equals(plain.validation) and both.test.equals(plain.test)
    assert set(both.train.text) <= set(plain.train.text)
    smallest = np.bincount(plain.train.label).min()
    cut = load_splits(DataConfig(source=str(tmp_path), undersample="minority"), 3)
    assert np.bincount(cut.train.label).tolist() == [smallest] * 3
    assert cut.train.text.is_unique  # undersampling never repeats a row
    with pytest.raises(TextloraError, match="data.undersample must be null, minority or a row count"):
        DataConfig(undersample="majority")


def test_balanced_class_weights():
    from textlora.config import config_from_dict
    from textlora.losses import class_weight_vector

    cfg = config_from_dict({"train": {"class_weights": "balanced"}})
    weights = class_weight_vector(cfg, np.array([0] * 6 + [1] * 3 + [2] * 1), 3)
    assert weights.tolist() == pytest.approx([10 / 18, 10 / 9, 10 / 3])
    with pytest.raises(TextloraError, match="one per class"):
        class_weight_vector(config_from_dict({"train": {"class_weights": [1.0, 2.0]}}), np.array([0, 1, 2]), 3)
