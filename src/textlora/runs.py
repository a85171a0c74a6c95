"""Run folders: the only thing later stages (predict, serve, report) read.

    runs/<name>/
      run.json        marker: format, finished, method, base model, labels
      config.yaml     the resolved recipe
      metrics.json    baselines, per-epoch rows, final row, params, timings
      adapter/        peft save_pretrained (safetensors, head included)  [adapter methods]
      model/          transformers save_pretrained (safetensors)         [full, head]
      tokenizer/      the tokenizer
      labels.json     class names in label-id order
      README.md       model card with the comparison table

A run is written into a hidden folder beside its final place
(`.<name>.partial`, whose run.json says finished: false) and renamed at the
end. A run that fails is removed, unless training had saved a checkpoint:
then the partial folder stays for `--resume`, never mistaken for a finished
run because predict/serve/report only open folders whose run.json says
finished: true.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textlora.errors import TextloraError

RUN_MARKER = "run.json"
FORMAT = 1


@dataclass(frozen=True)
class RunDir:
    path: Path
    info: dict[str, Any]

    @property
    def label_names(self) -> list[str]:
        return list(self.info["label_names"])

    @property
    def artifact(self) -> Path:
        return self.path / self.info["artifact"]

    def metrics(self) -> dict[str, Any]:
        path = self.path / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def config(self) -> dict[str, Any]:
        import yaml

        return yaml.safe_load((self.path / "config.yaml").read_text())


def open_run(path: str | Path) -> RunDir:
    """A finished run folder, or a one-line error saying what is wrong with it."""
    path = Path(path)
    if not path.is_dir():
        raise TextloraError(f"run folder {str(path)!r} does not exist; give a folder written by `textlora train`")
    marker = path / RUN_MARKER
    if not marker.is_file():
        raise TextloraError(f"{str(path)!r} is not a textlora run folder (no {RUN_MARKER}); give a folder written by `textlora train`")
    try:
        info = json.loads(marker.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TextloraError(f"{marker} is corrupt; re-run training for this run") from None
    if not info.get("finished"):
        raise TextloraError(f"run {str(path)!r} did not finish; resume or re-run its training first")
    if info.get("format") != FORMAT:
        raise TextloraError(f"run {str(path)!r} has format {info.get('format')!r}, this textlora reads {FORMAT}; re-train it")
    for needed in (info.get("artifact", "adapter"), "tokenizer", "labels.json"):
        if not (path / needed).exists():
            raise TextloraError(f"run {str(path)!r} is missing {needed}; the folder is incomplete, re-train it")
    return RunDir(path=path, info=info)


def is_run(path: str | Path) -> bool:
    try:
        open_run(path)
        return True
    except TextloraError:
        return False


def partial_dir(final: Path) -> Path:
    """Where an unfinished run lives: hidden, beside its final place, the same for every rank."""
    return final.parent / f".{final.name}.partial"


def start_run(output_dir: str | Path, name: str, overwrite: bool, resume: bool = False,
              create: bool = True) -> tuple[Path, Path, bool]:
    """Check the final place is free (or may be overwritten) and prepare the work folder.

    Returns (final folder, work folder, resuming). An unfinished run found
    in the work folder is continued with `resume`, replaced with `overwrite`,
    and otherwise left alone with an error saying so. `create=False` (ranks
    other than 0 in multi-process training) only computes the paths.
    """
    final = Path(output_dir) / name
    work = partial_dir(final)
    if not create:  # another process (rank 0) checks and prepares the folder
        return final, work, resume and work.exists()
    if final.exists() and not overwrite:
        raise TextloraError(
            f"run folder {str(final)!r} already exists; pass --overwrite, or choose another name with --set name=..."
        )
    resuming = False
    if work.exists():
        if resume:
            resuming = True
        elif overwrite:
            shutil.rmtree(work)
        else:
            raise TextloraError(
                f"an unfinished run of {name!r} is at {str(work)!r}; pass --resume to continue it or --overwrite to start over"
            )
    work.mkdir(parents=True, exist_ok=True)
    return final, work, resuming


def finish_run(temporary: Path, final: Path) -> None:
    """Move a complete run into place; an overwritten run is removed only after."""
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        final.rename(old)
    temporary.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def abandon_run(temporary: Path) -> None:
    shutil.rmtree(temporary, ignore_errors=True)


def folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
