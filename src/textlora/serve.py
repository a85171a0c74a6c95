"""REST serving of run folders: many adapters on one base model, micro-batched.

    textlora serve runs/sentiment runs/topic --port 8000 --token "$TOKEN"
    curl -H "Authorization: Bearer $TOKEN" -d '{"texts": ["Great film!"], "adapter": "topic"}' \\
         localhost:8000/v1/predict

The base model is loaded once; every adapter run is attached to it with
peft (load_adapter) and picked per request with set_adapter. Requests that
arrive together are gathered into one forward pass by `MicroBatcher`. The
HTTP side is FastAPI + uvicorn; what is written here by hand is only what
they do not do: the batcher, the body-size limit and the adapter loading.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoint
# annotations at runtime, and the request models are local to create_app.
import asyncio
import secrets
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from textlora.errors import TextloraError
from textlora.runs import RunDir, open_run

if TYPE_CHECKING:  # torch and transformers load only when a server starts, not for `textlora --help`
    from textlora.predict import Prediction, Predictor

DEFAULT_PORT = 8000
# Weight files that unpickle on load: a run folder holding one is refused.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@dataclass(frozen=True)
class ServeSettings:
    """Batching and request limits of one server."""

    max_batch: int = 64
    """Texts gathered from concurrent requests into one round of inference."""
    pass_size: int = 16
    """Texts per forward pass within a round: the round is sorted by length
    first, so each pass pads its texts only to a similar length."""
    max_wait_ms: float = 5.0
    """How long the first request of a batch waits for company."""
    batching: bool = True
    """False: one forward pass per request (the benchmark's comparison)."""
    max_texts: int = 128
    """Texts per request."""
    max_chars: int = 10_000
    """Characters per text: longer texts are truncated to the model's max_length
    anyway, but tokenizing them first costs time."""
    max_body_bytes: int = 2 * 2**20
    """Request body size."""
    max_queue: int = 4096
    """Texts waiting for the model; above it requests get 503 (back-pressure)."""
    token: Optional[str] = None
    """When set, /v1/* needs `Authorization: Bearer <token>`."""
    precision: str = "fp32"
    """fp32 | bf16 | auto: the model's precision (textlora.predict.inference_precision)."""
    backend: Optional[str] = None
    """torch | onnx (textlora.predict.Predictor.from_run); default torch, or onnx when `onnx` is set."""
    onnx: Optional[str] = None
    """The run's ONNX export (`textlora export RUN --onnx DIR`), for backend onnx."""

    def __post_init__(self) -> None:
        for name in ("max_batch", "pass_size", "max_texts", "max_chars", "max_body_bytes", "max_queue"):
            if getattr(self, name) < 1:
                raise TextloraError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_wait_ms < 0:
            raise TextloraError("--max-wait-ms must be 0 or more")
        if self.token is not None and not self.token.strip():
            raise TextloraError("--token is empty; give a non-empty token or leave it out")


# --------------------------------------------------------------------------- models


@dataclass
class Adapter:
    """One served run: its predictor (sharing the base model) and what /v1/models shows."""

    name: str
    run: RunDir
    predictor: "Predictor"
    peft_name: Optional[str]  # None: a merged or full model, nothing to switch

    def describe(self) -> dict[str, Any]:
        metrics = self.run.metrics()
        return {
            "name": self.name,
            "method": self.run.info.get("method"),
            "labels": self.run.label_names,
            "metrics": {
                "test": _headline(metrics.get("final", {})),
                "baselines": {k: _headline(v) for k, v in metrics.get("baselines", {}).items()},
            },
        }


def _headline(row: dict[str, Any]) -> dict[str, Any]:
    from textlora.metrics import HEADLINE

    return {k: row[k] for k in ("n", *HEADLINE) if k in row}


class Engine:
    """The loaded model(s): `predict(adapter, texts)` classifies one gathered batch, synchronously."""

    def __init__(self, model, adapters: dict[str, Adapter], base_model: str):
        self.model = model
        self.adapters = adapters
        self.base_model = base_model
        self.default = next(iter(adapters))
        self._active: Optional[str] = None

    def predict(self, name: str, texts: Sequence[str]) -> list["Prediction"]:
        adapter = self.adapters[name]
        # Switching is cheap but not free (it walks every module), so only on change.
        # Safe without a lock: the batcher calls this from a single thread.
        if adapter.peft_name is not None and adapter.peft_name != self._active:
            self.model.set_adapter(adapter.peft_name)
            self._active = adapter.peft_name
        return adapter.predictor.predict(texts)

    def warm_up(self) -> None:
        """One pass per adapter (the first allocates), through `predict` so each runs with its own
        adapter and head: a predictor called directly would run whichever adapter peft left
        active, e.g. a 3-class head under a 2-class adapter's label names."""
        for name in self.adapters:
            self.predict(name, ["warm-up"])


def parse_run_args(items: Sequence[str]) -> list[tuple[str, Path]]:
    """`RUN_DIR` or `NAME=RUN_DIR`; the name defaults to the folder's name."""
    out: list[tuple[str, Path]] = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or Path(item).exists():
            name, path = Path(item).resolve().name, item
        if any(name == seen for seen, _ in out):
            raise TextloraError(f"two runs are named {name!r}; name them apart with NAME=RUN_DIR")
        out.append((name, Path(path)))
    if not out:
        raise TextloraError("no run folder given; pass one or more RUN_DIRs")
    return out


def load_engine(runs: Sequence[tuple[str, "str | Path"]], base_model: Optional[str] = None,
                pass_size: int = 16, precision: str = "fp32", backend: Optional[str] = None,
                onnx: "str | Path | None" = None) -> Engine:
    """Open and check every run, load the base model once and attach each adapter to it
    (`precision`: fp32, bf16 or auto; `backend` torch or onnx with `onnx` the export: as for textlora.predict)."""
    from textlora.predict import (Predictor, cast_for_inference, check_backend, inference_precision, load_run_model,
                                  resolve_backend)

    inference_precision(precision)  # a bad value fails before any loading
    backend = resolve_backend(backend, onnx)
    check_backend(backend, onnx, precision)
    if backend == "onnx":
        if len(runs) != 1:  # an export is one merged model: there is no shared base to switch adapters on
            raise TextloraError("--backend onnx serves one run per server; start one server per run")
        (name, path), = runs
        predictor = Predictor.from_run(path, batch_size=pass_size, backend="onnx", onnx=onnx)
        run = open_run(path)
        return Engine(predictor.model, {name: Adapter(name, run, predictor, None)}, run.info.get("base_model") or "?")

    opened = [(name, open_run(path)) for name, path in runs]
    for name, run in opened:
        _check_safe(name, run)
    first_name, first = opened[0]
    base = base_model or first.info.get("base_model") or "?"
    if len(opened) == 1:
        # One run: merge the adapter (if any) into the base, the fastest form.
        model = load_run_model(first, base_model, merge=True, precision=precision)
        predictor = Predictor.for_model(first, model, pass_size)
        return Engine(model, {first_name: Adapter(first_name, first, predictor, None)}, base)
    _check_same_base(opened)
    model = load_run_model(first, base_model, merge=False)  # a PeftModel, adapter "default"
    adapters = {first_name: Adapter(first_name, first, Predictor.for_model(first, model, pass_size), "default")}
    for i, (name, run) in enumerate(opened[1:], start=1):
        # Internal names, not the user's: peft adapter names end up in module
        # names, where a dot or a clash with "default" would break things.
        peft_name = f"adapter{i}"
        _attach_adapter(model, run, peft_name, name)
        adapters[name] = Adapter(name, run, Predictor.for_model(run, model, pass_size), peft_name)
    cast_for_inference(model, precision)  # in place: every adapter's predictor holds this model
    return Engine(model, adapters, base)


def _check_safe(name: str, run: RunDir) -> None:
    if run.config().get("model", {}).get("trust_remote_code"):
        raise TextloraError(f"run {name!r} needs trust_remote_code; serve never runs code from a model repository")
    pickled = [p.name for p in run.artifact.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickled:
        raise TextloraError(
            f"run {name!r} holds pickled weights ({', '.join(pickled)}); serve loads safetensors only, re-save the run"
        )
    source = Path(run.info.get("base_model_source", ""))
    if run.info["artifact"] == "adapter" and source.is_dir() and not any(source.glob("*.safetensors")):
        raise TextloraError(f"base model {str(source)!r} has no safetensors weights; convert it (serve loads no pickles)")


def _check_same_base(runs: list[tuple[str, RunDir]]) -> None:
    first_name, first = runs[0]
    for name, run in runs:
        if run.info["artifact"] != "adapter":
            raise TextloraError(
                f"run {name!r} is a whole model (method {run.info.get('method')}), not an adapter; serve it alone"
            )
        if run.info.get("objective") == "seq2seq":
            raise TextloraError(f"run {name!r} scores label words with a language model; serve it alone")
        same = run.info.get("base_signature") == first.info.get("base_signature") and (
            run.info.get("base_model_source") == first.info.get("base_model_source")
            or run.info.get("base_model") == first.info.get("base_model")
        )
        if not same:
            raise TextloraError(
                f"adapters {first_name!r} and {name!r} were trained on different base models "
                f"({first.info.get('base_model')!r} vs {run.info.get('base_model')!r}); serve them from separate servers"
            )


def _attach_adapter(model, run: RunDir, peft_name: str, name: str) -> None:
    """peft load_adapter, after giving the new adapter's head copy its own shape.

    peft copies the base's head for every adapter (modules_to_save); an
    adapter trained with another number of labels needs a head of another
    shape, or loading its weights fails. The head is built here from the
    run's saved classification config, the way transformers builds it.
    """
    import torch
    from peft import PeftConfig
    from peft.utils.other import ModulesToSaveWrapper
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = PeftConfig.from_pretrained(str(run.artifact))
    config.inference_mode = True
    try:
        model.add_adapter(peft_name, config)
    except ValueError as err:  # e.g. LoRA and IA3 adapters cannot share one peft model
        first = (str(err).splitlines() or [""])[0][:160]
        raise TextloraError(f"adapter {name!r} cannot join the others ({first}); serve it from a separate server") from None
    classifier_config = AutoConfig.from_pretrained(str(run.artifact))
    shaped = None
    for path, module in model.base_model.model.named_modules():
        if not isinstance(module, ModulesToSaveWrapper):
            continue
        if shaped is None:
            with torch.device("meta"):  # shapes only; the weights come from the adapter
                shaped = AutoModelForSequenceClassification.from_config(classifier_config)
        wanted = shaped.get_submodule(path)
        have = {k: p.shape for k, p in module.original_module.named_parameters()}
        if have != {k: p.shape for k, p in wanted.named_parameters()}:
            device = next(module.original_module.parameters()).device
            module.modules_to_save[peft_name] = wanted.to_empty(device=device).eval()
    model.load_adapter(str(run.artifact), adapter_name=peft_name)


# --------------------------------------------------------------------------- micro-batching


@dataclass
class _Job:
    adapter: str
    texts: list[str]
    future: asyncio.Future


@dataclass
class BatchStats:
    requests: int = 0
    texts: int = 0
    batches: int = 0
    largest_batch: int = 0


@dataclass
class MicroBatcher:
    """Gathers concurrent requests of one adapter into one forward pass.

    A single worker takes the oldest request, then waits up to `max_wait_ms`
    for more of the same adapter until `max_batch` texts; requests of other
    adapters are held for the next pass, in arrival order. The forward pass
    runs in one background thread, so the event loop keeps accepting
    requests, which queue up to form the next batch. Written by hand: none of
    FastAPI, uvicorn or transformers batches across requests.
    """

    run_batch: Callable[[str, list[str]], list["Prediction"]]
    max_batch: int = 64
    max_wait_ms: float = 5.0
    enabled: bool = True
    stats: BatchStats = field(default_factory=BatchStats)

    def __post_init__(self) -> None:
        self._queue: Optional[asyncio.Queue] = None
        self._held: deque[_Job] = deque()
        self._pending_texts = 0
        self._task: Optional[asyncio.Task] = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="textlora-forward")

    @property
    def pending_texts(self) -> int:
        return self._pending_texts

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._held or (self._queue is not None and not self._queue.empty()):
            job = self._held.popleft() if self._held else self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(RuntimeError("server shutting down"))
        self._executor.shutdown(wait=False)

    async def submit(self, adapter: str, texts: list[str]) -> list["Prediction"]:
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        future = asyncio.get_running_loop().create_future()
        self._pending_texts += len(texts)
        self._queue.put_nowait(_Job(adapter, texts, future))
        return await future

    async def _next(self, timeout: Optional[float]) -> Optional[_Job]:
        assert self._queue is not None
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            return None if self._queue.empty() else self._queue.get_nowait()
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _gather(self) -> list[_Job]:
        first = self._held.popleft() if self._held else await self._next(None)
        batch, size = [first], len(first.texts)
        if not self.enabled:
            return batch
        # Held requests (other adapters, or too big for the last batch) come first.
        kept: deque[_Job] = deque()
        while self._held:
            job = self._held.popleft()
            if job.adapter == first.adapter and size + len(job.texts) <= self.max_batch:
                batch.append(job)
                size += len(job.texts)
            else:
                kept.append(job)
        self._held = kept
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_ms / 1000
        while size < self.max_batch:
            job = await self._next(deadline - loop.time())
            if job is None:
                break
            if job.adapter == first.adapter and size + len(job.texts) <= self.max_batch:
                batch.append(job)
                size += len(job.texts)
            else:
                self._held.append(job)
                if job.adapter == first.adapter:
                    break  # full: the next batch starts with it
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            live = [job for job in batch if not job.future.done()]  # skip requests whose client left
            texts = [t for job in live for t in job.texts]
            try:
                if live:
                    results = await loop.run_in_executor(self._executor, self.run_batch, live[0].adapter, texts)
                    start = 0
                    for job in live:
                        if not job.future.done():
                            job.future.set_result(results[start : start + len(job.texts)])
                        start += len(job.texts)
                    self.stats.batches += 1
                    self.stats.largest_batch = max(self.stats.largest_batch, len(texts))
            except Exception as err:  # a failed pass fails its requests, not the server
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(err)
            finally:
                self._pending_texts -= sum(len(job.texts) for job in batch)
                self.stats.requests += len(batch)
                self.stats.texts += sum(len(job.texts) for job in batch)


# --------------------------------------------------------------------------- HTTP


class BodyLimit:
    """ASGI middleware: 413 for a request body over `max_bytes`, before the app reads it.

    Written by hand: neither uvicorn nor FastAPI limits body size. Checks the
    declared Content-Length first, then counts the bytes actually sent (a
    chunked upload declares none).
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client disconnected
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await self._reject(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope, receive, send) -> None:
        from starlette.responses import JSONResponse

        detail = f"request body over {self.max_bytes} bytes, the server's limit (--max-body-bytes)"
        response = JSONResponse({"detail": detail}, status_code=413)
        await response(scope, receive, send)


def create_app(engine: Engine, settings: ServeSettings = ServeSettings()):
    """The FastAPI application; the batcher starts and stops with it (lifespan)."""
    from contextlib import asynccontextmanager

    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from pydantic import BaseModel, ConfigDict, Field

    batcher = MicroBatcher(engine.predict, settings.max_batch, settings.max_wait_ms, settings.batching)

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: list[str] = Field(min_length=1, description=f"at most {settings.max_texts} texts, each at most {settings.max_chars} characters")
        adapter: Optional[str] = Field(None, description=f"an adapter name from /v1/models; default {engine.default!r}")

    class PredictionOut(BaseModel):
        label: str
        confidence: float
        probabilities: dict[str, float]

    class PredictResponse(BaseModel):
        adapter: str
        predictions: list[PredictionOut]

    bearer = HTTPBearer(auto_error=False)

    def authorize(credentials: Optional[HTTPAuthorizationCredentials] = Depends(bearer)) -> None:
        if settings.token is None:
            return
        # compare_digest: the time taken does not reveal how much of the token matched.
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), settings.token.encode()):
            raise HTTPException(401, "missing or wrong token; send the header Authorization: Bearer <token>",
                                headers={"WWW-Authenticate": "Bearer"})

    @asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="textlora", version="1", lifespan=lifespan,
                  description="Text classification with fine-tuned adapters on one base model.")
    app.state.batcher = batcher
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        stats = batcher.stats
        return {"status": "ok", "adapters": len(engine.adapters), "pending_texts": batcher.pending_texts,
                "requests": stats.requests, "texts": stats.texts, "batches": stats.batches,
                "largest_batch": stats.largest_batch}

    @app.get("/v1/models", dependencies=[Depends(authorize)])
    async def models() -> dict[str, Any]:
        return {
            "base_model": engine.base_model,
            "default_adapter": engine.default,
            "adapters": [a.describe() for a in engine.adapters.values()],
            "batching": {"enabled": settings.batching, "max_batch": settings.max_batch, "pass_size": settings.pass_size,
                         "max_wait_ms": settings.max_wait_ms},
            "limits": {"max_texts": settings.max_texts, "max_chars": settings.max_chars,
                       "max_body_bytes": settings.max_body_bytes},
        }

    @app.post("/v1/predict", response_model=PredictResponse, dependencies=[Depends(authorize)])
    async def predict(request: PredictRequest) -> dict[str, Any]:
        texts = request.texts
        if len(texts) > settings.max_texts:
            raise HTTPException(413, f"{len(texts)} texts in one request; the limit is {settings.max_texts} (--max-texts)")
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:  # the model would still answer, with a confident label for nothing
            more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
            raise HTTPException(422, f"texts[{empty[0]}] is empty{more}; send only texts with words in them")
        longest = max(len(t) for t in texts)
        if longest > settings.max_chars:
            raise HTTPException(413, f"a text has {longest} characters; the limit is {settings.max_chars} per text (--max-chars)")
        name = engine.default if request.adapter is None else request.adapter
        if name not in engine.adapters:  # a dictionary key, never a path
            raise HTTPException(404, f"no adapter named {name!r}; served: {', '.join(engine.adapters)}")
        if batcher.pending_texts + len(texts) > settings.max_queue:
            raise HTTPException(503, f"{batcher.pending_texts} texts already waiting (--max-queue {settings.max_queue}); retry shortly",
                                headers={"Retry-After": "1"})
        predictions = await batcher.submit(name, texts)
        return {"adapter": name, "predictions": [p.as_dict() for p in predictions]}

    return app


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
    parser.add_argument("--precision", choices=("fp32", "bf16", "auto"), default=defaults.precision,
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
