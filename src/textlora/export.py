"""Export a run for use without textlora: a merged transformers model, or the adapter alone.

    textlora export runs/demo --merged exported/demo
    # then, with plain transformers:
    model = AutoModelForSequenceClassification.from_pretrained("exported/demo")
    tokenizer = AutoTokenizer.from_pretrained("exported/demo")

--merged: the adapter folded into the base weights (peft merge_and_unload),
saved as a transformers folder (safetensors) with the trained head and the
label names (id2label / label2id), plus the tokenizer. Full and head runs
already ship a whole model, which is copied as it is.
--adapter: the PEFT folder (adapter_config.json + adapter_model.safetensors,
head included), the classification config beside it, the tokenizer and the
model card as README.md (card.py: YAML metadata the hub reads), ready for
`huggingface_hub.upload_folder(repo_id=..., folder_path=OUT)`.

--onnx: the merged classifier as ONNX (fp32 or int8) behind a parity gate;
onnxexport.py does it.

task: multi_label and task: regression: the run's task.json travels with both
(the per-label thresholds tuned on the validation rows; the target's name, scale
and bins), and a merged export gets the model card as README.md, which says how
to apply them (sigmoid, then each label's threshold; a regression's one output
is the number itself, no activation).

All are written to a hidden sibling of OUT and renamed into place at the
end, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

from textlora.errors import TextloraError
from textlora.runs import CALIBRATION_FILE, TASK_FILE

KINDS = ("merged", "adapter")


def check_destination(run_path: Path, out: Path, overwrite: bool) -> None:
    run_path, target = run_path.resolve(), out.resolve()
    if target == run_path or run_path in target.parents or target in run_path.parents:
        raise TextloraError(f"export folder {str(out)!r} overlaps the run folder {str(run_path)!r}; "
                            "choose a path outside it")
    if out.exists() and not out.is_dir():
        raise TextloraError(f"{str(out)!r} is a file; give a folder path to export into")
    if out.exists() and not overwrite:
        raise TextloraError(f"export folder {str(out)!r} already exists; pass --overwrite or choose another path")


def _copy_files(source: Path, destination: Path) -> None:
    """Copy a folder's files into `destination`; two files of one name would be a bug in the run layout."""
    for item in sorted(source.iterdir()):
        target = destination / item.name
        if target.exists():
            raise RuntimeError(f"{item.name} exists in both the model and the tokenizer folder")
        if item.is_dir():
            shutil.copytree(item, target)
        else:
            shutil.copy2(item, target)


@contextlib.contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A hidden sibling of `out` to write into, renamed to `out` when the block ends without an error
    and removed when it raises: nothing half-written is ever at `out`."""
    from textlora.runs import finish_run

    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        yield temporary
        finish_run(temporary, out)  # an overwritten export is removed only after the new one is in place
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _save_merged(run, out: Path, base_model: str | None) -> None:
    from textlora.predict import load_run_model

    model = load_run_model(run, base_model, merge=True)
    model = getattr(model, "lm", model)  # a label-word run: its merged language model
    # Label names travel in the config, so nothing downstream prints LABEL_0.
    model.config.id2label = dict(enumerate(run.label_names))
    model.config.label2id = {name: i for i, name in enumerate(run.label_names)}
    model.save_pretrained(str(out), safe_serialization=True)


def _adapter_card(run, where: str = "artifact") -> str:
    from textlora.card import model_card
    from textlora.config import config_from_dict

    return model_card(config_from_dict(run.config()), run.info, run.record(), where=where)


def export_run(run_dir: str | Path, out: str | Path, kind: str = "merged", overwrite: bool = False,
               base_model: str | None = None) -> Path:
    """Write the run's merged model or its adapter (with tokenizer and labels) to `out`; returns `out`."""
    from textlora.runs import open_run

    if kind not in KINDS:
        raise TextloraError(f"unknown export kind {kind!r}; choose one of: {', '.join(KINDS)}")
    run = open_run(run_dir)
    out = Path(out)
    check_destination(run.path, out, overwrite)
    whole_model = run.info["artifact"] != "adapter"
    if kind == "adapter" and whole_model:
        raise TextloraError(f"run {str(run_dir)!r} was trained with method {run.info.get('method')}: its artifact is "
                            "the whole model, there is no adapter to export; use --merged")
    with staged_folder(out) as temporary:
        if kind == "adapter" or whole_model:
            _copy_files(run.artifact, temporary)  # as trained: already safetensors with the label config
        else:
            _save_merged(run, temporary, base_model)
        _copy_files(run.path / "tokenizer", temporary)
        if (run.path / CALIBRATION_FILE).is_file():
            # The temperature travels with the model: divide the logits by it before the softmax.
            shutil.copy2(run.path / CALIBRATION_FILE, temporary / CALIBRATION_FILE)
        if run.info.get("prompt"):
            # A label-word model classifies by scoring these words after this prompt.
            prompt = run.info["prompt"]
            (temporary / "label_words.json").write_text(json.dumps(
                {"label_names": run.label_names, "template": prompt.get("template"), "words": prompt.get("words"),
                 "target_ids": prompt.get("targets")}, indent=2) + "\n")
        if run.task != "classification" and (run.path / TASK_FILE).is_file():
            # What the logits need beyond the model: each label's threshold (multi_label), or the
            # target's name, scale and bins (regression); README.md says how to apply them.
            shutil.copy2(run.path / TASK_FILE, temporary / TASK_FILE)
        if kind == "adapter":
            # The hub's model card, regenerated from the run record: the folder is ready for
            # huggingface_hub.upload_folder, and an older run's peft template never ships.
            (temporary / "README.md").write_text(_adapter_card(run))
        elif run.task != "classification":  # a merged label-set or number model: the card says how to read it
            (temporary / "README.md").write_text(_adapter_card(run, where="merged"))
        if not any(temporary.glob("*.safetensors")) or any(temporary.glob("*.bin")):
            raise RuntimeError(f"export of {run.path} wrote no safetensors weights (or pickled ones); please report it")
    return out


# --------------------------------------------------------------------------- CLI


def cmd_export(args: argparse.Namespace) -> int:
    from textlora.runs import folder_size

    if args.onnx is not None:
        return _cmd_export_onnx(args)
    given = [flag for flag, value in (("--quantize", args.quantize), ("--force", args.force),
                                      ("--max-drop", args.max_drop), ("--min-agreement", args.min_agreement))
             if value not in (None, False)]
    if given:
        raise TextloraError(f"{', '.join(given)} apply to --onnx only; export with --onnx OUT")
    kind, out = ("merged", args.merged) if args.merged else ("adapter", args.adapter)
    written = export_run(args.run_dir, out, kind, args.overwrite, args.model)
    size = folder_size(written) / 2**20
    if kind == "merged":
        from textlora.runs import open_run

        label_words = (written / "label_words.json").is_file()
        auto_class = "AutoModelForSeq2SeqLM" if label_words else "AutoModelForSequenceClassification"
        task = open_run(args.run_dir).task
        print(f"merged model written to {written} ({size:.1f} MiB); load it with "
              f"{auto_class}.from_pretrained({str(written)!r}) and AutoTokenizer"
              + ("; it classifies by scoring the words in label_words.json after its prompt" if label_words else "")
              + {"multi_label": f"; a text's labels: the sigmoid of each logit against that label's threshold in "
                                f"{TASK_FILE} (README.md shows how)",
                 "regression": "; its one output is the number itself (no activation)"}.get(task, ""))
    else:
        print(f"adapter written to {written} ({size:.2f} MiB, model card in README.md); load it with peft's "
              f"PeftModel.from_pretrained on the base model built with AutoConfig.from_pretrained({str(written)!r}); "
              f"share it with `hf upload YOUR_NAME/REPO {written}`")
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    from textlora.onnxexport import DEFAULT_MAX_DROP, DEFAULT_MIN_AGREEMENT, ONNX_FILE, export_onnx

    max_drop = DEFAULT_MAX_DROP if args.max_drop is None else args.max_drop
    min_agreement = DEFAULT_MIN_AGREEMENT if args.min_agreement is None else args.min_agreement
    written, parity = export_onnx(args.run_dir, args.onnx, args.quantize, args.overwrite, args.force, max_drop,
                                  args.model, progress=not args.quiet, min_agreement=min_agreement)
    size = (written / ONNX_FILE).stat().st_size / 2**20
    if parity is None:
        print("warning: exported without the parity check (--force); parity.json says why")
    elif parity.failures(max_drop, min_agreement):
        print(f"warning: exported past the parity gate (--force): {'; '.join(parity.failures(max_drop, min_agreement))}")
    print(f"ONNX model ({args.quantize or 'fp32'}, {size:.1f} MiB) written to {written} with its tokenizer, labels "
          f"and temperature; run it with `textlora predict {args.run_dir} --backend onnx --onnx {written}` or with "
          "onnxruntime alone (README: ONNX and int8)")
    return 0


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a run as a plain transformers model (adapter merged), its PEFT adapter, or ONNX",
        description="--merged: fold the adapter into the base weights and save a transformers folder "
        "(safetensors, trained head, label names, tokenizer) that AutoModelForSequenceClassification and "
        "AutoTokenizer load without textlora. --adapter: the PEFT adapter alone with its label config and "
        "tokenizer. --onnx: the merged classifier as ONNX (fp32, or int8 with --quantize int8) with tokenizer, "
        "labels and temperature, kept only if it matches torch fp32 on the run's test rows (the parity gate). "
        "Written to a temporary sibling folder and renamed at the end.",
        epilog="example: textlora export runs/imdb-minilm --merged exported/imdb-minilm; "
        "textlora export runs/imdb-minilm --onnx exported/imdb-onnx --quantize int8",
    )
    parser.add_argument("run_dir", help="a run folder written by `textlora train`")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--merged", metavar="OUT", help="folder for the merged model")
    kind.add_argument("--adapter", metavar="OUT", help="folder for the adapter (adapter methods only)")
    kind.add_argument("--onnx", metavar="OUT", help="folder for the ONNX model (classification-head runs)")
    parser.add_argument("--quantize", choices=("int8",),
                        help="with --onnx: dynamic int8 quantization of the MatMul/Gemm weights (onnxruntime)")
    parser.add_argument("--max-drop", type=float, metavar="POINTS",
                        help="with --onnx: what the ONNX model may lose against torch fp32 on the run's test rows "
                             "before the export is refused: accuracy points (classification), micro F1 points "
                             "(multi_label), or an MAE increase in percent of the training target's standard "
                             "deviation (regression) (default 0.5)")
    parser.add_argument("--min-agreement", type=float, metavar="PERCENT",
                        help="with --onnx: percent of the run's test rows on which the ONNX model must give torch "
                             "fp32's label (multi_label: the identical label set; not checked for regression) "
                             "before the export is refused (default 99)")
    parser.add_argument("--force", action="store_true",
                        help="with --onnx: export even past the parity gate, or when the test rows cannot be read")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT folder")
    parser.add_argument("--model", help="base model to merge into, if it moved since training")
    parser.set_defaults(func=cmd_export)
