"""Load test of `textlora serve` on loopback: micro-batching on, then off.

    python benchmarks/serve_load.py runs/demo-drugscom-minilm --requests 2000 --concurrency 64
    python benchmarks/serve_load.py RUN --backend onnx --onnx exported/RUN-onnx-int8   # or --precision bf16

For each mode a fresh server process starts on a free 127.0.0.1 port
(`textlora serve RUN_DIR [--no-batching]`), gets a short warm-up, then a
fixed number of single-text requests from `--concurrency` concurrent
clients, texts taken in turn from the run's own test split (raw, as a
client would send them). It stops by itself: after `--requests`, or at
`--max-seconds` per mode, whichever comes first. Writes throughput, latency
percentiles, errors and the server's batch counts to benchmarks/results/.

Client and server share the machine's cores, so absolute numbers are a
floor; the on/off ratio is the point. The server runs the backend given
(`--backend torch|onnx`, `--onnx DIR`, `--precision`: the same backends as
`textlora predict`, measured side by side in predict_throughput.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_texts(run_dir: Path, limit: int = 2000) -> list[str]:
    """The raw test-split texts of the run's data (what a client would send)."""
    from textlora.config import load_config
    from textlora.data import read_source

    cfg = load_config(str(run_dir / "config.yaml"), [])
    frames, _ = read_source(cfg.data)
    frame = frames[cfg.data.test_split] if cfg.data.test_split in frames else next(iter(frames.values()))
    texts = [str(t) for t in frame[cfg.data.text_column].tolist() if isinstance(t, str) and t.strip()]
    return texts[:limit]


def start_server(run_dir: Path, port: int, batching: bool, extra: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "textlora.cli", "serve", str(run_dir), "--host", "127.0.0.1",
               "--port", str(port), *extra]
    if not batching:
        command.append("--no-batching")
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode}: {server.stdout.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    server.terminate()
    raise RuntimeError("server did not answer /health within 180 s")


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams, one per simulated client.

    Written by hand: httpx's AsyncClient stalls for seconds at this
    concurrency (against a server that only sleeps 1 s, httpx measured p99
    4.7 s where raw sockets measured 1.03 s), which would be charged to the
    server under test.
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post_json(self, path: str, payload: object) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        body = json.dumps(payload).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await self.writer.drain()
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = dict(line.split(":", 1) for line in head[1:] if ":" in line)
        headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
        data = await self.reader.readexactly(int(headers.get("content-length", 0)))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def load(url: str, texts: list[str], requests: int, concurrency: int, max_seconds: float,
               offset: int = 0) -> dict:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    latencies: list[float] = []
    codes: Counter = Counter()
    next_index = 0
    started = time.perf_counter()
    stop_at = started + max_seconds
    # The timeout only guards against a hung server: queued requests legitimately wait long under a burst.
    timeout = max_seconds + 300

    async def client() -> None:
        nonlocal next_index
        connection = Connection(host, int(port))
        while next_index < requests and time.perf_counter() < stop_at:
            i = next_index
            next_index += 1
            t0 = time.perf_counter()
            try:
                status, body = await asyncio.wait_for(
                    connection.post_json("/v1/predict", {"texts": [texts[(offset + i) % len(texts)]]}), timeout)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as err:
                codes[type(err).__name__] += 1
                connection.close()  # the next request reconnects
                continue
            if status == 200 and b'"predictions"' not in body:
                status = 0  # a 200 without predictions is an error too
            codes[str(status)] += 1
            if status == 200:
                latencies.append(time.perf_counter() - t0)
        connection.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    done = sum(codes.values())
    ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        "requests_sent": done,
        "stopped_by_time": done < requests,
        "ok": codes.get("200", 0),
        "errors": done - codes.get("200", 0),
        "status_codes": dict(codes),
        "wall_seconds": round(wall, 3),
        "throughput_rps": round(codes.get("200", 0) / wall, 2),
        "latency_ms": {"p50": round(p50, 1), "p95": round(p95, 1), "p99": round(p99, 1),
                       "mean": round(float(ms.mean()), 1), "max": round(float(ms.max()), 1)},
    }


def measure(run_dir: Path, texts: list[str], batching: bool, args, burst: int = 0) -> dict:
    port = free_port()
    extra = ["--max-batch", str(args.max_batch), "--pass-size", str(args.pass_size), "--max-wait-ms", str(args.max_wait_ms),
             *backend_arguments(args)]
    server = start_server(run_dir, port, batching, extra)
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(load(url, texts, min(64, args.requests), min(8, args.concurrency), 60))  # warm-up
        before = httpx.get(f"{url}/health").json()
        result = asyncio.run(load(url, texts, args.requests, args.concurrency, args.max_seconds))
        after = httpx.get(f"{url}/health").json()
        if burst:  # every request at once, as a crowd of clients would
            result["burst"] = asyncio.run(load(url, texts, burst, burst, args.max_seconds, offset=args.requests))
            result["burst"]["concurrency"] = burst
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    batches = after["batches"] - before["batches"]
    result["server"] = {
        "batches": batches,
        "mean_texts_per_batch": round((after["texts"] - before["texts"]) / batches, 2) if batches else None,
        "largest_batch": after["largest_batch"],
    }
    return result


def backend_arguments(args) -> list[str]:
    """The server's --backend / --onnx / --precision, as given (absent: the server's defaults, torch fp32)."""
    out = []
    for flag, value in (("--backend", args.backend), ("--onnx", args.onnx), ("--precision", args.precision)):
        if value is not None:
            out += [flag, str(value)]
    return out


def summary(r: dict) -> str:
    ms = r["latency_ms"]
    return (f"{r['ok']} ok, {r['errors']} errors, {r['throughput_rps']} req/s, "
            f"p50 {ms['p50']} ms, p95 {ms['p95']} ms, p99 {ms['p99']} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run folder (e.g. the MiniLM demo run)")
    parser.add_argument("--requests", type=int, default=1000, help="requests per mode (default 1000)")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent clients (default 64)")
    parser.add_argument("--max-seconds", type=float, default=150, help="stop sending after this long, per mode")
    parser.add_argument("--burst", type=int, default=1000,
                        help="then this many requests all at once on the batching server (0: none)")
    parser.add_argument("--max-batch", type=int, default=64, help="server --max-batch")
    parser.add_argument("--pass-size", type=int, default=16, help="server --pass-size")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="server --max-wait-ms")
    parser.add_argument("--backend", choices=("torch", "onnx"), help="server --backend (default torch)")
    parser.add_argument("--onnx", type=Path, help="server --onnx: the run's ONNX export folder")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), help="server --precision (torch backend)")
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_load.json", help="where the JSON goes")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    texts = run_texts(args.run_dir)
    info = json.loads((args.run_dir / "run.json").read_text())
    report = {
        "benchmark": "serve_load",
        "run": {"name": info.get("name"), "base_model": info.get("base_model"), "method": info.get("method"),
                "max_length": None},
        "load": {"requests": args.requests, "concurrency": args.concurrency, "texts_per_request": 1,
                 "distinct_texts": len(texts), "mean_text_chars": round(float(np.mean([len(t) for t in texts])), 1),
                 "max_seconds_per_mode": args.max_seconds, "max_batch": args.max_batch, "pass_size": args.pass_size,
                 "max_wait_ms": args.max_wait_ms, "network": "loopback (127.0.0.1)"},
        "server_backend": {"backend": args.backend or ("onnx" if args.onnx else "torch"),
                           "onnx": str(args.onnx) if args.onnx else None, "precision": args.precision or "fp32",
                           "arguments": backend_arguments(args)},
    }
    try:
        import yaml

        report["run"]["max_length"] = yaml.safe_load((args.run_dir / "config.yaml").read_text())["model"]["max_length"]
    except (OSError, KeyError, TypeError):
        pass
    for mode, batching in (("batching", True), ("no_batching", False)):
        print(f"{mode}: {args.requests} requests, {args.concurrency} concurrent ...", flush=True)
        report[mode] = measure(args.run_dir, texts, batching, args, burst=args.burst if batching else 0)
        r = report[mode]
        print(f"  {summary(r)}, texts/batch {r['server']['mean_texts_per_batch']}", flush=True)
        if "burst" in r:
            print(f"  burst of {args.burst} at once: {summary(r['burst'])}", flush=True)
    on, off = report["batching"], report["no_batching"]
    report["ratio"] = {
        "throughput_on_over_off": round(on["throughput_rps"] / off["throughput_rps"], 2) if off["throughput_rps"] else None,
        "p99_off_over_on": round(off["latency_ms"]["p99"] / on["latency_ms"]["p99"], 2) if on["latency_ms"]["p99"] else None,
    }
    print(f"throughput with batching / without: {report['ratio']['throughput_on_over_off']}x")
    write_result(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
