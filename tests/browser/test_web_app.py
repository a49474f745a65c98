"""The web app in a real headless Chromium against a real server on the bundled model.

The tests run in file order on one server: the first signs up the first account; the others sign
in to it (creating it through the API when run alone).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import PASSWORD, USERNAME, ensure_account, log_in, screenshot
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GENERATION_MS = 180_000  # answers on a busy 2-core machine: a safety net, not a measurement
COUNTING = "Count from 1 to 300, writing each number on its own line."


def set_max_tokens(page: Any, value: int) -> None:
    page.click("#chat-settings")
    page.fill("#set-max-tokens", str(value))
    page.fill("#set-temperature", "0")
    page.click("#settings-form button[type=submit]")
    expect(page.locator("#settings-dialog")).not_to_be_visible()


def send(page: Any, text: str) -> None:
    page.fill("#prompt", text)
    page.keyboard.press("Enter")


# Painted content: text, or markup that shows without text of its own (the Markdown "1. 2. 3."
# is three nested lists whose numbers are list markers, not text).
PAINTED = """selector => [...document.querySelectorAll(selector)].some(body =>
    body.textContent.trim() !== "" || body.querySelector("li, pre, hr, img, table") !== null)"""


def wait_painted(page: Any, selector: str) -> None:
    """Wait until an element matching `selector` shows some of the answer."""
    page.wait_for_function(PAINTED, arg=selector, timeout=GENERATION_MS)


def wait_streaming_text(page: Any) -> Any:
    """The answer being streamed, once some of it is painted."""
    wait_painted(page, ".msg.assistant.streaming .body")
    return page.locator(".msg.assistant.streaming .body")


def wait_answer_done(page: Any) -> None:
    expect(page.locator(".msg.streaming")).to_have_count(0, timeout=GENERATION_MS)


def test_sign_up_log_out_and_log_in(page: Any) -> None:
    page.goto("/")
    expect(page.locator("#auth-intro")).to_contain_text("first account")
    screenshot(page, "01-sign-up")
    page.fill("#auth-username", USERNAME)
    page.fill("#auth-password", PASSWORD)
    page.click("#auth-submit")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#user-name")).to_have_text(USERNAME)
    expect(page.locator("#admin-button")).to_be_visible()  # the first user is the admin

    page.click("#logout-button")
    expect(page.locator("#auth-view")).to_be_visible()
    expect(page.locator("#auth-submit")).to_have_text("Sign in")
    page.fill("#auth-username", USERNAME)
    page.fill("#auth-password", "not my password")
    page.click("#auth-submit")
    expect(page.locator("#auth-error")).to_contain_text("wrong username or password")
    screenshot(page, "02-wrong-password")
    page.fill("#auth-password", PASSWORD)
    page.click("#auth-submit")
    expect(page.locator("#app")).to_be_visible()


def test_send_a_message_and_watch_the_answer_stream(signed_in: Any) -> None:
    page = signed_in
    set_max_tokens(page, 40)
    send(page, "Write a short poem about the sea.")
    expect(page.locator(".msg.user .body")).to_have_text("Write a short poem about the sea.")
    body = wait_streaming_text(page)
    expect(page.locator("#stop")).to_be_visible()
    first_seen = body.inner_text()
    screenshot(page, "03-streaming")
    wait_answer_done(page)
    final = page.locator(".msg.assistant .body").inner_text()
    assert final.startswith(first_seen.strip()[:5])
    expect(page.locator(".msg.assistant .meta")).to_contain_text("tokens")
    expect(page.locator("#send")).to_be_visible()
    assert re.search(r"/c/[\w-]+$", page.url)
    expect(page.locator(".conversation-item.active")).to_contain_text("Write a short poem")
    screenshot(page, "04-answered")
    page.reload()  # it was stored
    expect(page.locator(".msg.assistant .body")).to_have_text(final)


def test_stop_regenerate_and_switch_branches(signed_in: Any) -> None:
    page = signed_in
    set_max_tokens(page, 400)
    send(page, COUNTING)
    wait_streaming_text(page)
    page.keyboard.press("Escape")
    stopped = page.locator(".msg.assistant .badge")
    expect(stopped).to_have_text("stopped", timeout=GENERATION_MS)
    # textContent, as to_have_text compares (inner_text adds layout newlines around code blocks)
    first_answer = page.locator(".msg.assistant .body").text_content() or ""
    screenshot(page, "05-stopped")

    page.click(".msg.assistant [aria-label='Regenerate answer']")
    wait_streaming_text(page)
    page.click("#stop")
    expect(page.locator(".msg.assistant .badge")).to_have_text("stopped", timeout=GENERATION_MS)
    branch = page.locator(".msg.assistant .branch span")
    expect(branch).to_have_text("2/2")
    screenshot(page, "06-regenerated")

    page.click(".msg.assistant [aria-label='Previous version']")
    expect(branch).to_have_text("1/2")
    expect(page.locator(".msg.assistant .body")).to_have_text(first_answer)
    page.reload()  # the chosen branch is remembered
    expect(page.locator(".msg.assistant .branch span")).to_have_text("1/2")

    page.click(".msg.user [aria-label='Edit message']")
    page.fill(".msg.user textarea", "Count from 1 to 5.")
    page.keyboard.press("Enter")
    # The edited question replaces the old one (and its answer) at once; the short new answer may
    # be whole before a poll could see it streaming.
    expect(page.locator(".msg.user .body")).to_have_text("Count from 1 to 5.")
    wait_answer_done(page)
    wait_painted(page, ".msg.assistant .body")
    expect(page.locator(".msg.user .branch span")).to_have_text("2/2")
    page.click(".msg.user [aria-label='Previous version']")
    expect(page.locator(".msg.user .body")).to_have_text(COUNTING)
    screenshot(page, "07-edited-branch")


def test_search_and_delete(signed_in: Any) -> None:
    page = signed_in
    page.keyboard.press("Control+k")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type("poem")
    result = page.locator(".conversation-item.result")
    expect(result).to_have_count(1)
    expect(result.locator("mark").first).to_have_text(re.compile("poem", re.I))
    screenshot(page, "08-search")
    result.locator(".open").click()
    expect(page.locator("#chat-title")).to_contain_text("Write a short poem")
    page.locator("#search").fill("")
    item = page.locator(".conversation-item", has_text="Write a short poem")
    item.locator(".more").click()
    page.get_by_role("menuitem", name="Delete").click()
    page.click("#confirm-ok")
    expect(page.locator(".conversation-item", has_text="Write a short poem")).to_have_count(0)
    expect(page.locator("#chat-title")).to_have_text("New chat")
    page.keyboard.press("Control+k")
    page.keyboard.type("poem")
    expect(page.locator("#list-empty")).to_have_text("Nothing found.")


def malicious_export(tmp: Path) -> Path:
    evil = (
        "Here is **bold** text.\n\n"
        "<img src=x onerror=\"window.__pwned='img'\">\n\n"
        "<script>window.__pwned='script'</script>\n\n"
        "[click me](javascript:window.__pwned='link')\n\n"
        "```python\ndef greet(name):\n    return f'hi {name}'\n```\n"
    )
    data = {
        "format": "openwen.conversation",
        "version": 1,
        "conversation": {"title": "Imported XSS probe"},
        "current_branch": [
            {"role": "user", "content": "<b onmouseover=alert(1)>hello</b>"},
            {"role": "assistant", "content": evil, "reasoning": "First I think <i>hard</i>."},
        ],
    }
    path = tmp / "probe.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def context_options() -> dict[str, Any]:
    # No CSP here: the page's own sanitising must stop the probe, not the policy behind it.
    return {
        "viewport": {"width": 1200, "height": 800},
        "bypass_csp": True,
        "permissions": ["clipboard-read", "clipboard-write"],
    }


def test_imported_model_output_is_rendered_safely(signed_in: Any, tmp_path: Path) -> None:
    page = signed_in
    page.set_input_files("#import-file", str(malicious_export(tmp_path)))
    expect(page.locator("#chat-title")).to_have_text("Imported XSS probe")
    answer = page.locator(".msg.assistant")
    expect(answer.locator("strong")).to_have_text("bold")
    expect(answer.locator(".hljs-keyword").first).to_have_text("def")
    assert answer.locator("img, script, iframe, [onerror], [onmouseover]").count() == 0
    assert page.locator(".msg.user b").count() == 0
    expect(page.locator(".msg.user .body")).to_have_text("<b onmouseover=alert(1)>hello</b>")
    expect(answer.locator(".body")).to_contain_text("<img src=x onerror=")
    assert answer.locator("a[href^='javascript']").count() == 0
    page.mouse.move(10, 10)
    assert page.evaluate("() => window.__pwned") is None

    thinking = answer.locator("details.thinking")
    expect(thinking).not_to_have_attribute("open", "")
    thinking.locator("summary").click()
    expect(thinking.locator(".thinking-body")).to_have_text("First I think <i>hard</i>.")

    answer.locator(".code-block .copy").click()
    expect(answer.locator(".code-block .copy")).to_contain_text("Copied")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied.startswith("def greet(name):")
    screenshot(page, "09-markdown-and-xss-probe")


def test_rename_pin_export_and_import(signed_in: Any, tmp_path: Path) -> None:
    page = signed_in
    source = tmp_path / "trip.json"
    source.write_text(
        json.dumps(
            {
                "format": "openwen.conversation",
                "version": 1,
                "conversation": {"title": "Trip notes"},
                "current_branch": [
                    {"role": "user", "content": "Pack the tent."},
                    {"role": "assistant", "content": "And the stove."},
                ],
            }
        ),
        encoding="utf-8",
    )
    page.set_input_files("#import-file", str(source))
    expect(page.locator("#chat-title")).to_have_text("Trip notes")
    item = page.locator(".conversation-item", has_text="Trip notes")
    item.locator(".more").click()
    page.get_by_role("menuitem", name="Rename").click()
    page.locator(".conversation-item input").fill("Camping trip")
    page.keyboard.press("Enter")
    item = page.locator(".conversation-item", has_text="Camping trip")
    expect(item).to_have_count(1)
    expect(page.locator("#chat-title")).to_have_text("Camping trip")
    item.locator(".more").click()
    page.get_by_role("menuitem", name="Pin").click()
    expect(page.locator(".conversation-item").first).to_contain_text("Camping trip")
    expect(page.locator(".conversation-item").first.locator(".pin")).to_have_count(1)
    page.locator(".conversation-item", has_text="Camping trip").locator(".more").click()
    with page.expect_download() as download:
        page.get_by_role("menuitem", name="Export Markdown").click()
    saved = tmp_path / "export.md"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "Camping trip.md"  # the UTF-8 name
    text = saved.read_text(encoding="utf-8")
    assert "# Camping trip" in text and "And the stove." in text


@pytest.mark.parametrize(
    "context_options",
    [
        {
            "viewport": {"width": 390, "height": 844},
            "color_scheme": "dark",
            "reduced_motion": "reduce",
            "has_touch": True,
        }
    ],
)
def test_phone_screen_and_dark_theme(signed_in: Any) -> None:
    page = signed_in
    sidebar = page.locator("#sidebar")
    box = sidebar.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 0  # a closed drawer
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(24, 24, 28)"  # the system's dark theme
    screenshot(page, "10-phone-dark")

    page.click("#open-sidebar")
    expect(page.locator("#backdrop")).to_be_visible()
    box = sidebar.bounding_box()
    assert box is not None and box["x"] >= 0
    screenshot(page, "11-phone-sidebar")
    page.locator(".conversation-item .open").first.click()
    expect(page.locator("#backdrop")).to_be_hidden()
    expect(page.locator(".msg").first).to_be_visible()

    page.click("#open-sidebar")
    page.click("#theme-toggle")
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(255, 255, 255)"
    page.reload()  # the choice is remembered
    page.wait_for_selector("body[data-ready='true']")
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(255, 255, 255)"
    screenshot(page, "12-phone-light")


def test_keyboard_shortcuts_and_help(signed_in: Any) -> None:
    page = signed_in
    page.locator(".conversation-item .open").first.click()
    expect(page.locator(".msg").first).to_be_visible()
    page.keyboard.press("Control+/")
    help_dialog = page.locator("#help-dialog")
    expect(help_dialog).to_be_visible()
    expect(help_dialog).to_contain_text("Ctrl")
    screenshot(page, "13-shortcuts")
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()
    page.keyboard.press("Control+Shift+O")
    expect(page.locator("#chat-title")).to_have_text("New chat")
    expect(page.locator("#prompt")).to_be_focused()
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    expect(page.locator("#prompt")).to_have_value("line one\nline two")


def test_admin_adds_disables_and_removes_a_user(signed_in: Any) -> None:
    page = signed_in
    page.click("#admin-button")
    dialog = page.locator("#admin-dialog")
    page.fill("#new-username", "carol")
    page.fill("#new-password", "carols password")
    page.click("#add-user-form button[type=submit]")
    row = dialog.locator("tr", has_text="carol")
    expect(row).to_contain_text("active")
    row.get_by_role("button", name="Disable carol").click()
    expect(row).to_contain_text("disabled")
    screenshot(page, "14-admin")
    row.get_by_role("button", name="Remove carol").click()
    page.click("#confirm-ok")
    expect(dialog.locator("tr", has_text="carol")).to_have_count(0)


def test_log_in_again_after_logout(page: Any, server: Any) -> None:
    ensure_account(server)
    log_in(page)
    page.click("#logout-button")
    expect(page.locator("#auth-view")).to_be_visible()
    page.goto("/")
    expect(page.locator("#auth-view")).to_be_visible()  # the session is gone for good
