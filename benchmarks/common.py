"""What every benchmark result records: the machine, the date, versions, the exact command."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


SPEED_FLAGS = {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"}


def machine_info() -> dict[str, Any]:
    import importlib.metadata as md

    cpu, family, model, flags = platform.processor(), None, None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name":
                cpu = value
            elif key == "cpu family":
                family = value
            elif key == "model":
                model = value
            elif key == "flags":
                flags = set(value.split())
                break  # the first core's lines are enough
    except OSError:
        pass
    versions = {}
    for name in ("torch", "transformers", "peft", "datasets", "scikit-learn", "textlora", "fastapi", "uvicorn",
                 "onnxruntime"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    info = {"cpu": cpu, "cpu_family_model": [family, model],
            # What decides the speed of each precision: bf16 matmuls are native with avx512_bf16 or
            # amx_bf16; int8 products accumulate in int32 directly with a VNNI flag, in saturating int16
            # pairs without one (onnxruntime's dynamic int8 on AVX2-only CPUs).
            "cpu_flags": sorted(flags & SPEED_FLAGS),
            "cores": os.cpu_count(), "python": platform.python_version(), "versions": versions,
            # Other work on the machine slows one side of a comparison; this says how busy it was.
            "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()]}
    try:
        import torch

        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def matmul_peak_gflops(dtype, size: int = 2048, repeats: int = 5) -> float:
    """Best-of-N square matmul rate in GFLOP/s: the ceiling a training step can approach."""
    import torch

    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def paired_seed_differences(differences: dict[int, float]) -> dict[str, Any] | None:
    """Differences between two variants run on the same seeds ({seed: points}): mean, sd, range, how
    many seeds went each way, and two tests of a zero mean difference: the paired t-test and
    Wilcoxon's signed-rank test (which does not assume normal differences). None below 2 seeds."""
    from scipy import stats

    values = list(differences.values())
    if len(values) < 2:
        return None
    out = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)), "n": len(values),
           "min": float(min(values)), "max": float(max(values)),
           "by_seed": {seed: round(value, 2) for seed, value in differences.items()},
           "higher_on_seeds": sum(v > 0 for v in values), "lower_on_seeds": sum(v < 0 for v in values)}
    if any(v != 0 for v in values):
        out["paired_t_p"] = float(stats.ttest_1samp(values, 0.0).pvalue)
        out["wilcoxon_p"] = float(stats.wilcoxon(values).pvalue)
    return out


def write_result(path: Path, figures: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        **figures,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")
