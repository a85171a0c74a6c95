"""textlora: LoRA fine-tuning of transformers for text classification, measured honestly.

    import textlora
    run = textlora.train("recipes/imdb-minilm.yaml", overrides={"lora.r": 16})
    run.comparison, run.verdicts, run.predict(["Great film!"])
    textlora.load_run("runs/imdb-minilm"), textlora.compare([...]), textlora.sweep(recipe, {"lora.r": [4, 8]})

The Python API lives in textlora.api and is imported on first use, so `import textlora` stays light.
"""

import sys
import types

from textlora.errors import TextloraError

__version__ = "0.1.0"

__all__ = ["Run", "TextloraError", "__version__", "compare", "load_run", "sweep", "train"]

_API = ("Run", "load_run")
_CALLABLE_MODULES = ("train", "compare", "sweep")
"""API functions whose names are also submodules (train.py, compare.py, sweep.py): importing a
submodule sets the package attribute to it, so each of these attributes is the module, made
callable: `textlora.sweep(...)` calls textlora.api.sweep, `textlora.sweep.parse_grid` is the module's."""


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from textlora import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        # The import system sets textlora.<name> = <submodule> here when it first imports one.
        if name in _CALLABLE_MODULES and type(value) is types.ModuleType:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


def __getattr__(name):
    if name in _API:
        from textlora import api

        return getattr(api, name)
    if name in _CALLABLE_MODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")  # set (made callable) by the import
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


sys.modules[__name__].__class__ = _Package
