"""A Gradio page for one run: type a text, see the class and every confidence.

    textlora ui runs/demo-drugscom-minilm          # http://127.0.0.1:7860

Gradio does the page, the server and the queue; this module only lays out
the components and writes the run's headline metrics beside them.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from textlora.errors import TextloraError
from textlora.runs import EXAMPLES_FILE, RunDir
from textlora.tables import interval_text

DEFAULT_PORT = 7860
MAX_CHARS = 10_000  # the same per-text limit as `textlora serve`


def examples_for(run: RunDir) -> list[str]:
    """The examples the page offers: one short test text per class of the run itself (examples.json),
    so a topic classifier is not greeted with a drug review."""
    return [example["text"] for example in run.json_file(EXAMPLES_FILE) or []]


def metrics_markdown(run: RunDir) -> str:
    """The run's test-set rows (baselines, fine-tuned, ensemble) with 95 % intervals, what ships, and the verdicts."""
    from textlora.card import shipped_line

    info = run.info
    head = (f"**{info.get('name', run.path.name)}**: {info.get('base_model')} + {info.get('method')}, "
            f"classes: {', '.join(run.label_names)}")
    try:
        record = run.record()
    except TextloraError as err:  # the page still predicts; say why the numbers are missing
        return f"{head}\n\n({err})"
    if not record.final:
        return head + "\n\n(no test rows in this run's metrics.json)"
    n = record.final.get("n")
    lines = [head, "", shipped_line(record), "", f"Test set{f' ({n:,} texts)' if n else ''}, 95 % intervals:", "",
             "| model | accuracy | macro F1 |", "|---|---|---|"]
    for _, name, row in record.rows():
        lines.append(f"| {name} | {_cell(row, 'accuracy')} | {_cell(row, 'f1_macro')} |")
    verdicts = record.verdicts()
    if verdicts:
        lines += ["", *(f"- {line}" for line in verdicts)]
    return "\n".join(lines)


def _cell(row: dict[str, Any], metric: str) -> str:
    return interval_text(row, metric) or "n/a"


def build_ui(predictor, run: RunDir, examples: Sequence[str] | None = None):
    """The gr.Blocks page around a loaded Predictor; examples default to the run's own (examples_for)."""
    import gradio as gr

    def classify(text: str) -> dict[str, float]:
        if not text or not text.strip():
            raise gr.Error("Type a text to classify first.")
        return predictor.predict([text[:MAX_CHARS]])[0].probabilities

    with gr.Blocks(title=f"textlora: {run.path.name}") as page:
        gr.Markdown(f"# {run.path.name}\nClassify a text with this fine-tuned model.")
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(label="Text", lines=5, max_length=MAX_CHARS, elem_id="text",
                                  placeholder="Type or paste a text ...")
                button = gr.Button("Predict", variant="primary", elem_id="predict")
            with gr.Column():
                label = gr.Label(label="Prediction", num_top_classes=len(run.label_names), elem_id="prediction")
        examples = examples_for(run) if examples is None else examples
        if examples:
            gr.Examples(examples=[[e] for e in examples], inputs=[text])
        gr.Markdown(metrics_markdown(run), elem_id="metrics")
        button.click(classify, inputs=text, outputs=label, api_name="predict")
        text.submit(classify, inputs=text, outputs=label)
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
        "and the run's test metrics (95 % intervals) beside its baselines, with the paired verdicts.",
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
