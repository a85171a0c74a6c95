"""The `textlora` command: a thin shell over the library.

Errors the user can fix print one line (`error: ...`) and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from textlora.config import PRECISIONS
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


# --------------------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> int:
    from textlora.config import command_overrides, load_config
    from textlora.pipeline import run_experiment

    overrides = command_overrides(args.recipe, args.set, quick=args.quick, model=args.model, data=args.data,
                                  name=args.name, output_dir=args.output_dir, trust_remote_code=args.trust_remote_code)
    cfg = load_config(args.recipe, overrides)
    run_experiment(cfg, overwrite=args.overwrite, quiet=args.quiet, resume=args.resume)
    return 0


# --------------------------------------------------------------------------- predict


def _read_input_texts(path: str, column: str) -> list[str]:
    from textlora.data import read_table

    file = Path(path)
    if not file.is_file():
        raise TextloraError(f"input file {path!r} does not exist; check the path")
    if file.suffix.lower() == ".txt":
        return [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    frame = read_table(file)
    if column not in frame.columns:
        raise TextloraError(
            f"text column {column!r} not in {path}; pass --text-column, columns that exist: {', '.join(map(str, frame.columns))}"
        )
    # A missing cell (None, or NaN: pandas reads an empty CSV field as NaN) is an empty text, not "nan".
    return ["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in frame[column].tolist()]


def cmd_predict(args: argparse.Namespace) -> int:
    from textlora.predict import Predictor, check_backend, resolve_backend

    backend = resolve_backend(args.backend, args.onnx)
    check_backend(backend, args.onnx, args.precision)  # before reading any input
    texts = list(args.texts)
    where = [f"text argument {i}" for i in range(1, len(texts) + 1)]
    if args.input:
        texts += _read_input_texts(args.input, args.text_column)
        where += [f"row {i} of {args.input}" for i in range(1, len(texts) - len(where) + 1)]
    if not texts:
        raise TextloraError("no text to classify; give texts as arguments or --input FILE")
    empty = [w for w, t in zip(where, texts) if not t.strip()]
    if empty:  # the model would still answer, with a confident label for nothing
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise TextloraError(f"{empty[0]} is empty{more}; give only texts with words in them")
    if args.output and Path(args.output).exists() and not args.overwrite:
        raise TextloraError(f"output {args.output!r} already exists; pass --overwrite or choose another path")
    predictor = Predictor.from_run(args.run_dir, base_model=args.model, batch_size=args.batch_size,
                                   trust_remote_code=args.trust_remote_code, precision=args.precision,
                                   backend=backend, onnx=args.onnx)
    predictions = predictor.predict(texts, progress=len(texts) > 256 and not args.quiet)
    if args.output:
        _write_predictions(Path(args.output), texts, predictions, predictor.label_names)
        print(f"wrote {len(predictions)} predictions to {args.output}")
    elif args.json:
        print(json.dumps([{"text": t, **p.as_dict()} for t, p in zip(texts, predictions)], indent=2))
    else:
        for text, p in zip(texts, predictions):
            shown = text if len(text) <= 100 else text[:97] + "..."
            probs = " | ".join(f"{name}: {value:.4f}" for name, value in p.probabilities.items())
            print(f"Text: {shown}\nPrediction: {p.label}\nConfidence: {p.confidence:.4f}\nProbabilities - {probs}\n")
    return 0


def _write_predictions(path: Path, texts, predictions, label_names) -> None:
    import pandas as pd

    frame = pd.DataFrame({
        "text": texts,
        "label": [p.label for p in predictions],
        "confidence": [p.confidence for p in predictions],
        **{f"prob_{name}": [p.probabilities[name] for p in predictions] for name in label_names},
    })
    temporary = path.with_name(f".{path.name}.partial")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        frame.to_json(temporary, orient="records", lines=True, force_ascii=False)
    elif suffix == ".parquet":
        frame.to_parquet(temporary, index=False)
    else:
        frame.to_csv(temporary, index=False, sep="\t" if suffix == ".tsv" else ",")
    temporary.replace(path)


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

    train = sub.add_parser(
        "train",
        help="run one experiment: data -> baselines -> training -> run folder",
        description="Run one experiment end to end and write runs/<name>/ (config, metrics, adapter, model card).",
        epilog="example: textlora train recipes/imdb-minilm.yaml --data ../shared/data/imdb --set data.n_train=2000",
    )
    train.add_argument("recipe", nargs="?", help="YAML recipe (see recipes/); omitted: the built-in defaults (demo)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a recipe key, e.g. --set lora.r=16 --set train.epochs=1 (repeatable)")
    train.add_argument("--model", help="model: hub id, local folder, or packaged:minilm (sets model.name)")
    train.add_argument("--data", help="data: hub dataset id, local file or folder, or packaged:NAME (sets data.source)")
    train.add_argument("--name", help="run folder name (sets name)")
    train.add_argument("--output-dir", help="where run folders go (sets output_dir; default runs/)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")
    train.add_argument("--resume", action="store_true",
                       help="continue an unfinished run (killed or interrupted) from its last checkpoint")
    train.add_argument("--trust-remote-code", action="store_true",
                       help="run Python code shipped with a hub model (off by default; sets model.trust_remote_code)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--quick", action="store_true",  # issue 5: textlora.quick
                       help="a seconds-long check of the recipe: 64 train rows, 1 epoch, 64 tokens (numbers mean nothing)")
    train.set_defaults(func=cmd_train)

    predict = sub.add_parser(
        "predict",
        help="classify texts with a trained run",
        description="Print label, confidence and every class probability for each text.",
        epilog='example: textlora predict runs/demo "Great film!" or --input reviews.csv --text-column review --output out.csv',
    )
    predict.add_argument("run_dir", help="a run folder written by `textlora train`")
    predict.add_argument("texts", nargs="*", help="texts to classify")
    predict.add_argument("--input", help="file of texts: csv/tsv/jsonl/parquet (with --text-column) or .txt (one per line)")
    predict.add_argument("--text-column", default="text", help="column holding the texts in --input (default: text)")
    predict.add_argument("--output", help="write predictions here (.csv, .tsv, .jsonl, .parquet) instead of printing")
    predict.add_argument("--json", action="store_true", help="print JSON instead of text")
    predict.add_argument("--model", help="base model to load the adapter on, if it moved since training")
    predict.add_argument("--batch-size", type=int, default=64, help="texts per forward pass (default 64)")
    predict.add_argument("--precision", choices=PRECISIONS, default="fp32",
                         help="fp32 (default: the probabilities the run's metrics came from), bf16 (faster where "
                              "the hardware runs it natively; probabilities move by bf16 rounding), or auto")
    add_backend_arguments(predict)
    predict.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    predict.add_argument("--trust-remote-code", action="store_true",
                         help="needed for a run trained with --trust-remote-code: runs its model's own code")
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(func=cmd_predict)

    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module).register_cli(sub)
    return parser


# Modules that add their own sub-command: each has register_cli(subparsers),
# which adds a parser and sets `func` to a function(args) -> exit code.
# Their heavy imports stay inside the command functions so --help is fast.
COMMAND_MODULES: list[str] = ["textlora.serve", "textlora.ui", "textlora.sweep", "textlora.report", "textlora.params",
                               "textlora.compare", "textlora.export", "textlora.audit"]


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
