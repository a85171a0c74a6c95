"""`textlora serve`: two adapters on one tiny BERT behind a real uvicorn on loopback.

Answers must equal those of the run folders (via Predictor), limits and auth
must give the right status codes, and concurrent requests must share
forward passes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from conftest import FILLER, synthetic_reviews, tiny_overrides  # noqa: E402
from textlora.errors import TextloraError  # noqa: E402
from textlora.serve import MicroBatcher, ServeSettings, create_app, load_engine, parse_run_args  # noqa: E402

TOKEN = "s3cret-token"
TEXTS = [
    "the movie was great and the actor was brilliant",
    "awful plot, boring scene, the worst film",
    "a story",
    "!",
    "quite a wonderful and superb film really " * 5,
]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def three_class_run(tmp_path_factory, tiny_bert_dir) -> Path:
    """A second adapter on the same tiny base: another seed and three classes, not two."""
    from textlora.config import load_config
    from textlora.pipeline import run_experiment

    import pandas as pd

    frame = synthetic_reviews(120, seed=1)
    frame["label"] = frame["label"].map({"negative": "bad", "positive": "good"})
    neutral = pd.DataFrame({"text": [" ".join(FILLER[i % 7 : i % 7 + 4 + i % 5]) for i in range(60)], "label": "meh"})
    data = tmp_path_factory.mktemp("data3") / "three.csv"
    pd.concat([frame, neutral]).to_csv(data, index=False)
    out = tmp_path_factory.mktemp("runs3")
    cfg = load_config(None, tiny_overrides(tiny_bert_dir, str(data), out, name="three", seed=1,
                                             **{"train.epochs": 1, "baselines": "[tfidf]"}))  # kept cheap: ~5 s
    return run_experiment(cfg, quiet=True, say=lambda *_: None)


@pytest.fixture(scope="module")
def four_class_run(tmp_path_factory, tiny_bert_dir) -> Path:
    """A third adapter on the same base: four classes, rank 2 on other targets (key and the
    feed-forward input), and the pooler trained and saved beside the head."""
    from textlora.config import load_config
    from textlora.pipeline import run_experiment

    frame = synthetic_reviews(120, seed=2)
    frame["label"] = [["w", "x", "y", "z"][i % 4] for i in range(len(frame))]
    data = tmp_path_factory.mktemp("data4") / "four.csv"
    frame.to_csv(data, index=False)
    out = tmp_path_factory.mktemp("runs4")
    cfg = load_config(None, tiny_overrides(tiny_bert_dir, str(data), out, name="four", seed=2, baselines="[]",
                                           **{"train.epochs": 1, "lora.r": 2,
                                              "lora.target_modules": "[key,intermediate.dense]",
                                              "lora.modules_to_save": "[pooler]"}))
    return run_experiment(cfg, quiet=True, say=lambda *_: None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """uvicorn in a background thread, on a free loopback port."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


SETTINGS = ServeSettings(max_batch=16, pass_size=4, max_wait_ms=20, max_texts=8, max_chars=400, max_body_bytes=8192, token=TOKEN)


@pytest.fixture(scope="module")
def engine(tiny_run, three_class_run):
    return load_engine([("sentiment", tiny_run), ("three", three_class_run)], pass_size=SETTINGS.pass_size)


@pytest.fixture(scope="module")
def server(engine):
    with LiveServer(create_app(engine, SETTINGS)) as live:
        yield live


@pytest.fixture()
def client(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
        yield c


# --------------------------------------------------------------------------- answers


def test_two_adapters_answer_as_their_run_folders(client, tiny_run, three_class_run):
    from textlora.predict import Predictor

    for name, run in (("sentiment", tiny_run), ("three", three_class_run)):
        expected = Predictor.from_run(run).predict(TEXTS)  # merged adapter, loaded alone
        response = client.post("/v1/predict", json={"texts": TEXTS, "adapter": name})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["adapter"] == name
        assert len(body["predictions"]) == len(TEXTS)
        for got, want in zip(body["predictions"], expected):
            assert got["label"] == want.label
            assert list(got["probabilities"]) == list(want.probabilities)  # label names, in label-id order
            for label, p in want.probabilities.items():
                assert got["probabilities"][label] == pytest.approx(p, abs=1e-5)
            assert got["confidence"] == pytest.approx(max(want.probabilities.values()), abs=1e-5)
            assert sum(got["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
    labels = {name: sorted(client.post("/v1/predict", json={"texts": ["a"], "adapter": name}).json()["predictions"][0]["probabilities"])
              for name in ("sentiment", "three")}
    assert labels == {"sentiment": ["negative", "positive"], "three": ["bad", "good", "meh"]}
    # No adapter named: the first run given.
    default = client.post("/v1/predict", json={"texts": TEXTS[:1]}).json()
    assert default["adapter"] == "sentiment"


def test_models_health_and_docs(client, server, tiny_run, three_class_run):
    models = client.get("/v1/models").json()
    assert models["default_adapter"] == "sentiment"
    assert models["base_model"] == json.loads((tiny_run / "run.json").read_text())["base_model"]
    by_name = {a["name"]: a for a in models["adapters"]}
    assert set(by_name) == {"sentiment", "three"}
    assert by_name["three"]["labels"] == ["bad", "good", "meh"]
    for name, run in (("sentiment", tiny_run), ("three", three_class_run)):
        final = json.loads((run / "metrics.json").read_text())["final"]
        assert by_name[name]["metrics"]["test"]["accuracy"] == final["accuracy"]
        assert by_name[name]["metrics"]["test"]["f1_macro"] == final["f1_macro"]
        assert "tfidf" in by_name[name]["metrics"]["baselines"]
    assert models["limits"] == {"max_texts": 8, "max_chars": 400, "max_body_bytes": 8192}
    # Health, docs and the schema need no token.
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok" and health["adapters"] == 2
    assert httpx.get(f"{server.url}/docs").status_code == 200
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/v1/predict", "/v1/models", "/health"} <= set(schema["paths"])


@pytest.fixture(scope="module")
def mixed_runs(tiny_run, three_class_run, four_class_run) -> dict[str, Path]:
    """2, 3 and 4 classes; rank 8 on query+value (two of them) and rank 2 on key+intermediate.dense."""
    return {"two": tiny_run, "three": three_class_run, "four": four_class_run}


@pytest.fixture(scope="module")
def reference_probs(mixed_runs) -> dict:
    from textlora.predict import Predictor

    return {name: Predictor.from_run(run).predict_probs(TEXTS) for name, run in mixed_runs.items()}


ORDERS = [order for size in (2, 3) for order in itertools.permutations(["two", "three", "four"], size)]


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_every_order_of_adapters_serves_each_as_its_run(mixed_runs, reference_probs, order):
    """Whatever comes first (its head shape is the base's), after the warm-up every adapter answers
    with its own head and adapter: the probabilities of its run folder loaded alone."""
    engine = load_engine([(name, mixed_runs[name]) for name in order], pass_size=4)
    engine.warm_up()  # used to run every predictor under whichever adapter peft left active
    for name in [*order, *reversed(order), order[0]]:  # every switch, both ways
        got = np.array([list(p.probabilities.values()) for p in engine.predict(name, TEXTS)])
        assert got.shape == reference_probs[name].shape
        assert np.abs(got - reference_probs[name]).max() < 1e-5, name


def test_serve_starts_with_a_three_class_adapter_before_a_two_class_one(monkeypatch, capsys, mixed_runs):
    """`textlora serve drugs=RUN3 imdb=RUN2` died in the warm-up (IndexError in Predictor.predict)."""
    import uvicorn

    from textlora.serve import serve

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.append(app))
    serve([f"drugs={mixed_runs['three']}", f"imdb={mixed_runs['two']}", f"other={mixed_runs['four']}"])
    assert len(started) == 1
    assert "loaded 3 adapter(s)" in capsys.readouterr().out


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize("texts, detail", [
    ([""], "texts[0] is empty; "),
    (["fine", "   "], "texts[1] is empty; "),
    (["fine", "\n\t", "ok", ""], "texts[1] is empty (and 1 more); "),
])
def test_empty_texts_get_422_naming_the_index(client, texts, detail):
    response = client.post("/v1/predict", json={"texts": texts})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(detail)


def test_token_is_required(server):
    ok = {"texts": ["fine"]}
    assert httpx.post(f"{server.url}/v1/predict", json=ok).status_code == 401
    wrong = httpx.post(f"{server.url}/v1/predict", json=ok, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in wrong.json()["detail"]
    basic = httpx.post(f"{server.url}/v1/predict", json=ok, headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    assert httpx.get(f"{server.url}/v1/models").status_code == 401


def test_oversized_requests_get_413_naming_the_limit(client):
    too_many = client.post("/v1/predict", json={"texts": ["x"] * 9})
    assert too_many.status_code == 413 and "--max-texts" in too_many.json()["detail"] and "8" in too_many.json()["detail"]
    too_long = client.post("/v1/predict", json={"texts": ["ok", "y" * 401]})
    assert too_long.status_code == 413 and "--max-chars" in too_long.json()["detail"]
    big_body = client.post("/v1/predict", json={"texts": ["z" * 300] * 40})
    assert big_body.status_code == 413 and "--max-body-bytes" in big_body.json()["detail"]

    def chunks():  # chunked upload: no Content-Length to check up front
        yield b'{"texts": ["'
        for _ in range(20):
            yield b"w" * 1000
        yield b'"]}'

    chunked = client.post("/v1/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413 and "--max-body-bytes" in chunked.json()["detail"]


@pytest.mark.parametrize("body", [
    b"{not json",
    b'{"texts": "one string, not a list"}',
    b'{"texts": [1, 2]}',
    b'{"texts": []}',
    b'{"text": ["misspelt key"]}',
    b'{"texts": ["ok"], "adapter": "sentiment", "extra": 1}',
    b"[]",
])
def test_malformed_requests_get_422(client, body):
    response = client.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("adapter", ["nope", "../../etc/passwd", "/tmp", "sentiment/../three", ""])
def test_unknown_adapter_is_404_never_a_path(client, adapter):
    response = client.post("/v1/predict", json={"texts": ["fine"], "adapter": adapter})
    assert response.status_code == 404
    assert "served: sentiment, three" in response.json()["detail"]


# --------------------------------------------------------------------------- batching


def test_concurrent_requests_share_forward_passes(server, client):
    before = client.get("/health").json()
    expected = {t: client.post("/v1/predict", json={"texts": [t], "adapter": "three"}).json()["predictions"][0]
                for t in TEXTS}
    n = 64

    async def burst():
        async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"},
                                     timeout=60, limits=httpx.Limits(max_connections=n)) as ac:
            async def one(i):
                adapter = "three" if i % 4 else "sentiment"  # mixed adapters in one burst
                return adapter, TEXTS[i % len(TEXTS)], await ac.post(
                    "/v1/predict", json={"texts": [TEXTS[i % len(TEXTS)]], "adapter": adapter})
            return await asyncio.gather(*(one(i) for i in range(n)))

    results = asyncio.run(burst())
    assert all(r.status_code == 200 for _, _, r in results)
    for adapter, text, r in results:
        got = r.json()["predictions"][0]
        assert r.json()["adapter"] == adapter
        if adapter == "three":  # same answer alone or batched with others
            assert got["label"] == expected[text]["label"]
            assert got["confidence"] == pytest.approx(expected[text]["confidence"], abs=1e-5)
    after = client.get("/health").json()
    requests = after["requests"] - before["requests"]
    batches = after["batches"] - before["batches"]
    assert requests == n + len(TEXTS)  # the burst and the singles above (health is not counted)
    assert batches < requests * 0.75  # gathered: far fewer passes than requests
    assert after["largest_batch"] <= SETTINGS.max_batch
    assert after["pending_texts"] == 0


def test_micro_batcher_groups_by_adapter_and_splits_results():
    calls: list[tuple[str, list[str]]] = []

    def fake_forward(adapter: str, texts: list[str]):
        calls.append((adapter, list(texts)))
        time.sleep(0.01)
        return [f"{adapter}:{t}" for t in texts]

    async def scenario(enabled: bool):
        batcher = MicroBatcher(fake_forward, max_batch=5, max_wait_ms=30, enabled=enabled)
        batcher.start()
        jobs = [("a" if i % 3 else "b", [f"t{i}-{k}" for k in range(1 + i % 2)]) for i in range(12)]
        results = await asyncio.gather(*(batcher.submit(a, t) for a, t in jobs))
        await batcher.stop()
        return jobs, results, batcher

    jobs, results, batcher = asyncio.run(scenario(True))
    for (adapter, texts), result in zip(jobs, results):
        assert result == [f"{adapter}:{t}" for t in texts]  # each request gets its own rows back
    assert all(len(texts) <= 5 for _, texts in calls)
    assert len(calls) < len(jobs)
    assert sum(len(t) for _, t in calls) == sum(len(t) for _, t in jobs)
    assert batcher.stats.requests == 12 and batcher.stats.batches == len(calls) and batcher.pending_texts == 0

    calls.clear()
    jobs, results, _ = asyncio.run(scenario(False))
    assert [tuple(c) for c in calls] == [(a, t) for a, t in jobs]  # off: one pass per request, in order


def test_a_failing_forward_pass_fails_only_its_requests():
    def forward(adapter, texts):
        if "boom" in texts:
            raise RuntimeError("forward failed")
        return texts

    async def scenario():
        batcher = MicroBatcher(forward, max_batch=1, max_wait_ms=0)
        batcher.start()
        bad, good = await asyncio.gather(batcher.submit("a", ["boom"]), batcher.submit("a", ["fine"]),
                                         return_exceptions=True)
        await batcher.stop()
        return bad, good

    bad, good = asyncio.run(scenario())
    assert isinstance(bad, RuntimeError) and good == ["fine"]


# --------------------------------------------------------------------------- start-up checks


def _copy_run(run: Path, to: Path, edit_info=None, edit_config=None) -> Path:
    import yaml

    shutil.copytree(run, to)
    if edit_info:
        info = json.loads((to / "run.json").read_text())
        edit_info(info)
        (to / "run.json").write_text(json.dumps(info))
    if edit_config:
        config = yaml.safe_load((to / "config.yaml").read_text())
        edit_config(config)
        (to / "config.yaml").write_text(yaml.safe_dump(config))
    return to


def test_adapters_on_different_bases_are_refused(tiny_run, tmp_path):
    def other_base(info):
        info["base_model"] = info["base_model_source"] = "prajjwal1/bert-tiny"
        info["base_signature"] = {**info["base_signature"], "hidden_size": 128}

    other = _copy_run(tiny_run, tmp_path / "other", edit_info=other_base)
    with pytest.raises(TextloraError, match="different base models.*separate servers"):
        load_engine([("a", tiny_run), ("b", other)])


def test_unsafe_runs_are_refused(tiny_run, tmp_path):
    remote = _copy_run(tiny_run, tmp_path / "remote", edit_config=lambda c: c["model"].update(trust_remote_code=True))
    with pytest.raises(TextloraError, match="trust_remote_code"):
        load_engine([("remote", remote)])
    pickled = _copy_run(tiny_run, tmp_path / "pickled")
    (pickled / "adapter" / "adapter_model.bin").write_bytes(b"not read")
    with pytest.raises(TextloraError, match="pickled weights"):
        load_engine([("pickled", pickled)])


def test_run_names(tiny_run, tmp_path):
    assert parse_run_args([str(tiny_run), f"other={tiny_run}"]) == [(tiny_run.name, tiny_run), ("other", tiny_run)]
    with pytest.raises(TextloraError, match="NAME=RUN_DIR"):
        parse_run_args([str(tiny_run), str(tiny_run)])


def test_cli_errors_are_one_line(tmp_path, capsys):
    from textlora.cli import main

    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error: run folder")
    assert main(["serve", str(tmp_path), "--max-batch", "0"]) == 2
    assert "--max-batch must be at least 1" in capsys.readouterr().err


def test_bf16_engine_serves_every_adapter_in_bf16(engine, tiny_run, three_class_run):
    """Two adapters on one base, cast once after attaching both: answers match the fp32 engine's labels."""
    import torch

    texts = ["great superb wonderful loved the film", "awful boring terrible dull plot"]
    fast = load_engine([("sentiment", tiny_run), ("three", three_class_run)], pass_size=4, precision="bf16")
    assert {p.dtype for p in fast.model.parameters()} == {torch.bfloat16}
    for name in ("sentiment", "three"):
        want = [p.label for p in engine.predict(name, texts)]
        assert [p.label for p in fast.predict(name, texts)] == want
