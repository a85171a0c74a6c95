"""`textlora ui` driven in a real headless Chromium (Debian's, through Playwright).

Skips, saying why, when Gradio, Playwright or the browser is missing; under CI
(CI=true) that is a failure instead, so a browser that failed to install cannot
leave CI green. `.ci/run` installs the browser with apt-get.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("TEXTLORA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# The machines this runs on have no internet: without these flags Chromium
# spends its start-up on sign-in, updates and QUIC probes that time out.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
REVIEW = "the movie was great, the actor was brilliant and the story wonderful"


def _missing() -> str | None:
    import importlib.util

    for module, install in (("gradio", "pip install gradio"), ("playwright", "pip install playwright")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed ({install}, or pip install -e '.[test]')"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM}: apt-get install chromium (as .ci/run does) or set TEXTLORA_CHROMIUM"
    return None


@pytest.fixture(scope="session", autouse=True)
def browser_present():
    """Autouse and session-scoped (for this module's tests only): checked before any other fixture
    of theirs, even the session's tiny_run, trains or launches anything."""
    missing = _missing()
    if missing is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{missing}; under CI=true the browser tests must run, not skip", pytrace=False)
    pytest.skip(missing)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ui_url(tiny_run):
    from textlora.ui import launch_ui

    port = free_port()
    page = launch_ui(str(tiny_run), port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    page.close()


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh --user-data-dir
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context.set_default_timeout(30_000)
        yield context.new_page()
        context.close()


def _shown(page) -> tuple[str, dict[str, int]]:
    """The label in the page's big heading, and the percentage shown for each class."""
    label = page.locator("#prediction [data-testid='label-output-value']").inner_text().strip()
    shown = {}
    for row in page.locator("#prediction [data-testid$='-confidence-set']").all():
        name = row.locator("dt").inner_text().strip()
        shown[name] = int(re.sub(r"\D", "", row.locator("dd").inner_text()))
    return label, shown


def test_page_predicts_like_the_run(ui_url, browser_page, tiny_run, tmp_path):
    from playwright.sync_api import expect

    from textlora.predict import Predictor

    predictor = Predictor.from_run(tiny_run)
    want = predictor.predict([REVIEW])[0]
    page = browser_page
    page.goto(ui_url, wait_until="domcontentloaded")
    expect(page).to_have_title(f"textlora: {tiny_run.name}")

    # Headline metrics from metrics.json are on the page.
    final = json.loads((tiny_run / "metrics.json").read_text())["final"]
    expect(page.locator("#metrics")).to_contain_text(f"{final['accuracy']:.3f}")
    expect(page.locator("#metrics")).to_contain_text("TF-IDF")

    page.locator("#text textarea").fill(REVIEW)
    page.get_by_role("button", name="Predict").click()
    rows = page.locator("#prediction [data-testid$='-confidence-set']")
    expect(rows).to_have_count(len(predictor.label_names))
    label, shown = _shown(page)
    assert label == want.label
    assert set(shown) == set(predictor.label_names)
    for name, percent in shown.items():
        assert abs(percent - 100 * want.probabilities[name]) <= 0.5 + 1e-6  # Gradio rounds to whole percent

    screenshot = tmp_path / "textlora-ui.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")


def test_example_fills_the_box_and_predicts(ui_url, browser_page, tiny_run):
    from playwright.sync_api import expect

    from textlora.predict import Predictor
    from textlora.runs import open_run
    from textlora.ui import examples_for

    predictor = Predictor.from_run(tiny_run)
    examples = examples_for(open_run(tiny_run))  # the run's own short test texts, one per class
    assert len(examples) == 2
    example = examples[1]
    want = predictor.predict([example])[0]
    page = browser_page
    page.goto(ui_url, wait_until="domcontentloaded")
    page.get_by_text(example[:30]).first.click()
    expect(page.locator("#text textarea")).to_have_value(example)
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#prediction [data-testid='label-output-value']")).to_have_text(want.label)
