"""A Gradio page for one run: type a text, see the class and every confidence.

    textlora ui runs/demo-drugscom-minilm          # http://127.0.0.1:7860

Gradio does the page, the server and the queue; this module only lays out
the components and writes the run's headline metrics beside them. What is
shown follows the run's task: the classes' confidences (gr.Label); for
task: multi_label one checkbox per label with its probability and threshold,
the predicted set checked; for task: regression the number and its bin.
`prediction_view` turns one prediction into those values.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from textlora.errors import TextloraError
from textlora.runs import EXAMPLES_FILE, RunDir
from textlora.tables import interval_text, metric_name

DEFAULT_PORT = 7860
MAX_CHARS = 10_000  # the same per-text limit as `textlora serve`


def examples_for(run: RunDir) -> list[str]:
    """The examples the page offers: one short test text per class of the run itself (examples.json),
    so a topic classifier is not greeted with a drug review."""
    return [example["text"] for example in run.json_file(EXAMPLES_FILE) or []]


def prediction_view(prediction) -> Any:
    """What the page shows of one prediction (predict.py's types), as values of the task's components:
    a Prediction -> {class: probability} (gr.Label); a LabelSetPrediction -> (choices, checked) of a
    gr.CheckboxGroup, one choice per label shown as "name: probability (threshold t)" and the predicted
    labels checked; a ValuePrediction -> (value, bin) for a number box and a text box ("" without bins)."""
    from textlora.predict import LabelSetPrediction, ValuePrediction

    if isinstance(prediction, LabelSetPrediction):
        choices = [(f"{name}: {p:.3f} (threshold {prediction.thresholds[name]:.2f})", name)
                   for name, p in prediction.probabilities.items()]
        return choices, list(prediction.labels)
    if isinstance(prediction, ValuePrediction):
        return prediction.value, prediction.bin or ""
    return prediction.probabilities


def predict_view(predictor, text: str) -> Any:
    """The page's Predict button without Gradio: the text (cut at MAX_CHARS) predicted, as prediction_view."""
    return prediction_view(predictor.predict([text[:MAX_CHARS]])[0])


def _what(run: RunDir) -> str:
    names = ", ".join(run.label_names)
    return {"multi_label": f"labels (any set of them): {names}", "regression": f"predicts: {names}"}.get(
        run.task, f"classes: {names}")


def metrics_markdown(run: RunDir) -> str:
    """The run's test-set rows (baselines, fine-tuned, ensemble) with 95 % intervals, what ships, and the verdicts."""
    from textlora.card import shipped_line

    info = run.info
    head = f"**{info.get('name', run.path.name)}**: {info.get('base_model')} + {info.get('method')}, {_what(run)}"
    try:
        record = run.record()
    except TextloraError as err:  # the page still predicts; say why the numbers are missing
        return f"{head}\n\n({err})"
    if not record.final:
        return head + "\n\n(no test rows in this run's metrics.json)"
    n = record.final.get("n")
    lines = [head, "", shipped_line(record), "", f"Test set{f' ({n:,} texts)' if n else ''}, 95 % intervals:", ""]
    if record.task == "classification":
        lines += ["| model | accuracy | macro F1 |", "|---|---|---|"]
        for _, name, row in record.rows():
            lines.append(f"| {name} | {_cell(row, 'accuracy')} | {_cell(row, 'f1_macro')} |")
    else:
        from textlora.config import TASK_INTERVAL_METRICS

        metrics = TASK_INTERVAL_METRICS[record.task]
        lines += ["| model | " + " | ".join(metric_name(m) for m in metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        for _, name, row in record.rows():
            lines.append(f"| {name} | " + " | ".join(_cell(row, m) for m in metrics) + " |")
    verdicts = record.verdicts()
    if verdicts:
        lines += ["", *(f"- {line}" for line in verdicts)]
    return "\n".join(lines)


def _cell(row: dict[str, Any], metric: str) -> str:
    return interval_text(row, metric) or "n/a"


def build_ui(predictor, run: RunDir, examples: Sequence[str] | None = None):
    """The gr.Blocks page around a loaded Predictor; examples default to the run's own (examples_for)."""
    import gradio as gr

    task = predictor.task

    def classify(text: str):
        if not text or not text.strip():
            raise gr.Error("Type a text to classify first.")
        view = predict_view(predictor, text)
        if task == "multi_label":  # the choices carry this text's probabilities: the component is replaced
            choices, checked = view
            return gr.CheckboxGroup(choices=choices, value=checked)
        return view

    intro = {"multi_label": "Tag a text with this fine-tuned model: it gets every label whose probability reaches "
                            "that label's threshold (tuned on the validation rows).",
             "regression": f"Predict {run.label_names[0]} for a text with this fine-tuned model."}
    with gr.Blocks(title=f"textlora: {run.path.name}") as page:
        gr.Markdown(f"# {run.path.name}\n{intro.get(task, 'Classify a text with this fine-tuned model.')}")
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(label="Text", lines=5, max_length=MAX_CHARS, elem_id="text",
                                  placeholder="Type or paste a text ...")
                button = gr.Button("Predict", variant="primary", elem_id="predict")
            with gr.Column():
                if task == "multi_label":
                    thresholds = dict(zip(predictor.label_names, map(float, predictor.thresholds)))
                    outputs = gr.CheckboxGroup(
                        choices=[(f"{name} (threshold {t:.2f})", name) for name, t in thresholds.items()],
                        label="Labels (checked: predicted)", interactive=False, elem_id="prediction")
                elif task == "regression":
                    outputs = [gr.Number(label=run.label_names[0], interactive=False, elem_id="prediction"),
                               gr.Textbox(label="Bin", interactive=False, elem_id="bin", visible=bool(predictor.bins))]
                else:
                    outputs = gr.Label(label="Prediction", num_top_classes=len(run.label_names), elem_id="prediction")
        examples = examples_for(run) if examples is None else examples
        if examples:
            gr.Examples(examples=[[e] for e in examples], inputs=[text])
        gr.Markdown(metrics_markdown(run), elem_id="metrics")
        button.click(classify, inputs=text, outputs=outputs, api_name="predict")
        text.submit(classify, inputs=text, outputs=outputs)
    return page


def launch_ui(run_dir: str, host: str = "127.0.0.1", port: int = DEFAULT_PORT, base_model: str | None = None,
              examples: Sequence[str] | None = None, block: bool = True, trust_remote_code: bool = False,
              backend: str | None = None, onnx: str | None = None):
    """Load the run and start the page; returns the gr.Blocks (already serving when block=False).
    `backend` / `onnx`: as for textlora.predict.Predictor.from_run."""
    # Gradio otherwise reports usage to its servers; a local model page has no reason to.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from textlora.predict import Predictor
    from textlora.runs import open_run

    run = open_run(run_dir)
    predictor = Predictor.from_run(run_dir, base_model=base_model, trust_remote_code=trust_remote_code,
                                   backend=backend, onnx=onnx)
    page = build_ui(predictor, run, examples)
    # System fonts: the default theme fetches Google Fonts, which hangs the
    # page on a machine without internet. No server-side rendering: it needs Node.
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])
    try:
        page.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block,
                    quiet=not block, theme=theme, ssr_mode=False, footer_links=[])
    except OSError as err:
        raise TextloraError(f"cannot listen on {host}:{port} ({err}); choose another --port") from None
    return page


def cmd_ui(args) -> int:
    from textlora.predict import check_backend, resolve_backend

    check_backend(resolve_backend(args.backend, args.onnx), args.onnx)  # before Gradio loads
    launch_ui(args.run_dir, args.host, args.port, args.model, args.example, trust_remote_code=args.trust_remote_code,
              backend=args.backend, onnx=args.onnx)
    return 0


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="a web page (Gradio) to try a run by hand",
        description="Start a Gradio page for one run: a text box, a Predict button, the class confidences "
        "(multi-label runs: every label's probability and threshold, the predicted set checked; regression: the "
        "number and its bin) and the run's test metrics (95 % intervals) beside its baselines, with the paired "
        "verdicts.",
        epilog="example: textlora ui runs/demo-drugscom-minilm --port 7860",
    )
    parser.add_argument("run_dir", help="a run folder written by `textlora train`")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--model", help="base model to load the adapter on, if it moved since training")
    parser.add_argument("--example", action="append", metavar="TEXT",
                        help="an example text to offer (repeatable); default: sample reviews for sentiment classes, "
                        "none otherwise")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="needed for a run trained with --trust-remote-code: runs its model's own code")
    from textlora.cli import add_backend_arguments

    add_backend_arguments(parser)
    parser.set_defaults(func=cmd_ui)
