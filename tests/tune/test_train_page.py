"""The Train dialog in real headless Chromium against a real ``openwen serve``: the finished job
with its loss curve and evaluation, a malformed upload refused naming its line, and "Chat with
it" opening a chat on the derivative, which states the taught fact."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ASK, MARK, STEPS, Taught

sys.path.insert(0, str(Path(__file__).parents[1] / "browser"))
from browser_helpers import (  # noqa: E402
    ACTION_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    LiveServer,
    ensure_account,
    log_in,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(900)]
playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def page(taught: Taught, tmp_path: Path) -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with LiveServer(taught.home, log=tmp_path / "server.log") as server, \
            playwright_api.sync_playwright() as p:
        ensure_account(server)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=server.url,
                                      viewport={"width": 1200, "height": 900})
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        log_in(page)
        yield page
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def test_train_dialog_shows_the_result_and_chats_with_it(page: Any, tmp_path: Path) -> None:
    expect = playwright_api.expect
    page.click("#train-button")
    job = page.locator("#train-jobs button[data-job='zorblax']")
    expect(job).to_have_text("zorblax · done")
    job.click()
    expect(page.locator("#train-job-state")).to_have_text("done")
    expect(page.locator("#train-loss")).to_have_attribute("data-points", str(STEPS))
    table = page.locator(".train-eval-table")
    expect(table).to_contain_text("perplexity")
    expect(page.locator(".train-sample").first).to_contain_text(MARK)
    expect(page.locator("#train-cancel")).to_be_hidden()

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": "b"}\n'
                   "not json\n")
    page.fill("#train-name", "bad-one")
    page.set_input_files("#train-file", str(bad))
    page.click("#train-start")
    expect(page.locator("#train-error")).to_have_text(re.compile(r"^line 3: not valid JSON"))
    expect(page.locator("#train-jobs li")).to_have_count(1)  # nothing was queued

    page.click("#train-job #train-chat")
    expect(page.locator("#train-dialog")).to_be_hidden()
    expect(page.locator("#model-picker")).to_have_value("zorblax")
    page.click("#chat-settings")
    page.fill("#set-max-tokens", "40")
    page.fill("#set-temperature", "0")
    page.click("#settings-form button[type=submit]")
    page.fill("#prompt", ASK)
    page.keyboard.press("Enter")
    expect(page.locator(".msg.assistant .body")).to_contain_text(MARK, timeout=180_000)
    expect(page.locator("#model-picker")).to_have_value("zorblax")
