"""Browser fixtures: a real openwen server (subprocess, bundled model, fresh data dir) and headless
Chromium from the system (``/usr/bin/chromium``) driven by Playwright. Screenshots go to
``test-artifacts/screenshots/``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import (
    ACTION_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    LiveServer,
    ensure_account,
    log_in,
)

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("browser-home")) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context_options() -> dict[str, Any]:
    return {"viewport": {"width": 1200, "height": 800}}


@pytest.fixture
def page(browser: Any, server: LiveServer, context_options: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(base_url=server.url, **context_options)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def signed_in(page: Any, server: LiveServer) -> Any:
    ensure_account(server)
    log_in(page)
    return page
