"""The Python API: what the CLI does, as calls that return objects (for notebooks and scripts).

    import textlora

    run = textlora.train("recipes/imdb-minilm.yaml", data="../shared/data/imdb",
                         overrides={"data.n_train": 2000, "lora.r": 16})
    run.comparison                     # DataFrame: TF-IDF, NBSVM, pre-adaptation, fine-tuned, ensemble
    run.verdicts                       # the paired tests, one sentence each
    run.predict(["Pain gone in two days."])
    textlora.compare([run, "runs/imdb-full"])
    textlora.sweep("recipes/imdb-minilm.yaml", {"lora.r": [4, 8, 16]})

Every function raises TextloraError (one line naming the fix) for what the user can fix, and
never exits the interpreter. Messages go to the "textlora" logger (INFO), not to print: when
nobody configured logging (a fresh notebook) the logger gets a plain stdout handler of its own,
as transformers' and datasets' loggers do; `quiet=True` silences them. Progress bars are
tqdm.auto (the Trainer's and textlora's), so they render as widgets in Jupyter.

Heavy imports (torch, transformers, pandas) happen inside the functions: `import textlora`
stays light.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence, Union

from textlora.config import INTERVAL_METRICS, TASK_INTERVAL_METRICS
from textlora.errors import TextloraError

if TYPE_CHECKING:
    import pandas as pd

    from textlora.config import Config
    from textlora.predict import Prediction, Predictor
    from textlora.runs import RunRecord

LOGGER_NAME = "textlora"
RecipeLike = Union[str, "os.PathLike[str]", Mapping[str, Any], "Config", None]


# --------------------------------------------------------------------------- messages


def logger() -> logging.Logger:
    """The "textlora" logger, with a stdout handler of its own when logging is not configured."""
    log = logging.getLogger(LOGGER_NAME)
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.propagate = False  # shown once, by this handler
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    return log


def _printer(quiet: bool) -> Callable[[str], None]:
    """What the pipeline's `say` gets: the logger's info, or nothing."""
    if quiet:
        return lambda *_: None
    log = logger()
    return lambda text="": log.info("%s", text)


# --------------------------------------------------------------------------- recipes


def _raw_recipe(recipe: RecipeLike) -> dict[str, Any]:
    """A raw recipe (the YAML's mapping) from a path, a mapping, a Config, or None (the defaults)."""
    from textlora.config import Config, read_recipe

    if recipe is None:
        return {}
    if isinstance(recipe, Config):
        return recipe.to_dict()
    if isinstance(recipe, Mapping):
        return copy.deepcopy(dict(recipe))
    if isinstance(recipe, (str, os.PathLike)):
        return read_recipe(recipe)
    raise TextloraError(f"a recipe is a YAML path, a dict or a textlora.config.Config, not {type(recipe).__name__}")


def _settings(overrides: Mapping[str, Any] | None, data: Any = None, model: Any = None) -> dict[str, Any]:
    """Dotted keys -> values, with `data` / `model` as data.source / model.name."""
    if overrides is not None and not isinstance(overrides, Mapping):
        raise TextloraError("overrides must be a dict of dotted keys to values, e.g. {\"lora.r\": 16}")
    settings = dict(overrides or {})
    for key in settings:
        if not isinstance(key, str) or not key.strip() or key.startswith(".") or key.endswith("."):
            raise TextloraError(f"override key {key!r} must be a dotted config key, e.g. 'lora.r' or 'train.epochs'")
    if model is not None:
        settings["model.name"] = str(model)
    if data is not None:
        settings["data.source"] = str(data)
    return settings


def make_config(recipe: RecipeLike = None, data: Any = None, model: Any = None,
                overrides: Mapping[str, Any] | None = None) -> "Config":
    """The validated Config that `train` runs: the recipe with `overrides` ({"lora.r": 16}) set."""
    from textlora.config import config_from_dict, set_dotted_key

    raw = _raw_recipe(recipe)
    for key, value in _settings(overrides, data, model).items():
        set_dotted_key(raw, key.split("."), copy.deepcopy(value), f"override {key!r}")
    return config_from_dict(raw)


# --------------------------------------------------------------------------- runs


class Run:
    """A finished run folder, read through its typed record (never retrained)."""

    def __init__(self, path: str | os.PathLike[str]):
        from textlora.runs import open_run

        self._dir = open_run(path)
        self.path: Path = self._dir.path
        self._record: RunRecord | None = None
        self._predictor: Predictor | None = None

    @property
    def record(self) -> "RunRecord":
        """metrics.json as runs.RunRecord: baselines, final, ensemble, intervals, params, timing."""
        if self._record is None:
            self._record = self._dir.record()
        return self._record

    @property
    def metrics(self) -> "RunRecord":
        """The same record as `record` (every number the run measured)."""
        return self.record

    @property
    def info(self) -> dict[str, Any]:
        """run.json: method, base model, label names, objective, truncation."""
        return dict(self._dir.info)

    @property
    def label_names(self) -> list[str]:
        return self._dir.label_names

    @property
    def task(self) -> str:
        """classification, multi_label or regression: what its rows measure and what predict returns."""
        return self._dir.task

    @property
    def verdicts(self) -> list[str]:
        """One sentence per paired comparison (fine-tuned, and what ships, against each baseline)."""
        return self.record.verdicts()

    @property
    def comparison(self) -> "pd.DataFrame":
        """One row per model row on the test split (TF-IDF, NBSVM, pre-adaptation, fine-tuned,
        ensemble): accuracy, macro F1 and ROC-AUC with their 95 % interval bounds (`*_low`,
        `*_high`), ECE, the number of test rows, and which row ships. task: multi_label / regression:
        the task's interval metrics (micro / macro / samples F1, subset accuracy, Hamming loss; MAE,
        RMSE, R², Spearman) with their bounds, and no ECE."""
        import pandas as pd

        record = self.record
        shipped = record.shipped_kind
        classification = record.task == "classification"
        rows = []
        for key, name, row in record.rows():
            cells: dict[str, Any] = {"row": name, "key": key, "n": row.get("n")}
            metrics = INTERVAL_METRICS if classification else TASK_INTERVAL_METRICS[record.task]
            cells.update(_with_intervals(row, metrics))
            if classification:
                cells["ece"] = row.get("ece")
            cells["shipped"] = key == shipped
            rows.append(cells)
        return pd.DataFrame(rows).set_index("row")

    def predictor(self, **options: Any) -> "Predictor":
        """The run's Predictor (what ships, calibrated), loaded on first use and kept; `options` go to
        Predictor.from_run (base_model, batch_size, precision, trust_remote_code) and reload it."""
        from textlora.predict import Predictor

        if self._predictor is None or options:
            self._predictor = Predictor.from_run(self.path, **options)
        return self._predictor

    def predict(self, texts: str | Sequence[str], progress: bool = False) -> list["Prediction"]:
        """Label, confidence and every class probability for each text (a single string is one text);
        task: multi_label: a LabelSetPrediction (labels, probabilities, thresholds); regression: a
        ValuePrediction (value, bin)."""
        if isinstance(texts, str):
            texts = [texts]
        return self.predictor().predict(list(texts), progress=progress)

    def __repr__(self) -> str:
        record = self.record
        row = record.shipped_row
        metric, words, labels = "accuracy", "accuracy", f"labels {record.label_names}"
        if record.task != "classification":  # the metric its verdicts are about: micro F1, MAE
            from textlora.tables import metric_name
            from textlora.taskstats import HEADLINE

            metric = HEADLINE[record.task]
            words, labels = metric_name(metric), f"task {record.task}, {labels}"
        interval = (row.get("intervals") or {}).get(metric)
        value = "-" if row.get(metric) is None else f"{row[metric]:.4f}"
        if interval:
            value += f" [{interval[0]:.4f}, {interval[1]:.4f}]"
        return (f"Run({str(self.path)!r}: {record.method} on {record.base_model}, {labels}; "
                f"ships {record.shipped_kind}, test {words} {value} on {row.get('n', '?')} rows)")

    def __fspath__(self) -> str:
        return str(self.path)


def _with_intervals(row: dict[str, Any], metrics: Sequence[str]) -> dict[str, Any]:
    """Each metric of a test row and its 95 % interval bounds (`*_low`, `*_high`; None where there is none)."""
    cells: dict[str, Any] = {}
    for metric in metrics:
        interval = (row.get("intervals") or {}).get(metric) or (None, None)
        cells.update({metric: row.get(metric), f"{metric}_low": interval[0], f"{metric}_high": interval[1]})
    return cells


def load_run(path: str | os.PathLike[str]) -> Run:
    """A finished run folder as a Run (TextloraError when it is not one)."""
    return Run(path)


def train(recipe_or_config: RecipeLike = None, data: Any = None, model: Any = None,
          overrides: Mapping[str, Any] | None = None, quiet: bool = False, overwrite: bool = False,
          resume: bool = False) -> Run:
    """Run one experiment (what `textlora train` does) and return its finished Run.

    recipe_or_config: a YAML path, a dict (the recipe's keys), a textlora.config.Config, or None
    (the built-in demo defaults). data / model: set data.source / model.name (a path, a hub id or
    packaged:NAME). overrides: dotted keys to values, e.g. {"lora.r": 16, "train.epochs": 1}.
    """
    from textlora.pipeline import run_experiment

    cfg = make_config(recipe_or_config, data, model, overrides)
    return Run(run_experiment(cfg, overwrite=overwrite, quiet=quiet, say=_printer(quiet), resume=resume))


# --------------------------------------------------------------------------- several runs


def _paths(runs: Iterable[Run | str | os.PathLike[str]] | Run | str | os.PathLike[str]) -> list[Path]:
    if isinstance(runs, (Run, str, os.PathLike)):
        runs = [runs]
    return [run.path if isinstance(run, Run) else Path(run) for run in runs]


def compare(runs: Iterable[Run | str | os.PathLike[str]]) -> "pd.DataFrame":
    """Finished runs side by side, one row per run (indexed by folder name, as `textlora compare`):
    method, base model, what ships, the fine-tuned model's test accuracy with its 95 % interval
    (`accuracy_low`, `accuracy_high`) and macro F1, the shipped row's accuracy, test rows,
    trainable parameters and training seconds. Runs of task: multi_label / regression add a `task`
    column and show their task's interval metrics with bounds (micro F1 ... ; MAE ...) and the shipped
    row's headline metric (`shipped_f1_micro`, `shipped_mae`) instead."""
    import pandas as pd

    from textlora.compare import load_runs

    paths = _paths(runs)
    if not paths:
        raise TextloraError("compare needs at least one run (a Run or a run folder path)")
    rows = []
    loaded = load_runs(paths)
    mixed = any(compared.record.task != "classification" for compared in loaded)
    for compared in loaded:
        record = compared.record
        final, shipped = record.final, record.shipped_row
        cells: dict[str, Any] = {"run": compared.label, "method": compared.method or record.method,
                                 "base_model": record.base_model}
        if mixed:
            cells["task"] = record.task
        cells["shipped"] = record.shipped_kind
        if record.task == "classification":
            interval = (final.get("intervals") or {}).get("accuracy") or (None, None)
            cells.update({"accuracy": final.get("accuracy"), "accuracy_low": interval[0],
                          "accuracy_high": interval[1], "f1_macro": final.get("f1_macro"),
                          "shipped_accuracy": shipped.get("accuracy")})
        else:
            from textlora.taskstats import HEADLINE

            headline = HEADLINE[record.task]
            cells.update(_with_intervals(final, TASK_INTERVAL_METRICS[record.task]))
            cells[f"shipped_{headline}"] = shipped.get(headline)
        cells.update({"n": final.get("n"), "trainable": record.params.get("trainable"),
                      "train_seconds": record.timing.get("train_seconds")})
        rows.append(cells)
    return pd.DataFrame(rows).set_index("run")


def _flatten(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A raw recipe as dotted keys (sections one level down; mappings such as label_bins stay whole)."""
    import dataclasses

    from textlora.config import Config

    sections = {f.name for f in dataclasses.fields(Config) if isinstance(f.default_factory, type)
                and dataclasses.is_dataclass(f.default_factory)}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in sections and isinstance(value, Mapping):
            out.update({f"{key}.{inner}": v for inner, v in value.items()})
        else:
            out[key] = value
    return out


def _json(value: Any) -> str:
    return json.dumps(value, default=str)  # JSON is YAML: --set and --grid read it back as the same value


def _grid_spec(key: str, values: Sequence[Any]) -> str:
    """`key=v1,v2` as `textlora sweep --grid` reads it."""
    texts = [_json(v) for v in values]
    if any("," in text and not text.startswith(("[", "{")) for text in texts):
        raise TextloraError(f"a value of grid[{key!r}] contains a comma, which a sweep cannot list; choose another value")
    return f"{key}={','.join(texts)}"


def sweep(recipe: RecipeLike, grid: Mapping[str, Sequence[Any]], overrides: Mapping[str, Any] | None = None,
          out: str | os.PathLike[str] | None = None, metric: str | None = None, overwrite: bool = False,
          quiet: bool = False) -> Path:
    """Train every combination of `grid` ({"lora.r": [4, 8, 16]}) and write the sweep summary
    (what `textlora sweep` does); returns the sweep folder. `metric`: the validation metric the
    points are sorted by (default accuracy; f1_micro for task: multi_label, mae for regression).
    Points that fail are marked in the summary and reported as a warning; re-running retries only those."""
    from textlora.sweep import failure_error, sweep as run_sweep

    if not isinstance(grid, Mapping) or not grid:
        raise TextloraError("grid must be a non-empty dict of dotted keys to lists of values, e.g. {\"lora.r\": [4, 8]}")
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise TextloraError(f"grid[{key!r}] must be a non-empty list of values, got {values!r}")
    path_recipe = str(recipe) if isinstance(recipe, (str, os.PathLike)) else None
    settings = {} if path_recipe is not None else _flatten(_raw_recipe(recipe))
    settings.update(_settings(overrides))
    specs = [_grid_spec(key, list(values)) for key, values in grid.items()]
    folder = run_sweep(path_recipe, specs, (), [f"{k}={_json(v)}" for k, v in settings.items()], out, metric,
                       overwrite=overwrite, quiet=True, say=_printer(quiet))
    failed = failure_error(folder)
    if failed is not None:
        warnings.warn(str(failed), stacklevel=2)
    return folder
