"""Helpers for the browser tests: Chromium settings, screenshots, signing in."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "webapp"))
from live_server import LiveServer  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
USERNAME = "alice"
PASSWORD = "correct horse battery"
ACTION_TIMEOUT_MS = 60_000


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def ensure_account(server: LiveServer) -> None:
    """Create the first account through the API when no earlier test signed up."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        session = client.get("/api/session").json()
        if session["first_user"]:
            r = client.post(
                "/api/auth/signup",
                json={"username": USERNAME, "password": PASSWORD},
                headers={"X-CSRF-Token": session["csrf_token"]},
            )
            assert r.status_code == 201, r.text


def log_in(page: Any) -> None:
    page.goto("/")
    page.fill("#auth-username", USERNAME)
    page.fill("#auth-password", PASSWORD)
    page.click("#auth-submit")
    page.wait_for_selector("body[data-ready='true']")
