"""Data audit: what is wrong with the rows before a model trains on them.

    from textlora.audit import audit_splits
    report = audit_splits(splits, max_length=256, token_lengths={"train": [...], "test": [...]})
    print("\\n".join(report.lines()))

Findings: exact duplicates inside each split and across splits (an evaluation
row whose text is also in train is leakage: the score partly measures
memory), near duplicates, the same text with different labels, empty and very
short texts, texts over max_length tokens, classes with too few rows, and rows
whose given label a TF-IDF + logistic regression model that never saw them
finds unlikely. `apply_dedupe` (data.dedupe) drops exact duplicates;
data.load_splits calls it.

Texts are compared after `normalise`: lower case, runs of whitespace as one
space, stripped. Row numbers are positions in the split's frame.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from textlora.config import DEDUPE_MODES
from textlora.errors import TextloraError

if TYPE_CHECKING:  # data.py imports this module (load_splits calls apply_dedupe)
    from textlora.data import Splits

TEXT, LABEL = "text", "label"
SPLIT_NAMES = ("train", "validation", "test")
# Leakage runs from evaluation rows into the rows they could have been learned from.
ACROSS = (("validation", "train"), ("test", "train"), ("test", "validation"))

NEAR_THRESHOLD = 0.8
"""Near duplicates: estimated Jaccard similarity >= this over sets of word shingles."""
SHINGLE_WORDS = 3
"""Shingles are runs of 3 words; a text of fewer words is the set of its words."""
NUM_PERM = 128
"""MinHash permutations: the Jaccard estimate has a standard error of ~0.035 at 0.8."""
SHORT_WORDS = 3
"""A text of fewer words than this is "very short"."""
OOF_MAX_ROWS = 10_000
"""The label check fits 5 TF-IDF + LR models; above this many rows (all splits pooled) it runs on a
stratified, seeded sample of this size: 46 s on a 10k sample of IMDB (2 busy cores), 109 s on 20k."""
EXAMPLES = 3
"""Example row pairs kept per finding."""
SNIPPET = 200


def normalise(text: Any) -> str:
    """Lower case, whitespace runs collapsed to one space, stripped (None -> "")."""
    return "" if text is None or text is pd.NA else " ".join(str(text).lower().split())


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Matches:
    """Rows of `split` that match a row of `other`; with other == split, an earlier row of it."""

    split: str
    other: str
    rows: int
    examples: list[tuple[int, int]] = field(default_factory=list)
    """(row in split, matching row in other), the first few."""

    @property
    def key(self) -> str:
        return self.split if self.split == self.other else f"{self.split}_in_{self.other}"

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "examples": [list(pair) for pair in self.examples]}


@dataclass(frozen=True)
class LabelIssue:
    """A row whose given label the out-of-fold model finds unlikely."""

    split: str
    row: int
    text: str
    """The first 200 characters."""
    given: str
    predicted: str
    given_probability: float


@dataclass(frozen=True)
class LabelIssues:
    """Out-of-fold TF-IDF + LR probabilities on the rows of every split pooled (a wrong test
    label costs the reported score as surely as a wrong training label costs the model)."""

    checked: int
    """Rows the check ran on (a sample when the splits hold more than oof_max_rows)."""
    total: int
    folds: int
    flagged: dict[str, int]
    """Per split: rows confident learning (cleanlab) counts as likely label errors, those off the
    confident joint's diagonal: another class's probability reaches that class's threshold."""
    below_threshold: dict[str, int]
    """Per split: rows whose given-label probability is under their class's threshold (the mean
    given-label probability of the rows labelled with it): the pool the candidates come from."""
    candidates: list[LabelIssue]
    """The below-threshold rows with the lowest given-label probability, lowest first."""


@dataclass(frozen=True)
class AuditReport:
    """Everything audit_splits found; as_dict() for metrics.json, lines() to print."""

    rows: dict[str, int]
    label_names: list[str]
    exact: list[Matches]
    """Exact duplicates: within each split (rows repeating an earlier row) and across (ACROSS)."""
    near: list[Matches]
    """Near duplicates (not exact ones), within and across, as for `exact`."""
    near_pairs: int
    """Distinct pairs of texts whose estimated Jaccard similarity is >= NEAR_THRESHOLD."""
    conflicts: list[Matches]
    """Same normalised text, different label: within a split, and evaluation rows against train."""
    empty: dict[str, int]
    short: dict[str, int]
    class_counts: dict[str, dict[str, int]]
    small_classes: list[str]
    """Classes with fewer than 2 training rows, or none in a non-empty validation / test split."""
    max_length: int | None = None
    too_long: dict[str, dict[str, float]] | None = None
    """Per split: rows over max_length tokens and their share (when token lengths were given)."""
    label_issues: LabelIssues | None = None
    label_check: str = ""
    """Why the label check did not run, when it did not."""
    seconds: dict[str, float] = field(default_factory=dict)

    def leakage(self) -> dict[str, int]:
        """Evaluation rows whose exact text is in train."""
        return {m.split: m.rows for m in self.exact if m.other == "train" and m.split != "train"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": dict(self.rows),
            "label_names": list(self.label_names),
            "leakage": self.leakage(),
            "exact_duplicates": {m.key: m.as_dict() for m in self.exact},
            "near_duplicates": {
                "threshold": NEAR_THRESHOLD, "shingle_words": SHINGLE_WORDS, "num_perm": NUM_PERM,
                "pairs": self.near_pairs, **{m.key: m.as_dict() for m in self.near},
            },
            "label_conflicts": {m.key: m.as_dict() for m in self.conflicts},
            "empty": dict(self.empty),
            "short": dict(self.short),
            "too_long": None if self.too_long is None else {"max_length": self.max_length, **self.too_long},
            "class_counts": self.class_counts,
            "small_classes": list(self.small_classes),
            "label_issues": None if self.label_issues is None else dataclasses.asdict(self.label_issues),
            "label_check": self.label_check or None,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }

    def lines(self) -> list[str]:
        rows = ", ".join(f"{name} {n:,}" for name, n in self.rows.items())
        out = [f"Data audit: {rows} rows; classes: {', '.join(self.label_names)}"]
        out.append("Exact duplicates (lower-cased, whitespace collapsed):")
        out += _match_lines(self.exact, "repeat an earlier row", "also in")
        out.append(f"Near duplicates (estimated Jaccard >= {NEAR_THRESHOLD} over word {SHINGLE_WORDS}-shingles, "
                   f"exact ones excluded): {self.near_pairs:,} pair(s) of texts")
        out += _match_lines(self.near, "near-duplicate an earlier row", "near-duplicate a row of")
        out.append("Label conflicts (same text, different label):")
        out += _match_lines(self.conflicts, "share their text with a row of another label",
                            "labelled differently from the same text in")
        out.append("Empty texts: " + _per_split(self.empty) + f"; under {SHORT_WORDS} words: " + _per_split(self.short))
        if self.too_long is not None:
            out.append(f"Over {self.max_length} tokens (truncated): " + ", ".join(
                f"{name} {v['rows']:,} ({v['share']:.1%})" for name, v in self.too_long.items()))
        out.append("Classes: " + ("; ".join(self.small_classes) if self.small_classes else "every class has "
                                  "2+ training rows and appears in every evaluation split"))
        if self.label_issues is None:
            out.append(f"Label check: skipped ({self.label_check})")
        else:
            issues = self.label_issues
            sampled = f" (a sample of {issues.checked:,} of {issues.total:,})" if issues.checked < issues.total else ""
            out.append(f"Label check (TF-IDF + LR, {issues.folds}-fold out-of-fold probabilities) on "
                       f"{issues.checked:,} rows{sampled}: likely label errors (confident learning): "
                       f"{_per_split(issues.flagged)}; under their class's threshold: "
                       f"{_per_split(issues.below_threshold)}")
            if issues.candidates:
                out.append("  Lowest given-label probabilities (check these labels first):")
            for c in issues.candidates:
                text = c.text if len(c.text) <= 100 else c.text[:97] + "..."
                out.append(f"    {c.split} row {c.row}: given {c.given!r} (p={c.given_probability:.3f}), "
                           f"predicted {c.predicted!r}: {text!r}")
        out.append("Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items()))
        return out


def _per_split(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in counts.items()) or "none"


def _match_lines(matches: Sequence[Matches], within: str, across: str) -> list[str]:
    lines = []
    for m in matches:
        if not m.rows:
            continue
        shown = ", ".join(f"{a}~{b}" for a, b in m.examples)
        what = f"{m.split}: {m.rows:,} row(s) {within}" if m.split == m.other else \
            f"{m.split}: {m.rows:,} row(s) {across} {m.other}"
        lines.append(f"  {what} (rows {shown})")
    return lines or ["  none"]


# --------------------------------------------------------------------------- exact duplicates and conflicts
# Every split's texts are factorized once into integer codes (equal codes = equal
# normalised texts), so the comparisons below are integer array operations.


def _first_rows(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """For each code, its first row in `codes` (-1 where absent)."""
    first = np.full(n_codes, -1, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]  # repeated indices: the last write, the first row, wins
    return first


def _exact_within(name: str, codes: np.ndarray, n_codes: int) -> tuple[Matches, np.ndarray]:
    first = _first_rows(codes, n_codes)[codes]
    repeat = first != np.arange(len(codes))
    examples = [(int(r), int(first[r])) for r in np.flatnonzero(repeat)[:EXAMPLES]]
    return Matches(name, name, int(repeat.sum()), examples), repeat


def _exact_across(name: str, other: str, codes: np.ndarray, other_codes: np.ndarray, n_codes: int) -> Matches:
    match = _first_rows(other_codes, n_codes)[codes]
    hits = np.flatnonzero(match >= 0)
    return Matches(name, other, len(hits), [(int(r), int(match[r])) for r in hits[:EXAMPLES]])


def _conflicts_within(name: str, codes: np.ndarray, labels: np.ndarray, n_classes: int) -> Matches:
    pairs = np.unique(codes * n_classes + labels)  # distinct (text, label) pairs
    mixed = np.flatnonzero(np.bincount(pairs // n_classes, minlength=codes.max(initial=-1) + 1)[codes] > 1)
    examples = [(int(r), int(np.flatnonzero((codes == codes[r]) & (labels != labels[r]))[0])) for r in mixed[:EXAMPLES]]
    return Matches(name, name, len(mixed), examples)


def _conflicts_across(name: str, other: str, codes: np.ndarray, labels: np.ndarray, other_codes: np.ndarray,
                      other_labels: np.ndarray, n_codes: int, n_classes: int) -> Matches:
    # A row conflicts when its text is in `other` but never with its label there.
    first = _first_rows(other_codes, n_codes)[codes]
    same = np.isin(codes * n_classes + labels, other_codes * n_classes + other_labels)
    rows = np.flatnonzero((first >= 0) & ~same)
    return Matches(name, other, len(rows), [(int(r), int(first[r])) for r in rows[:EXAMPLES]])


# --------------------------------------------------------------------------- near duplicates


def _shingles(text: str) -> list[bytes]:
    words = text.split()
    if len(words) < SHINGLE_WORDS:
        return [w.encode() for w in set(words)]
    runs = zip(*(words[i:] for i in range(SHINGLE_WORDS)))
    return [s.encode() for s in {" ".join(run) for run in runs}]


def near_duplicate_pairs(texts: Sequence[str], seed: int = 42) -> list[tuple[int, int]]:
    """Pairs (i < j) of distinct non-empty texts whose estimated Jaccard similarity over word
    shingles is >= NEAR_THRESHOLD: datasketch's MinHash signatures, its LSH buckets for
    candidates, and the signature estimate to confirm each (LSH lets some pairs below through)."""
    from datasketch import MinHash, MinHashLSH

    present = [i for i, t in enumerate(texts) if t]
    if len(present) < 2:
        return []
    # crc32 instead of datasketch's default SHA-1: a C call per shingle, 2.6x faster over
    # IMDB's 11M shingles, still deterministic; the seeded permutations do the mixing.
    shingles = (_shingles(texts[i]) for i in present)  # a generator: one text's shingles alive at a time
    signatures = list(MinHash.generator(shingles, num_perm=NUM_PERM, seed=seed, hashfunc=zlib.crc32))
    lsh = MinHashLSH(threshold=NEAR_THRESHOLD, num_perm=NUM_PERM)
    with lsh.insertion_session() as session:
        for key, signature in enumerate(signatures):
            session.insert(key, signature, check_duplication=False)
    candidates = [(a, b) for a, signature in enumerate(signatures) for b in lsh.query(signature) if b > a]
    if not candidates:
        return []
    matrix = np.vstack([s.hashvalues for s in signatures])
    first, second = np.array(candidates).T
    keep = (matrix[first] == matrix[second]).mean(axis=1) >= NEAR_THRESHOLD
    return sorted((present[a], present[b]) for a, b in zip(first[keep], second[keep]))


def _near(codes: dict[str, np.ndarray], distinct: Sequence[str], repeats: dict[str, np.ndarray],
          seed: int) -> tuple[list[Matches], int]:
    """Near duplicates among the distinct texts of all splits, mapped back to rows."""
    # rows[code][split] = the rows of that split holding that text, in order
    rows: list[dict[str, list[int]]] = [{} for _ in range(len(distinct))]
    for name, split_codes in codes.items():
        for row, code in enumerate(split_codes.tolist()):
            rows[code].setdefault(name, []).append(row)
    pairs = near_duplicate_pairs(distinct, seed)
    marked: dict[tuple[str, str], dict[int, int]] = {(n, n): {} for n in codes}
    marked.update({pair: {} for pair in ACROSS})
    for u, v in pairs:
        for (a, b), found in marked.items():
            for mine, theirs in ((rows[u], rows[v]), (rows[v], rows[u])):
                if a not in mine or b not in theirs:
                    continue
                partner = theirs[b][0]
                for row in mine[a]:
                    # within: near an earlier row, and not itself an exact repeat (counted there);
                    # across: near a row of `other` that does not hold this exact text (leakage, counted there).
                    if (a == b and (partner >= row or repeats[a][row])) or (a != b and b in mine):
                        continue
                    found.setdefault(row, partner)
    matches = [Matches(a, b, len(found), sorted(found.items())[:EXAMPLES]) for (a, b), found in marked.items()]
    return matches, len(pairs)


# --------------------------------------------------------------------------- labels


def _small_classes(counts: dict[str, dict[str, int]], rows: dict[str, int]) -> list[str]:
    problems = []
    for label, n in counts["train"].items():
        if n < 2:
            problems.append(f"{label!r} has {n} training row(s) (need 2+)")
    for split in ("validation", "test"):
        if rows.get(split):
            problems += [f"{label!r} has no {split} rows" for label, n in counts[split].items() if n == 0]
    return problems


def _label_issues(splits: Splits, n_candidates: int, seed: int, oof_max_rows: int) -> tuple[LabelIssues | None, str]:
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    from textlora.classical import out_of_fold_probs

    frames = {n: f for n, f in splits.items() if len(f)}
    texts = np.concatenate([f[TEXT].map(lambda t: "" if t is None else str(t)).to_numpy(dtype=object)
                            for f in frames.values()])
    labels = np.concatenate([f[LABEL].to_numpy(dtype=np.int64) for f in frames.values()])
    origin = [(n, r) for n, f in frames.items() for r in range(len(f))]
    total = len(labels)
    # A class of one row cannot be in both halves of a stratified fold: leave its rows out.
    counts = np.bincount(labels, minlength=len(splits.label_names))
    usable = np.flatnonzero(counts[labels] >= 2)
    if len(np.unique(labels[usable])) < 2:
        return None, "fewer than two classes with 2+ rows"
    if len(usable) > oof_max_rows:
        usable, _ = train_test_split(usable, train_size=oof_max_rows, random_state=seed, stratify=labels[usable])
        usable = np.sort(usable)
    present = np.unique(labels[usable])
    local = np.searchsorted(present, labels[usable])  # class ids 0..k-1 for the classes present
    folds = int(max(2, min(5, np.bincount(local).min())))
    # One BLAS thread: on these small sparse fits OpenBLAS's threads mostly wait on each other
    # (DrugLib's 3,107 rows, 5 folds, 2 busy cores: 41 s with its 2 threads, 3 s with one).
    with threadpool_limits(limits=1):
        probs = out_of_fold_probs("tfidf", texts[usable].tolist(), local, len(present), folds=folds, seed=seed)
    given = probs[np.arange(len(local)), local]
    # The confident-learning per-class threshold: the mean self-confidence of the rows labelled with it.
    thresholds = np.bincount(local, weights=given) / np.bincount(local)
    below = np.flatnonzero(given < thresholds[local])
    ranked = below[np.argsort(given[below], kind="stable")]

    def per_split(found: np.ndarray) -> dict[str, int]:
        names = [origin[usable[i]][0] for i in found]
        return {n: names.count(n) for n in frames}

    candidates = []
    for i in ranked[:n_candidates]:
        split, row = origin[usable[i]]
        candidates.append(LabelIssue(
            split=split, row=int(row), text=str(texts[usable[i]])[:SNIPPET],
            given=splits.label_names[present[local[i]]], predicted=splits.label_names[present[probs[i].argmax()]],
            given_probability=float(given[i]),
        ))
    flagged = per_split(_confident_learning(local, probs))
    return LabelIssues(checked=len(usable), total=total, folds=folds, flagged=flagged,
                       below_threshold=per_split(below), candidates=candidates), ""


def _confident_learning(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Rows off the diagonal of the confident joint (Northcutt et al. 2021), found by cleanlab:
    a class j is "confident" for a row when p_j reaches the mean p_j of the rows labelled j,
    and a row counts when its most likely confident class is not its given label. A small set on
    easy data, where thresholds sit near 1 and a mislabelled row's true class may stay under."""
    from cleanlab.filter import find_label_issues

    return np.flatnonzero(find_label_issues(labels, probs, filter_by="confident_learning", n_jobs=1))


# --------------------------------------------------------------------------- the audit


def audit_splits(splits: Splits, *, max_length: int | None = None,
                 token_lengths: Mapping[str, Sequence[int]] | None = None, n_candidates: int = 10, seed: int = 42,
                 oof_max_rows: int = OOF_MAX_ROWS) -> AuditReport:
    """Audit train / validation / test rows (text, label ids indexing splits.label_names).

    token_lengths: untruncated token counts per split (any subset of the splits), with
    max_length, to count the texts truncation cuts. oof_max_rows: 0 skips the label check.
    """
    if token_lengths is not None and max_length is None:
        raise TextloraError("token_lengths need max_length to count the texts over it; pass max_length")
    task = getattr(splits, "task", "classification")
    if task != "classification":
        # Label sets and numbers are no classes: the text checks (duplicates, leakage, empty and short
        # texts) run on one pseudo-class; the per-class and label checks do not apply.
        one = {name: frame.assign(**{LABEL: 0}) for name, frame in splits.items()}
        splits = dataclasses.replace(splits, **one, label_names=[f"({task.replace('_', '-')} rows)"],
                                     task="classification")
        report = audit_splits(splits, max_length=max_length, token_lengths=token_lengths, seed=seed, oof_max_rows=0)
        return dataclasses.replace(report, label_check=f"task: {task} (the label check reads single-label classes)",
                                   small_classes=[])
    start = time.perf_counter()
    frames = dict(splits.items())
    rows = {n: len(f) for n, f in frames.items()}
    norms = {n: f[TEXT].map(normalise).astype(object) for n, f in frames.items()}
    labels = {n: f[LABEL].to_numpy(dtype=np.int64) for n, f in frames.items()}
    seconds: dict[str, float] = {"normalise": time.perf_counter() - start}

    tick = time.perf_counter()
    pooled, distinct = pd.factorize(pd.concat([norms[n] for n in SPLIT_NAMES], ignore_index=True))
    bounds = np.cumsum([0] + [rows[n] for n in SPLIT_NAMES])
    codes = {n: pooled[bounds[i]:bounds[i + 1]] for i, n in enumerate(SPLIT_NAMES)}
    n_codes, n_classes = len(distinct), len(splits.label_names)
    exact, conflicts, repeats = [], [], {}
    for name in SPLIT_NAMES:
        found, repeats[name] = _exact_within(name, codes[name], n_codes)
        exact.append(found)
        conflicts.append(_conflicts_within(name, codes[name], labels[name], n_classes))
    for name, other in ACROSS:
        exact.append(_exact_across(name, other, codes[name], codes[other], n_codes))
        conflicts.append(_conflicts_across(name, other, codes[name], labels[name], codes[other], labels[other],
                                           n_codes, n_classes))
    word_counts = {n: norm.str.count(" ") + (norm != "") for n, norm in norms.items()}
    empty = {n: int((norm == "").sum()) for n, norm in norms.items()}
    short = {n: int(((c > 0) & (c < SHORT_WORDS)).sum()) for n, c in word_counts.items()}
    class_counts = {n: dict(zip(splits.label_names, np.bincount(labels[n], minlength=n_classes).tolist()))
                    for n in frames}
    too_long = None
    if token_lengths is not None:
        too_long = {}
        for name, lengths in token_lengths.items():
            lengths = np.asarray(lengths)
            if name not in rows or len(lengths) != rows[name]:
                raise TextloraError(f"token_lengths[{name!r}] must have one count per row of that split")
            over = int((lengths > max_length).sum())
            too_long[name] = {"rows": over, "share": over / len(lengths) if len(lengths) else 0.0}
    seconds["exact"] = time.perf_counter() - tick

    tick = time.perf_counter()
    near, near_pairs = _near(codes, list(distinct), repeats, seed)
    seconds["near"] = time.perf_counter() - tick

    tick = time.perf_counter()
    issues, why = None, "oof_max_rows is 0"
    if oof_max_rows > 0:
        issues, why = _label_issues(splits, n_candidates, seed, oof_max_rows)
        seconds["label_check"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - start
    return AuditReport(
        rows=rows, label_names=list(splits.label_names), exact=exact, near=near, near_pairs=near_pairs,
        conflicts=conflicts, empty=empty, short=short, class_counts=class_counts,
        small_classes=_small_classes(class_counts, rows), max_length=max_length, too_long=too_long,
        label_issues=issues, label_check=why, seconds=seconds,
    )


# --------------------------------------------------------------------------- dedupe


def apply_dedupe(splits: Splits, mode: str) -> tuple[Splits, list[str]]:
    """Drop exact duplicates (normalised text): `within` later repeats inside each split, `across`
    validation / test rows whose text is in train (training rows stay), `both` both, `none` nothing.
    Returns the new splits and one note per split that lost rows."""
    if mode not in DEDUPE_MODES:
        raise TextloraError(f"data.dedupe must be one of {', '.join(DEDUPE_MODES)}, got {mode!r}")
    frames, notes = dict(splits.items()), []

    def keep(name: str, mask: np.ndarray, why: str) -> None:
        dropped = int((~mask).sum())
        if not dropped:
            return
        if not mask.any():
            raise TextloraError(f"every {name} row {why}; fix the data or set data.dedupe=none to keep them")
        frames[name] = frames[name][mask].reset_index(drop=True)
        notes.append(f"dedupe ({mode}): dropped {dropped} {name} row(s) that {why}")

    if mode in ("within", "both"):
        for name in SPLIT_NAMES:
            keep(name, ~frames[name][TEXT].map(normalise).duplicated().to_numpy(), f"repeat an earlier {name} row")
    if mode in ("across", "both"):
        seen = set(frames["train"][TEXT].map(normalise))
        for name in ("validation", "test"):
            keep(name, ~frames[name][TEXT].map(normalise).isin(seen).to_numpy(), "repeat a training text")
    if not notes:
        return splits, notes
    return dataclasses.replace(splits, train=frames["train"], validation=frames["validation"],
                               test=frames["test"]), notes


# --------------------------------------------------------------------------- CLI


def _token_lengths(cfg, splits: Splits) -> dict[str, list[int]]:
    from textlora.models import load_tokenizer, resolve_model_source

    tokenizer = load_tokenizer(resolve_model_source(cfg.model.name), cfg.model.trust_remote_code)
    return {name: [len(ids) for ids in tokenizer(frame[TEXT].tolist(), truncation=False, verbose=False)["input_ids"]]
            if len(frame) else [] for name, frame in splits.items()}


def cmd_audit(args: argparse.Namespace) -> int:
    from textlora.config import command_overrides, load_config
    from textlora.data import load_splits

    if args.candidates < 0:
        raise TextloraError(f"--candidates must be >= 0, got {args.candidates}")
    cfg = load_config(args.recipe, command_overrides(args.recipe, args.set, data=args.data))
    start = time.perf_counter()
    # The audit must see the rows before dedupe removes what it is meant to find.
    splits = load_splits(dataclasses.replace(cfg.data, dedupe="none"), cfg.seed, cfg.task)
    lengths = _token_lengths(cfg, splits) if args.tokens else None
    report = audit_splits(splits, max_length=cfg.model.max_length if args.tokens else None, token_lengths=lengths,
                          n_candidates=args.candidates, seed=cfg.seed,
                          oof_max_rows=OOF_MAX_ROWS if args.candidates else 0)
    _, dedupe_notes = apply_dedupe(splits, cfg.data.dedupe)
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps({**report.as_dict(), "data_notes": splits.notes, "dedupe": cfg.data.dedupe,
                          "dedupe_notes": dedupe_notes, "audit_seconds": round(seconds, 3)}, indent=2))
        return 0
    for note in splits.notes:
        print(f"note: {note}")
    print("\n".join(report.lines()))
    what = "; ".join(note.split(": ", 1)[1] for note in dedupe_notes) or "drops nothing"
    print(f"At training, data.dedupe={cfg.data.dedupe} {what}")
    print(f"Audit took {seconds:.1f} s (loading included)")
    return 0


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="check the data before training: duplicates, leakage, label conflicts, empty texts, label issues",
        description="Load the recipe's rows (as train would, before dedupe) and report exact and near duplicates "
        "within and across splits (evaluation rows also in train are leakage), texts with conflicting labels, "
        "empty and very short texts, classes with too few rows, and likely mislabelled rows (out-of-fold "
        "TF-IDF + logistic regression). Use --set data.n_train=null --set data.n_eval=null for the whole data.",
        epilog="example: textlora audit recipes/imdb-minilm.yaml --data ../shared/data/imdb "
        "--set data.n_train=null --set data.n_eval=null",
    )
    parser.add_argument("recipe", help="YAML recipe (see recipes/)")
    parser.add_argument("--data",
                        help="data: hub dataset id, local file or folder, or packaged:NAME (sets data.source)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe key (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--candidates", type=int, default=10,
                        help="likely mislabelled rows to list (default 10; 0 skips the out-of-fold label check)")
    parser.add_argument("--tokens", action="store_true",
                        help="also count texts over model.max_length tokens (loads the recipe's tokenizer)")
    parser.set_defaults(func=cmd_audit)
