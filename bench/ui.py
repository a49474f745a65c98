"""The web app in a real browser: first-load page weight, and time from send to first token painted.

Starts a real openwen server (subprocess, bundled model, fresh data dir in a temporary directory)
and headless Chromium (``/usr/bin/chromium``, driven by Playwright), then:

- first load: opens ``/`` with an empty cache and sums the bytes transferred (compressed bodies
  plus headers) of every response until the page is ready; target < 300 KB;
- send to first token: signs in, sends a message and times, in the page, from the Enter key to
  the frame after the first answer text reached the DOM; the server's own time to first token
  (from the stored answer's metadata) is shown beside it. One warm-up run loads the model first.

    .venv/bin/python bench/ui.py [--runs 5] [--max-tokens 16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "webapp"))
from live_server import LiveServer  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TARGET_BYTES = 300 * 1024
USERNAME, PASSWORD = "bench", "bench password"
PROMPT = "What is the capital of France?"

# Installed in the page: stamp the Enter key, then the frame after the first answer text lands.
PROBE = """() => {
  window.__sent = null; window.__painted = null;
  document.querySelector('#prompt').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) window.__sent = performance.now();
  }, { capture: true, once: true });
  const observer = new MutationObserver(() => {
    const body = document.querySelector('.msg.assistant.streaming .body');
    if (body && body.textContent.trim() && window.__painted === null) {
      window.__painted = 0;
      observer.disconnect();
      requestAnimationFrame(() => { window.__painted = performance.now(); });
    }
  });
  observer.observe(document.querySelector('#thread'), { childList: true, subtree: true,
                                                        characterData: true });
}"""


def first_load(browser: Any, url: str) -> tuple[int, int, dict[str, int]]:
    """(bytes transferred, response count, bytes per kind) of a cold first load of ``/``."""
    context = browser.new_context(base_url=url)
    page = context.new_page()
    responses: list[Any] = []
    page.on("requestfinished", lambda request: responses.append(request))
    page.goto("/", wait_until="networkidle")
    page.wait_for_selector("#auth-view:not([hidden]), #app:not([hidden])")
    total = 0
    kinds: dict[str, int] = {}
    for request in responses:
        sizes = request.sizes()
        size = sizes["responseBodySize"] + sizes["responseHeadersSize"]
        total += size
        kind = request.resource_type
        kinds[kind] = kinds.get(kind, 0) + size
    context.close()
    return total, len(responses), kinds


def sign_up(url: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        token = client.get("/api/session").json()["csrf_token"]
        r = client.post("/api/auth/signup", json={"username": USERNAME, "password": PASSWORD},
                        headers={"X-CSRF-Token": token})
        r.raise_for_status()


def send_once(page: Any, max_tokens: int) -> tuple[float, float]:
    """(ms from Enter to first token painted, server ttft ms) of one new chat."""
    page.keyboard.press("Control+Shift+O")
    page.click("#chat-settings")
    page.fill("#set-max-tokens", str(max_tokens))
    page.click("#settings-form button[type=submit]")
    page.evaluate(PROBE)
    page.fill("#prompt", PROMPT)
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.__painted > 0", timeout=300_000, polling="raf")
    painted = page.evaluate("() => window.__painted - window.__sent")
    page.wait_for_selector(".msg.assistant:not(.streaming) .meta", timeout=300_000)
    conversation = page.url.rsplit("/", 1)[-1]
    data = page.evaluate(
        "async (id) => (await fetch('/api/conversations/' + id)).json()", conversation)
    server_ttft = data["messages"][-1]["metadata"].get("timings", {}).get("ttft_ms", 0.0)
    return float(painted), float(server_ttft)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, LiveServer(Path(tmp) / "home") as server, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        total, count, kinds = first_load(browser, server.url)
        verdict = "OK" if total < TARGET_BYTES else "OVER TARGET"
        print(f"first load: {total / 1024:.1f} KB transferred in {count} responses "
              f"(target < {TARGET_BYTES // 1024} KB: {verdict})")
        for kind, size in sorted(kinds.items(), key=lambda kv: -kv[1]):
            print(f"  {kind:<12} {size / 1024:7.1f} KB")

        sign_up(server.url)
        # CSP off only so the harness can poll the page; it changes no timing.
        context = browser.new_context(base_url=server.url, bypass_csp=True)
        page = context.new_page()
        page.goto("/")
        page.fill("#auth-username", USERNAME)
        page.fill("#auth-password", PASSWORD)
        page.click("#auth-submit")
        page.wait_for_selector("body[data-ready='true']")
        started = time.perf_counter()
        warm_painted, _ = send_once(page, args.max_tokens)
        print(f"warm-up (loads the model): first token painted after {warm_painted:.0f} ms "
              f"({time.perf_counter() - started:.1f} s for the whole answer)")
        painted, server = [], []
        for _ in range(args.runs):
            ui_ms, server_ms = send_once(page, args.max_tokens)
            painted.append(ui_ms)
            server.append(server_ms)
        print(f"send -> first token painted, {args.runs} runs: median "
              f"{statistics.median(painted):.0f} ms (min {min(painted):.0f}, "
              f"max {max(painted):.0f})")
        print(f"  server time to first token: median {statistics.median(server):.0f} ms; "
              f"the rest is HTTP, storage and painting: "
              f"{statistics.median(painted) - statistics.median(server):.0f} ms")
        context.close()
        browser.close()


if __name__ == "__main__":
    main()
