"""The HTTP side: the FastAPI application (routes, auth, limits) and an ASGI body-size limit.

No `from __future__ import annotations` here: FastAPI reads the endpoint annotations at runtime,
and the request models are local to create_app.
"""

import secrets
from typing import Any, Optional, Union

from textlora.serve.batcher import MicroBatcher
from textlora.serve.engine import Engine
from textlora.serve.settings import ServeSettings


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

    class LabelSetOut(BaseModel):
        """task: multi_label: every label whose probability reaches its threshold (tuned on validation)."""
        labels: list[str]
        probabilities: dict[str, float]
        thresholds: dict[str, float]

    class ValueOut(BaseModel):
        """task: regression: the predicted number, and the data.label_bins range it falls in."""
        value: float
        bin: Optional[str] = None

    # One shape per task (predict.Prediction, LabelSetPrediction, ValuePrediction), those of the served
    # runs' tasks; their required fields differ, so an answer validates as exactly one of them.
    shapes = {"classification": PredictionOut, "multi_label": LabelSetOut, "regression": ValueOut}
    served = tuple(dict.fromkeys(shapes[adapter.run.task] for adapter in engine.adapters.values()))
    Answer = served[0] if len(served) == 1 else Union[served]  # noqa: N806 (a type)

    class PredictResponse(BaseModel):
        adapter: str
        predictions: list[Answer]

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
