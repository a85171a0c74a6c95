"""Micro-batching: concurrent requests of one adapter gathered into one forward pass."""

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:
    from textlora.predict import Prediction


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
    FastAPI, uvicorn or transformers batches across requests. `run_batch` gives one answer per
    text, whatever its task (a Prediction, a LabelSetPrediction or a ValuePrediction): each request
    gets its own texts' answers back by position.
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
