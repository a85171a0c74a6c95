"""The sweep mini-language: `--grid key=v1,v2` (or LOW..HIGH[:log] for Optuna), `--trial "k=v k=v"`,
`--repeats N`; the points they make and the folder name of each point."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

import yaml

from textlora.config import split_key_value
from textlora.errors import TextloraError

RESERVED = ("name", "output_dir")
"""Keys a sweep sets itself (each run's name and place)."""


@dataclass(frozen=True)
class Range:
    """`low..high[:log]`: a continuous (or integer) range, for --search optuna only."""

    low: float
    high: float
    log: bool = False

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


def _value(text: str) -> Any:
    """One value as YAML reads it; YAML 1.1 leaves 1e-4 a string, Python reads it as a number."""
    text = text.strip()
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets, so `[query,value],[query,key,value]` is two values."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _key_of(text: str, flag: str) -> tuple[str, str]:
    key, values = split_key_value(text, flag, "key=value,value,..., e.g. lora.r=4,8,16")
    if key in RESERVED:
        raise TextloraError(f"{flag} cannot sweep {key!r}: the sweep names each run and places it under --out")
    return key, values


def parse_grid(specs: Iterable[str]) -> dict[str, list[Any] | Range]:
    """`--grid lora.r=4,8,16` -> {"lora.r": [4, 8, 16]}; `key=1e-5..1e-3:log` -> a Range."""
    space: dict[str, list[Any] | Range] = {}
    for spec in specs:
        key, text = _key_of(spec, "--grid")
        if key in space:
            raise TextloraError(f"--grid {key} is given twice; list all its values in one --grid")
        match = re.fullmatch(r"\s*([-+0-9.eE]+?)\.\.([-+0-9.eE]+)(:log)?\s*", text)
        if match:
            low, high = _value(match.group(1)), _value(match.group(2))
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low >= high:
                raise TextloraError(f"--grid {spec!r}: a range must be LOW..HIGH with numbers LOW < HIGH")
            if match.group(3) and low <= 0:
                raise TextloraError(f"--grid {spec!r}: a :log range needs LOW > 0")
            space[key] = Range(low, high, bool(match.group(3)))
            continue
        values = [_value(v) for v in _split_top_level(text)]
        if any(v == "" for v in values):
            raise TextloraError(f"--grid {spec!r} has an empty value; separate values with single commas")
        if len(values) != len({json.dumps(v, sort_keys=True) for v in values}):
            raise TextloraError(f"--grid {spec!r} lists a value twice")
        space[key] = values
    return space


def parse_trials(specs: Iterable[str]) -> list[dict[str, Any]]:
    """`--trial "train.learning_rate=3e-4 train.batch_size=8"` -> one explicit point (seed 004's trials)."""
    points = []
    for spec in specs:
        point = {}
        for item in spec.split():
            key, text = _key_of(item, "--trial")
            point[key] = _value(text)
        if not point:
            raise TextloraError("--trial is empty; give key=value pairs separated by spaces")
        points.append(point)
    return points


def grid_points(space: dict[str, list[Any] | Range], trials: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Every combination of the grid values, times every explicit trial."""
    ranges = [k for k, v in space.items() if isinstance(v, Range)]
    if ranges:
        raise TextloraError(f"--grid {ranges[0]} is a range; ranges need --search optuna (a grid needs listed values)")
    keys = list(space)
    combos = [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]
    trials = list(trials) or [{}]
    overlap = set(keys) & {k for t in trials for k in t}
    if overlap:
        raise TextloraError(f"{sorted(overlap)[0]!r} is both in --grid and in --trial; give it in one of them")
    return [{**trial, **combo} for trial in trials for combo in combos]


# --------------------------------------------------------------------------- points -> configs


def short_keys(keys: Iterable[str]) -> dict[str, str]:
    """lora.r -> r, train.learning_rate -> learning_rate; the full key where two would clash."""
    keys = list(keys)
    leaves = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (leaf if leaves.count(leaf) == 1 else k) for k, leaf in zip(keys, leaves)}


def format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "+".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return "+".join(f"{k}-{format_value(v)}" for k, v in value.items())
    return str(value)


def point_name(point: dict[str, Any], keys: dict[str, str] | None = None) -> str:
    """`{"lora.r": 8, "train.learning_rate": 5e-4}` -> `r=8,learning_rate=0.0005`, safe as a folder name."""
    keys = keys or short_keys(point)
    name = ",".join(f"{keys[k]}={format_value(v)}" for k, v in point.items())
    name = re.sub(r"[^A-Za-z0-9._=,+-]", "-", name).lstrip(".") or "base"
    if len(name) > 120:  # file systems stop at 255 bytes; keep names readable and unique
        name = name[:110] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


def with_repeats(space: dict[str, list[Any] | Range], repeats: int, base_seed: int) -> dict[str, list[Any] | Range]:
    """--repeats N: every point trained with seeds base_seed, base_seed + 1, ... (a `seed` grid key)."""
    if repeats < 1:
        raise TextloraError(f"--repeats must be >= 1 (seeds per point), got {repeats}")
    if repeats == 1:
        return space
    if "seed" in space:
        raise TextloraError("--repeats trains every point with several seeds; give either --repeats or --grid seed=...")
    return {**space, "seed": [base_seed + i for i in range(repeats)]}
