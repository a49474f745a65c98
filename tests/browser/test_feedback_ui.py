"""Thumbs up/down and edited answers in a real headless Chromium against a real server on the
bundled model: the thumbs toggle and stay after a reload, an edited answer is shown (marked
"edited", the original one click away and restorable), and the stored feedback is the user's."""

from __future__ import annotations

from typing import Any

import pytest
from browser_helpers import screenshot
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GENERATION_MS = 180_000  # a safety net on a busy machine, not a measurement
EDITED = "Blue, the colour of a clear sky."


def _answer(page: Any) -> Any:
    page.click("#chat-settings")
    page.fill("#set-max-tokens", "12")
    page.fill("#set-temperature", "0")
    page.click("#settings-form button[type=submit]")
    expect(page.locator("#settings-dialog")).not_to_be_visible()
    page.fill("#prompt", "Name one colour.")
    page.keyboard.press("Enter")
    expect(page.locator(".msg.assistant")).to_have_count(1, timeout=GENERATION_MS)
    expect(page.locator(".msg.streaming")).to_have_count(0, timeout=GENERATION_MS)
    return page.locator(".msg.assistant")


def _stored(page: Any) -> dict[str, Any]:
    cid = page.url.rsplit("/", 1)[-1]
    messages = page.request.get(f"/api/conversations/{cid}").json()["messages"]
    return dict(messages[1])


def test_thumbs_toggle_and_an_edited_answer_is_shown(signed_in: Any) -> None:
    page = signed_in
    answer = _answer(page)
    original = answer.locator(".body").inner_text().strip()
    good = answer.locator("button[aria-label='Good answer']")
    bad = answer.locator("button[aria-label='Bad answer']")
    expect(good).to_have_attribute("aria-pressed", "false")
    good.click()
    expect(good).to_have_attribute("aria-pressed", "true")
    assert _stored(page)["feedback"]["rating"] == "good"
    page.reload()
    answer = page.locator(".msg.assistant")
    good = answer.locator("button[aria-label='Good answer']")
    bad = answer.locator("button[aria-label='Bad answer']")
    expect(good).to_have_attribute("aria-pressed", "true")  # stored, not just painted
    bad.click()  # the other thumb replaces it
    expect(bad).to_have_attribute("aria-pressed", "true")
    expect(good).to_have_attribute("aria-pressed", "false")
    bad.click()  # pressing it again clears it
    expect(bad).to_have_attribute("aria-pressed", "false")
    assert _stored(page)["feedback"] is None

    answer.locator("button[aria-label='Edit this answer']").click()
    area = answer.locator("textarea")
    expect(area).to_have_value(original)
    area.fill(EDITED)
    answer.locator("button", has_text="Save").click()
    expect(page.locator(".msg.assistant .body")).to_have_text(EDITED)
    expect(page.locator(".msg.assistant .meta .badge")).to_have_text("edited")
    screenshot(page, "feedback-edited")
    stored = _stored(page)
    assert stored["content"].strip() == original  # the original is kept
    assert stored["feedback"]["edited_content"] == EDITED
    page.reload()
    answer = page.locator(".msg.assistant")
    expect(answer.locator(".body")).to_have_text(EDITED)
    answer.locator(".original summary").click()
    expect(answer.locator(".original-body")).to_have_text(original)
    answer.locator("button", has_text="Restore the original").click()
    expect(page.locator(".msg.assistant .body")).to_have_text(original)
    expect(page.locator(".msg.assistant .meta .badge")).to_have_count(0)
    assert _stored(page)["feedback"] is None


def test_an_empty_edit_is_refused_and_cancel_keeps_the_answer(signed_in: Any) -> None:
    page = signed_in
    page.click("#new-chat")
    answer = _answer(page)
    original = answer.locator(".body").inner_text().strip()
    answer.locator("button[aria-label='Edit this answer']").click()
    answer.locator("textarea").fill("   ")
    answer.locator("button", has_text="Save").click()
    expect(page.locator(".toast.error")).to_contain_text("empty")
    answer.locator("button", has_text="Cancel").click()
    expect(page.locator(".msg.assistant .body")).to_have_text(original)
    assert _stored(page).get("feedback") is None


def test_train_from_my_conversations(signed_in: Any) -> None:
    page = signed_in
    page.click("#new-chat")
    _answer(page).locator("button[aria-label='Good answer']").click()
    expect(page.locator(".msg.assistant button[aria-label='Good answer']")).to_have_attribute(
        "aria-pressed", "true")
    page.click("#train-button")
    expect(page.locator("#train-form")).to_be_visible()
    expect(page.locator("#train-rated-field")).to_be_hidden()
    page.select_option("#train-source", "conversations")
    expect(page.locator("#train-file-field")).to_be_hidden()
    page.select_option("#train-rated", "edited")  # none of the answers is edited now
    page.fill("#train-name", "from-chats")
    page.click("#train-start")
    expect(page.locator("#train-error")).to_contain_text("no answers edited in alice's")
    page.select_option("#train-rated", "good")
    page.click("#train-start")  # one good answer is not enough: one is held out
    expect(page.locator("#train-error")).to_contain_text("has 1 example; at least 2 are needed")
    page.click("#train-dialog button[data-i18n='ui.close']")
    page.fill("#prompt", "Name another colour.")
    page.keyboard.press("Enter")
    expect(page.locator(".msg.assistant")).to_have_count(2, timeout=GENERATION_MS)
    expect(page.locator(".msg.streaming")).to_have_count(0, timeout=GENERATION_MS)
    page.locator(".msg.assistant").nth(1).locator("button[aria-label='Good answer']").click()
    expect(page.locator(".msg.assistant button[aria-pressed='true']")).to_have_count(2)
    page.click("#train-button")
    page.select_option("#train-source", "conversations")
    page.select_option("#train-rated", "good")
    page.fill("#train-name", "from-chats")
    page.click("#train-start")
    job = page.locator("#train-jobs button[data-job='from-chats']")
    expect(job).to_be_visible()
    shown = page.request.get("/api/tune/jobs/from-chats").json()["job"]
    assert shown["dataset"] == "conversations:alice:rated=good"
    assert shown["source"] == {"kind": "conversations", "user": "alice", "rated": "good"}
    page.click("#train-cancel")  # the dataset is what this test is about
    expect(page.locator("#train-job-state")).to_have_text("cancelled", timeout=GENERATION_MS)
