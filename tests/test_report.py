"""`textlora report`: the HTML page and its markdown twin hold the runs' real numbers, every image
is embedded, and a real browser (headless Chromium) renders it."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import tiny_overrides
from textlora.cli import main
from textlora.tables import EPOCH_COLUMNS, fmt

PNG = b"\x89PNG\r\n\x1a\n"


class Tables(HTMLParser):
    """Every <table> as rows of cell texts, and every <img> src."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(html_text: str) -> Tables:
    parser = Tables()
    parser.feed(html_text)
    return parser


def epoch_rows(metrics) -> list[list[str]]:
    return [[fmt(e.get(k)) for _, k in EPOCH_COLUMNS] for e in metrics["epochs"]]


@pytest.fixture(scope="module")
def report(tiny_run, tiny_bert_dir, reviews_csv, tmp_path_factory):
    """A report of the shared tiny run and a two-point rank sweep."""
    tmp = tmp_path_factory.mktemp("report")
    settings = {"train.epochs": 2, "data.n_train": 48, "data.n_eval": 32, "data.validation_size": 16,
                "baselines": "[]"}
    overrides = tiny_overrides(tiny_bert_dir, reviews_csv, tmp / "unused", **settings)
    sweep_dir = tmp / "rank-sweep"
    assert main(["sweep", *[a for o in overrides for a in ("--set", o)], "--grid", "lora.r=2,4",
                 "--out", str(sweep_dir), "--quiet"]) == 0
    out = tmp / "report"
    assert main(["report", str(tiny_run), str(sweep_dir), "--out", str(out)]) == 0
    return out, tiny_run, sweep_dir


def test_html_report_holds_the_numbers_of_every_run(report):
    out, tiny_run, sweep_dir = report
    page = (out / "index.html").read_text()
    parsed = parse(page)
    metrics = json.loads((tiny_run / "metrics.json").read_text())

    # Seed 000's per-epoch table of the tiny run, cell for cell.
    epoch_table = [t for t in parsed.tables if t[0][:3] == ["Epoch", "Training Loss", "Validation Loss"]]
    assert len(epoch_table) == 3  # the tiny run and both sweep runs
    assert epoch_table[0][1:] == epoch_rows(metrics)
    # Its evaluation comparison: baselines and the fine-tuned row.
    comparison = next(t for t in parsed.tables if t[0][0] == "Metric")
    assert comparison[0] == ["Metric", "TF-IDF + LR", "Pre-adaptation", "Fine-tuned (lora)"]
    accuracy = next(row for row in comparison if row[0] == "Accuracy")
    assert accuracy[1:] == [fmt(metrics["baselines"]["tfidf"]["accuracy"]),
                            fmt(metrics["baselines"]["pre_adaptation"]["accuracy"]), fmt(metrics["final"]["accuracy"])]
    # The comparison of runs lists all three runs with their test accuracy.
    runs = parsed.tables[0]
    assert runs[0][0] == "run" and {row[0] for row in runs[1:]} == {"tiny", "r=2", "r=4"}
    column = runs[0].index("test accuracy")
    for row in runs[1:]:
        folder = tiny_run if row[0] == "tiny" else sweep_dir / "runs" / row[0]
        final = json.loads((folder / "metrics.json").read_text())["final"]
        assert row[column] == fmt(final["accuracy"])
    # The sweep table, sorted by the validation metric.
    sweep = next(t for t in parsed.tables if t[0][:3] == ["run", "r", "validation accuracy"])
    scores = [float(row[2]) for row in sweep[1:]]
    assert len(scores) == 2 and scores == sorted(scores, reverse=True)


def test_html_report_is_self_contained(report):
    out, _, _ = report
    page = (out / "index.html").read_text()
    parsed = parse(page)
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:|images/)""", page)
    # All runs: time vs accuracy, loss curves, comparison bars; the sweep: metric and time vs r,
    # parameters vs r and the same three for its runs; per run: learning curves + confusion matrix.
    assert len(parsed.images) == 3 + 6 + 3 * 2
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)


def test_markdown_twin_matches(report):
    out, tiny_run, _ = report
    markdown = (out / "report.md").read_text()
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    for row in epoch_rows(metrics):
        assert "| " + " | ".join(row) + " |" in markdown
    links = re.findall(r"!\[[^\]]*\]\((images/[^)]+)\)", markdown)
    assert len(links) == 15
    for link in links:
        assert (out / link).read_bytes().startswith(PNG)
    assert len(list((out / "images").glob("*.png"))) == 15


def test_report_of_nothing_is_a_user_error(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "holds no finished run or sweep folder" in capsys.readouterr().err


def find_browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def browser(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(find_browser() is None,
                    reason="no headless browser: install chromium (apt-get install chromium) to render the report")
def test_chromium_renders_the_report(report, tmp_path):
    import numpy as np
    from matplotlib.image import imread

    out, tiny_run, _ = report
    binary = find_browser()
    url = (out / "index.html").resolve().as_uri()
    dom = browser(binary, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The browser's DOM holds the per-epoch table as a table, cell for cell.
    rendered = parse(dom.stdout)
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert any(t[1:] == epoch_rows(metrics) for t in rendered.tables if t and t[0][0] == "Epoch")

    shot = tmp_path / "report.png"
    result = browser(binary, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    ink = (pixels.min(axis=2) < 0.9).mean()
    assert ink > 0.03, f"screenshot is nearly blank ({ink:.1%} non-white)"
    # Matplotlib's blue lines and bars: the embedded images were decoded and painted.
    blue = (pixels[..., 2] - pixels[..., 0] > 0.3) & (pixels[..., 2] > 0.5)
    assert blue.sum() > 2000, f"only {blue.sum()} blue pixels: the plots did not render"
    assert np.isfinite(pixels).all()
