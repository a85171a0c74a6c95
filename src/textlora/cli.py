"""The `textlora` command: the parser, and one way of failing for every sub-command.

Each sub-command is registered by the module that runs it (COMMAND_MODULES below).

Errors the user can fix print one line (`error: ...`) and exit with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from textlora.errors import TextloraError

EXIT_USER_ERROR = 2


def _quiet_libraries() -> None:
    # The hub libraries print load reports and advice meant for notebooks;
    # textlora prints its own summary of what was loaded.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import warnings

    warnings.filterwarnings("ignore", message=".*TRANSFORMERS_CACHE.*")
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        import datasets

        datasets.logging.set_verbosity_error()
        datasets.disable_progress_bars()
    except ImportError:
        pass


# --------------------------------------------------------------------------- parser


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse whose bad flags and values end like every other user error: one line
    `error: ...` naming the fix, exit code 2 (plain argparse prints its usage block first).
    Sub-command parsers are of this class too: add_subparsers uses the parent's class."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"error: {message}; see `{self.prog} --help`\n")


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend and --onnx, the same for predict, serve and ui (values: textlora.predict.BACKENDS,
    spelled out here so that `--help` imports no torch)."""
    parser.add_argument("--backend", choices=("torch", "onnx"),
                        help="torch (default) runs the run's own weights; onnx runs its ONNX export with onnxruntime "
                             "(the default when --onnx is given)")
    parser.add_argument("--onnx", metavar="DIR",
                        help="the run's ONNX export: a folder written by `textlora export RUN --onnx DIR`")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="textlora",
        description="Fine-tune pretrained transformers for text classification with LoRA and relatives, "
        "measured against a TF-IDF baseline and the model before adaptation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module).register_cli(sub)
    return parser


# Every sub-command is added by the module that runs it: register_cli(subparsers) adds a
# parser and sets `func` to a function(args) -> exit code. These modules import only light
# things at the top (torch, transformers and sklearn load inside the command functions), so
# building the parser, and --help, stays fast. In the order `textlora --help` lists them.
COMMAND_MODULES: list[str] = ["textlora.pipeline", "textlora.predict", "textlora.serve", "textlora.ui",
                               "textlora.sweep", "textlora.report", "textlora.params", "textlora.compare",
                               "textlora.export", "textlora.audit"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse gives a `nargs="*"` positional only the words before the first
    # option, so `predict RUN --model M "text"` would leave "text" over;
    # texts may come on either side of the options.
    if extra and getattr(args, "command", None) == "predict" and not any(e.startswith("-") for e in extra):
        args.texts = list(args.texts) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    _quiet_libraries()
    try:
        return args.func(args)
    except TextloraError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
