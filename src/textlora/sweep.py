"""Sweeps: one recipe, many points, each an ordinary run folder.

    sweeps/<name>/
      sweep.json        recipe, overrides, swept keys, metric, every point so far
      runs/<point>/     one run folder per point (named from its values: r=8,learning_rate=0.0005)
      summary.csv       one row per finished run, sorted by the validation metric
      summary.md        the same table, plus the plots below
      plots/*.png       metric and wall time vs each swept key, parameters vs r,
                        time vs metric, the loss curves of every run on one axis

A point whose run folder is already a finished run is skipped, so re-running
the same command continues where it stopped. Points run one after the other
(`backend: local`) or as Ray Tune trials (`--backend ray`); `--search optuna`
lets Optuna choose the points instead of the full grid. Runs are compared on
their *validation* rows: the test rows are reported, never used to choose.
--metric is one of the recipe's task's metrics (tables.task_metrics; default
accuracy, micro F1 for task: multi_label, MAE for regression); the best is the
lowest for loss, MAE, RMSE and Hamming loss (config.LOWER_IS_BETTER).
The grid mini-language (--grid, --trial, --repeats) and point names are in grid.py.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from textlora.config import (HEADLINE_METRICS, LOWER_IS_BETTER, TASKS, Config, apply_overrides, config_from_dict,
                             read_recipe, set_dotted_key)
from textlora.errors import TextloraError
from textlora.grid import (Range, format_value, grid_points, parse_grid, parse_trials, point_name,  # noqa: F401
                           short_keys, with_repeats)
from textlora.runs import is_run, write_json

SWEEP_FILE = "sweep.json"
RUNS = "runs"
ERRORS = "errors"  # the traceback of each point that failed with an internal error (a bug, not bad input)
BACKENDS = ("local", "ray")
SEARCHES = ("grid", "optuna")
METRICS = HEADLINE_METRICS
"""The metrics of a classification sweep (every task's: tables.task_metrics)."""

Printer = Callable[[str], None]


def _set_key(raw: dict[str, Any], key: str, value: Any) -> None:
    set_dotted_key(raw, key.split("."), copy.deepcopy(value), f"--grid {key}")


@dataclass
class Sweep:
    """A recipe with its overrides, and where its runs go."""

    recipe: str | None
    base: dict[str, Any]
    """The raw recipe after --set/--model/--data/--quick, before any point's values."""
    out: Path
    metric: str = "accuracy"
    keys: list[str] = field(default_factory=list)
    """The swept keys, in --grid order."""

    @property
    def runs_dir(self) -> Path:
        return self.out / RUNS

    def config(self, point: dict[str, Any]) -> Config:
        raw = copy.deepcopy(self.base)
        for key, value in point.items():
            _set_key(raw, key, value)
        raw["name"] = point_name(point, short_keys(self.keys or list(point)))
        raw["output_dir"] = str(self.runs_dir)
        return config_from_dict(raw)


def check_metric(metric: str | None, task: str) -> str:
    """--metric for a recipe of `task`: the task's default when None, else one of the task's metrics
    (tables.task_metrics), or one line naming the ones it has."""
    from textlora.tables import default_metric, task_metrics

    if metric is None:
        return default_metric(task)
    allowed = task_metrics(task)
    if metric in allowed:
        return metric
    owners = [other for other in TASKS if metric in task_metrics(other)]
    if owners:
        raise TextloraError(f"--metric {metric!r} is a metric of task: {' / '.join(owners)}, and this recipe is "
                            f"task: {task}; choose one of: {', '.join(allowed)}")
    close = difflib.get_close_matches(metric, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise TextloraError(f"unknown --metric {metric!r}{hint}; choose one of: {', '.join(allowed)}")


def open_sweep(recipe: str | None, overrides: Iterable[str], out: str | Path | None, metric: str | None,
               keys: Iterable[str]) -> Sweep:
    """The sweep of a recipe; `metric` None: its task's default (check_metric)."""
    raw = read_recipe(recipe) if recipe is not None else {"name": "sweep"}
    base = apply_overrides(raw, overrides)
    checked = config_from_dict({**base, "name": "check"})  # the recipe itself is valid before any point runs
    metric = check_metric(metric, checked.task)
    out_dir = Path(out) if out else Path("sweeps") / str(base.get("name", "sweep"))
    return Sweep(recipe=recipe, base=base, out=out_dir, metric=metric, keys=list(keys))


def _comparable(cfg: Config) -> dict[str, Any]:
    return yaml.safe_load(cfg.to_yaml())


def _absolute_paths(config: dict[str, Any]) -> dict[str, Any]:
    """Local model and data paths made absolute: what a Ray trial in another process needs, and
    what makes `../data` and `/home/me/data` compare equal."""
    config = copy.deepcopy(config)
    for section, key in (("model", "name"), ("data", "source")):
        value = config.get(section, {}).get(key)
        if isinstance(value, str) and not value.startswith("packaged:") and Path(value).expanduser().exists():
            config[section][key] = str(Path(value).expanduser().resolve())
    return config


def _same_run(stored: dict[str, Any], cfg: Config) -> list[str]:
    """Keys whose values differ (the folder's place, output_dir, is where it was found)."""
    a, b = _absolute_paths(stored), _absolute_paths(_comparable(cfg))
    a.pop("output_dir", None)
    b.pop("output_dir", None)
    return _differences(a, b)


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b), key=str):
        path = f"{prefix}{key}"
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out += _differences(a[key], b[key], path + ".")
        elif a.get(key) != b.get(key):
            out.append(path)
    return out


def finished_run(cfg: Config) -> bool:
    """True if this point's run folder is a finished run of exactly this config.

    A finished run of another config is an error rather than a silent reuse:
    its numbers would be reported under values it was not trained with.
    """
    folder = Path(cfg.output_dir) / cfg.name
    if not is_run(folder):
        return False
    differ = _same_run(yaml.safe_load((folder / "config.yaml").read_text()), cfg)
    if differ:
        raise TextloraError(
            f"{folder} was trained with a different config ({', '.join(differ[:3])} differ); "
            "pass --overwrite to retrain it, or give another --out"
        )
    return True


# --------------------------------------------------------------------------- running


def _record(sweep: Sweep, points: list[dict[str, Any]], search: str, backend: str) -> None:
    """sweep.json: what was swept, every point so far (a re-run with more values adds to it)."""
    path = sweep.out / SWEEP_FILE
    old = json.loads(path.read_text()) if path.is_file() else {}
    keys = list(dict.fromkeys([*old.get("keys", []), *sweep.keys]))
    named = {p["name"]: p for p in old.get("points", [])}
    for point in points:
        name = point_name(point, short_keys(sweep.keys or list(point)))
        named[name] = {**named.get(name, {}), "name": name, "values": point}  # a failed point keeps its error
    sweep.out.mkdir(parents=True, exist_ok=True)
    write_json(path, {
        "recipe": sweep.recipe,
        "base": sweep.base,
        "keys": keys,
        "metric": sweep.metric,
        "search": search,
        "backend": backend,
        "points": list(named.values()),
    })


def one_line(err: BaseException) -> str:
    """An exception as one line: a TextloraError's own message; for anything else its type and
    the last line of its message (where Python puts the point)."""
    cause = getattr(err, "cause", None)  # Ray wraps a trial's exception (RayTaskError): say the original
    if isinstance(cause, BaseException) and cause is not err:
        return one_line(cause)
    if isinstance(err, TextloraError):
        return str(err)
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[-1][:300]}" if lines else type(err).__name__


def _mark(sweep: Sweep, name: str, error: str | None) -> None:
    """Record a point's outcome in sweep.json: its one-line error, or none once it finished."""
    path = sweep.out / SWEEP_FILE
    spec = json.loads(path.read_text()) if path.is_file() else {"points": []}
    for point in spec.get("points", []):
        if point["name"] == name:
            point.pop("error", None)
            if error is not None:
                point["error"] = error
    write_json(path, spec)


def failed_points(sweep_dir: str | Path) -> dict[str, str]:
    """Point name -> its one-line error, for every point of the sweep whose last attempt failed."""
    path = Path(sweep_dir) / SWEEP_FILE
    spec = json.loads(path.read_text()) if path.is_file() else {}
    return {p["name"]: p["error"] for p in spec.get("points", []) if p.get("error")}


def _attempt(sweep: Sweep, cfg: Config, overwrite: bool, say: Printer) -> bool:
    """Run one point; a failure is said, recorded in sweep.json, and does not stop the sweep."""
    try:
        run_one(cfg, overwrite, sweep.metric, say)
    except Exception as err:  # one bad point must not cost the others; Ctrl-C (not an Exception) still stops
        line = one_line(err)
        if not isinstance(err, TextloraError):  # a bug: keep its traceback beside the sweep
            import traceback

            log = sweep.out / ERRORS / f"{cfg.name}.txt"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("".join(traceback.format_exception(err)))
            line += f" (traceback: {log})"
        say(f"    failed: {line}")
        _mark(sweep, cfg.name, line)
        return False
    _mark(sweep, cfg.name, None)
    return True


def run_points(sweep: Sweep, points: list[dict[str, Any]], backend: str = "local", overwrite: bool = False,
               quiet: bool = True, say: Printer = print, ray_options: dict[str, Any] | None = None) -> list[Path]:
    """Run every point not already finished; returns the run folders of all points."""
    if backend not in BACKENDS:
        raise TextloraError(f"unknown --backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    configs = [sweep.config(point) for point in points]  # every point validates before any runs
    names = [cfg.name for cfg in configs]
    if len(set(names)) != len(names):
        raise TextloraError("two points get the same run name; make the --grid values distinct")
    todo = [cfg for cfg in configs if overwrite or not finished_run(cfg)]
    say(f"sweep {sweep.out}: {len(configs)} point(s), {len(configs) - len(todo)} already finished, {len(todo)} to run")
    if backend == "ray":
        run_on_ray(sweep, todo, overwrite, quiet, say, **(ray_options or {}))
    else:
        for i, cfg in enumerate(todo, 1):
            say(f"[{i}/{len(todo)}] {cfg.name} ...")
            _attempt(sweep, cfg, overwrite, say)
    return [Path(cfg.output_dir) / cfg.name for cfg in configs]


def run_one(cfg: Config, overwrite: bool, metric: str, say: Printer) -> Path:
    """Train one point quietly and say its headline numbers in one line."""
    from textlora.pipeline import run_experiment
    from textlora.runs import open_run

    folder = Path(cfg.output_dir) / cfg.name
    # An interrupted point resumes from its last checkpoint; a folder that is
    # there but no finished run (e.g. a crash mid-rename) is replaced.
    run_dir = run_experiment(cfg, overwrite=overwrite or folder.exists(), quiet=True, say=lambda *_: None,
                             resume=not overwrite)
    record = open_run(run_dir).record()
    say(f"    {metric}: validation {_num(record.validation_score(metric))}, test {_num(record.final.get(metric))}; "
        f"trained in {record.timing['train_seconds']:.1f} s")
    return run_dir


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def validation_score(run_dir: Path, metric: str) -> float | None:
    """The metric on the validation rows at the run's selected checkpoint (what a sweep chooses by)."""
    from textlora.runs import open_run

    return open_run(run_dir).record().validation_score(metric)


def over_seeds(rows: list[dict[str, Any]], keys: list[str], metric: str,
               confidence: float = 0.95) -> tuple[list[str], list[list[Any]]]:
    """One row per point of a repeated sweep: its seeds' validation and test metric as mean ± sd, and
    the 95 % t-interval of the mean test metric (the spread a single seed's number hides)."""
    import numpy as np
    from scipy import stats

    others = [k for k in keys if k != "seed"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(json.dumps([row["values"].get(k) for k in others], default=str), []).append(row)

    def spread(values: list[float]) -> str | None:
        values = [v for v in values if v is not None]
        if not values:
            return None
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        return f"{np.mean(values):.4f} ± {sd:.4f}"

    body = []
    for members in groups.values():
        tests = [m["test"] for m in members if m.get("test") is not None]
        interval = None
        if len(tests) > 1:
            half = stats.t.ppf(0.5 + confidence / 2, len(tests) - 1) * np.std(tests, ddof=1) / np.sqrt(len(tests))
            interval = f"[{np.mean(tests) - half:.4f}, {np.mean(tests) + half:.4f}]"
        first = members[0]["values"]
        body.append([*(format_value(first.get(k)) for k in others), len(members),
                     spread([m.get("score") for m in members]), spread(tests), interval])
    headers = [*(k.rsplit(".", 1)[-1] for k in others), "seeds", f"validation {metric} (mean ± sd)",
               f"test {metric} (mean ± sd)", "test 95 % CI of the mean"]
    return headers, body


def _ray_trial(config: dict[str, Any]) -> None:
    """One Ray Tune trial: train one point, report its validation and test metrics."""
    from ray import tune

    from textlora.pipeline import run_experiment

    cfg = config_from_dict(config["point"]["config"])
    folder = Path(cfg.output_dir) / cfg.name
    overwrite = config["point"]["overwrite"]
    run_dir = run_experiment(cfg, overwrite=overwrite or folder.exists(), quiet=True, say=lambda *_: None,
                             resume=not overwrite)
    from textlora.runs import open_run
    from textlora.tables import task_metrics

    record = open_run(run_dir).record()
    metrics = task_metrics(record.task)
    report = {f"val_{k}": record.validation_score(k) for k in metrics
              if isinstance(record.validation_score(k), (int, float))}
    report.update({f"test_{k}": v for k, v in record.final.items() if k in metrics and isinstance(v, (int, float))})
    report["train_seconds"] = record.timing["train_seconds"]
    report["run_dir"] = str(run_dir)
    tune.report(report)


def run_on_ray(sweep: Sweep, todo: list[Config], overwrite: bool, quiet: bool, say: Printer,
               address: str | None = None, cpus_per_trial: float = 1, gpus_per_trial: float = 0) -> None:
    """The points as Ray Tune trials (Ray schedules them: locally, or on the cluster at `address`/RAY_ADDRESS).

    Every trial writes its run folder under the sweep's --out, so on a cluster
    that folder must be on storage every node sees (NFS, a mounted bucket).
    """
    if not todo:
        return
    try:
        import ray
        from ray import tune
    except ImportError:
        raise TextloraError("--backend ray needs Ray Tune: pip install 'textlora[ray]'") from None
    # Trials run in other processes (other machines on a cluster): hand them
    # the full config with absolute paths, and keep their working directory.
    runs_dir = str(sweep.runs_dir.resolve())
    configs = [{**_absolute_paths(_comparable(cfg)), "output_dir": runs_dir} for cfg in todo]
    env = {k: v for k, v in os.environ.items() if k.startswith(("HF_", "TRANSFORMERS_", "TOKENIZERS_"))}
    env["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=not quiet,
                 runtime_env={"env_vars": env}, logging_level="ERROR" if quiet else "INFO")
    try:
        mode = "min" if sweep.metric in LOWER_IS_BETTER else "max"
        tuner = tune.Tuner(
            tune.with_resources(_ray_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial}),
            param_space={"point": tune.grid_search([{"config": c, "overwrite": overwrite} for c in configs])},
            tune_config=tune.TuneConfig(metric=f"val_{sweep.metric}", mode=mode),
            run_config=tune.RunConfig(name="tune", storage_path=str((sweep.out / "ray").resolve()),
                                      verbose=0 if quiet else 1),
        )
        say(f"ray: {len(configs)} trial(s), {cpus_per_trial:g} CPU / {gpus_per_trial:g} GPU each")
        results = tuner.fit()
        for result in results:  # a failed trial is recorded like a failed local point; its log stays under ray/
            name = ((result.config or {}).get("point") or {}).get("config", {}).get("name")
            if name is not None:
                _mark(sweep, name, None if result.error is None else
                      f"{one_line(result.error)} (Ray trial log under {sweep.out / 'ray'})")
    finally:
        if started_here:
            ray.shutdown()


def run_optuna(sweep: Sweep, space: dict[str, list[Any] | Range], trials: int, overwrite: bool = False,
               quiet: bool = True, say: Printer = print) -> list[Path]:
    """Optuna chooses `trials` points from the space (listed values: categorical; ranges: float/int).

    The study lives in the sweep folder (optuna.db), so a re-run continues it
    up to `trials` finished trials in all.
    """
    try:
        import optuna
    except ImportError:
        raise TextloraError("--search optuna needs Optuna: pip install 'textlora[sweep]'") from None
    if trials < 1:
        raise TextloraError("--trials must be >= 1")
    if quiet:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep.out.mkdir(parents=True, exist_ok=True)
    seed = int(sweep.base.get("seed", 42))
    study = optuna.create_study(
        study_name="textlora", storage=f"sqlite:///{(sweep.out / 'optuna.db').resolve()}", load_if_exists=True,
        direction="minimize" if sweep.metric in LOWER_IS_BETTER else "maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    folders: list[Path] = []

    def suggest(trial, key: str, domain: list[Any] | Range) -> Any:
        if isinstance(domain, Range):
            if domain.integer:
                return trial.suggest_int(key, domain.low, domain.high, log=domain.log)
            value = trial.suggest_float(key, domain.low, domain.high, log=domain.log)
            return float(f"{value:.3g}")  # 3 significant digits: readable run names, nothing lost in practice
        # Optuna's categorical choices must be plain scalars; lists travel as JSON text.
        choices = [json.dumps(v) if isinstance(v, (list, dict)) else v for v in domain]
        chosen = trial.suggest_categorical(key, choices)
        return domain[choices.index(chosen)]

    def objective(trial) -> float:
        point = {key: suggest(trial, key, domain) for key, domain in space.items()}
        _record(sweep, [point], "optuna", "local")
        cfg = sweep.config(point)
        folder = Path(cfg.output_dir) / cfg.name
        if overwrite or not finished_run(cfg):
            say(f"[trial {trial.number}] {cfg.name} ...")
            if not _attempt(sweep, cfg, overwrite, say):
                return float("nan")  # Optuna records the trial as failed and goes on
        else:
            say(f"[trial {trial.number}] {cfg.name} (already finished)")
        folders.append(folder)
        score = validation_score(folder, sweep.metric)
        return float("nan") if score is None else score

    say(f"optuna: {done} trial(s) finished before, {max(0, trials - done)} to run")
    study.optimize(objective, n_trials=max(0, trials - done))
    return folders


def sweep(recipe: str | None, grid: Iterable[str] = (), trials_spec: Iterable[str] = (),
          overrides: Iterable[str] = (), out: str | Path | None = None, metric: str | None = None,
          search: str = "grid", trials: int | None = None, backend: str = "local", overwrite: bool = False,
          quiet: bool = True, say: Printer = print, ray_options: dict[str, Any] | None = None,
          repeats: int = 1) -> Path:
    """Run a sweep and write its summary; returns the sweep folder. What `textlora sweep` calls.
    `metric`: what points are sorted and chosen by on their validation rows (default: the recipe's task's,
    check_metric). `repeats`: seeds per point (the summary then shows mean ± sd and an interval over seeds)."""
    from textlora.sweep_summary import write_sweep_summary

    space = parse_grid(grid)
    if repeats != 1:
        if search != "grid":
            raise TextloraError("--repeats runs every grid point with several seeds; use it with --search grid")
        base = apply_overrides(read_recipe(recipe) if recipe is not None else {}, overrides)
        space = with_repeats(space, repeats, int(config_from_dict({**base, "name": "check"}).seed))
    explicit = parse_trials(trials_spec)
    if search not in SEARCHES:
        raise TextloraError(f"unknown --search {search!r}; choose one of: {', '.join(SEARCHES)}")
    if not space and not explicit:
        raise TextloraError("nothing to sweep: give at least one --grid KEY=V1,V2 (or --trial)")
    keys = list(dict.fromkeys([*(k for t in explicit for k in t), *space]))
    state = open_sweep(recipe, overrides, out, metric, keys)
    if search == "optuna":
        if explicit:
            raise TextloraError("--trial lists fixed points; with --search optuna give the space with --grid only")
        if backend != "local":
            raise TextloraError("--search optuna runs with --backend local; Ray runs grid sweeps")
        if not trials:
            raise TextloraError("--search optuna needs --trials N (how many points Optuna tries)")
        _record(state, [], search, backend)
        run_optuna(state, space, trials, overwrite, quiet, say)
    else:
        if trials:
            raise TextloraError("--trials is for --search optuna; a grid runs every combination")
        points = grid_points(space, explicit)
        for point in points:  # every point validates before anything is written or run
            state.config(point)
        _record(state, points, search, backend)
        run_points(state, points, backend, overwrite, quiet, say, ray_options)
    summary = write_sweep_summary(state.out)
    say("")
    say(summary.text)
    say(f"\nsweep saved to {state.out} (summary.md, summary.csv, plots/)")
    return state.out


def failure_error(sweep_dir: Path) -> TextloraError | None:
    """The one-line error `textlora sweep` ends with when points failed (None: every point finished)."""
    failed = failed_points(sweep_dir)
    if not failed:
        return None
    name, error = next(iter(failed.items()))
    more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
    return TextloraError(f"{len(failed)} point(s) failed, the summary marks them ({name}: {error}{more}); "
                         "fix the cause and re-run the same command to retry only those")


# --------------------------------------------------------------------------- CLI


def cmd_sweep(args) -> int:
    from textlora.config import command_overrides

    overrides = command_overrides(args.recipe, args.set, quick=args.quick, model=args.model, data=args.data)
    ray_options = {"address": args.ray_address, "cpus_per_trial": args.cpus_per_trial,
                   "gpus_per_trial": args.gpus_per_trial}
    out = args.out
    if args.quick and not out:  # quick runs never share a folder with the real ones
        name = read_recipe(args.recipe).get("name") if args.recipe else "sweep"
        out = Path("sweeps") / f"{name}-quick"
    folder = sweep(args.recipe, args.grid or [], args.trial or [], overrides, out, args.metric, args.search,
                   args.trials, args.backend, args.overwrite, args.quiet, print, ray_options, args.repeats)
    failed = failure_error(folder)
    if failed is not None:
        raise failed  # after the summary: printed as the last line, exit code 2
    return 0


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="run a recipe over a grid of values (or an Optuna search), then tabulate and plot",
        description="Run every grid point as a run folder under one sweep folder (re-running continues where it "
        "stopped), then write summary.csv, summary.md and plots/ sorted by the validation metric.",
        epilog="example: textlora sweep recipes/imdb-minilm.yaml --data ../shared/data/imdb "
        "--grid lora.r=4,8,16,32 --grid train.learning_rate=1e-4,5e-4",
    )
    parser.add_argument("recipe", nargs="?", help="YAML recipe (see recipes/)")
    parser.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                        help="values of one key (repeatable; every combination runs). Lists: [a,b],[a,b,c]. "
                        "With --search optuna also LOW..HIGH or LOW..HIGH:log")
    parser.add_argument("--trial", action="append", metavar="'K=V K=V'",
                        help="one explicit point of several keys, e.g. 'train.learning_rate=3e-4 train.epochs=4' "
                        "(repeatable; combined with every --grid combination)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe key for every point")
    parser.add_argument("--model", help="model for every point (sets model.name)")
    parser.add_argument("--data", help="data for every point (sets data.source)")
    parser.add_argument("--quick", action="store_true", help="tiny runs (64 train rows, 1 epoch) to check the sweep")
    from textlora.tables import default_metric, task_metrics

    parser.add_argument("--metric", help="validation metric to sort and choose by, one of the recipe's task's: "
                        + "; ".join(f"{task}: {', '.join(task_metrics(task))} (default {default_metric(task)})"
                                    for task in TASKS))
    parser.add_argument("--search", default="grid", choices=SEARCHES, help="grid (every combination) or optuna")
    parser.add_argument("--trials", type=int, help="with --search optuna: how many points to try in all")
    parser.add_argument("--repeats", type=int, default=1,
                        help="train every grid point with N seeds (seed, seed+1, ...); the summary adds mean ± sd "
                        "and the 95 %% interval of the mean over seeds (default 1)")
    parser.add_argument("--backend", default="local", choices=BACKENDS,
                        help="local: one run after another; ray: Ray Tune trials (pip install 'textlora[ray]')")
    parser.add_argument("--ray-address", help="Ray cluster to run on (default: RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--cpus-per-trial", type=float, default=1, help="Ray resources per trial (default 1)")
    parser.add_argument("--gpus-per-trial", type=float, default=0, help="Ray GPUs per trial (default 0)")
    parser.add_argument("--out", help="sweep folder (default: sweeps/<recipe name>, with --quick sweeps/<name>-quick)")
    parser.add_argument("--overwrite", action="store_true", help="retrain points that already finished")
    parser.add_argument("--quiet", action="store_true", help="only the sweep's own lines")
    parser.set_defaults(func=cmd_sweep)
