"""REST serving of run folders: many adapters on one base model, micro-batched.

    textlora serve runs/sentiment runs/topic --port 8000 --token "$TOKEN"
    curl -H "Authorization: Bearer $TOKEN" -d '{"texts": ["Great film!"], "adapter": "topic"}' \\
         localhost:8000/v1/predict

Each answer is what `textlora predict --json` gives for the run's task: label, confidence and
every probability; a run of task: multi_label gives the label set, every label's probability and
threshold; task: regression the number and its data.label_bins range (bin). Adapters of different
tasks can share one server.

The base model is loaded once; every adapter run is attached to it with
peft (load_adapter) and picked per request with set_adapter. Requests that
arrive together are gathered into one forward pass by `MicroBatcher`. The
HTTP side is FastAPI + uvicorn; what is written here by hand is only what
they do not do: the batcher, the body-size limit and the adapter loading.

The parts, each readable and testable alone: settings.py (ServeSettings), engine.py (loading
runs onto one base model), batcher.py (MicroBatcher), app.py (FastAPI app, body limit); this
module starts the server (uvicorn) and registers `textlora serve`.
"""

import time
from typing import Callable, Optional, Sequence

from textlora.config import PRECISIONS
from textlora.serve.app import BodyLimit, create_app
from textlora.serve.batcher import BatchStats, MicroBatcher
from textlora.serve.engine import Adapter, Engine, load_engine, parse_run_args
from textlora.serve.settings import DEFAULT_PORT, ServeSettings

__all__ = ["Adapter", "BatchStats", "BodyLimit", "DEFAULT_PORT", "Engine", "MicroBatcher", "ServeSettings",
           "create_app", "load_engine", "parse_run_args", "register_cli", "serve"]


def serve(runs: Sequence[str], host: str = "127.0.0.1", port: int = DEFAULT_PORT, base_model: Optional[str] = None,
          settings: ServeSettings = ServeSettings(), say: Callable[[str], None] = print) -> None:
    import uvicorn

    started = time.perf_counter()
    engine = load_engine(parse_run_args(runs), base_model, settings.pass_size, settings.precision, settings.backend,
                         settings.onnx)
    engine.warm_up()  # the first pass allocates; do it before the first client waits
    app = create_app(engine, settings)
    names = ", ".join(engine.adapters)
    say(f"loaded {len(engine.adapters)} adapter(s) on {engine.base_model} in {time.perf_counter() - started:.1f} s: {names}")
    if host not in ("127.0.0.1", "localhost", "::1") and settings.token is None:
        say(f"warning: listening on {host} without --token: anyone who can reach this port can use the model")
    say(f"serving on http://{host}:{port} (API docs at /docs); Ctrl-C stops")
    _raise_open_file_limit()
    # No access log: under load a line per request costs the event loop more than routing it.
    # Keep-alive 30 s, not uvicorn's 5: a busy client that pauses longer between two
    # requests otherwise races the server's close and sees its request reset.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, timeout_keep_alive=30)


def _raise_open_file_limit() -> None:
    """Every open connection holds a file descriptor; the usual soft limit of
    1024 would refuse connections from a crowd of a thousand clients."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def cmd_serve(args) -> int:
    import os

    settings = ServeSettings(
        max_batch=args.max_batch, pass_size=args.pass_size, max_wait_ms=args.max_wait_ms, batching=not args.no_batching,
        max_texts=args.max_texts, max_chars=args.max_chars, max_body_bytes=args.max_body_bytes,
        max_queue=args.max_queue, token=args.token if args.token is not None else os.environ.get("TEXTLORA_TOKEN"),
        precision=args.precision, backend=args.backend, onnx=args.onnx,
    )
    serve(args.run_dirs, args.host, args.port, args.model, settings)
    return 0


def register_cli(subparsers) -> None:
    defaults = ServeSettings()
    parser = subparsers.add_parser(
        "serve",
        help="serve runs over HTTP (REST, micro-batched, many adapters on one base)",
        description="Serve one or more run folders with FastAPI + uvicorn: POST /v1/predict, GET /v1/models, "
        "GET /health, docs at /docs. Adapter runs on the same base model share it; pick one per request.",
        epilog="example: textlora serve runs/sentiment topic=runs/topic-v2 --token \"$TOKEN\"",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run folders; NAME=RUN_DIR names the adapter (default: the folder's name)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--token", help="require Authorization: Bearer TOKEN on /v1/* (default: $TEXTLORA_TOKEN if set)")
    parser.add_argument("--model", help="base model to load the adapters on, if it moved since training")
    parser.add_argument("--max-batch", type=int, default=defaults.max_batch,
                        help="texts gathered from concurrent requests per round (default %(default)s)")
    parser.add_argument("--pass-size", type=int, default=defaults.pass_size,
                        help="texts per forward pass; a round is sorted by length, then split (default %(default)s)")
    parser.add_argument("--max-wait-ms", type=float, default=defaults.max_wait_ms,
                        help="how long a request waits for others to share its pass (default %(default)s)")
    parser.add_argument("--no-batching", action="store_true", help="one forward pass per request")
    parser.add_argument("--precision", choices=PRECISIONS, default=defaults.precision,
                        help="fp32 (default: the run's own probabilities), bf16 (faster where the hardware runs it "
                             "natively), or auto")
    from textlora.cli import add_backend_arguments

    add_backend_arguments(parser)
    parser.add_argument("--max-texts", type=int, default=defaults.max_texts, help="texts per request (default %(default)s)")
    parser.add_argument("--max-chars", type=int, default=defaults.max_chars, help="characters per text (default %(default)s)")
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes,
                        help="request body size (default %(default)s)")
    parser.add_argument("--max-queue", type=int, default=defaults.max_queue,
                        help="texts waiting before requests get 503 (default %(default)s)")
    parser.set_defaults(func=cmd_serve)
