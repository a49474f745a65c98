"""The model library and the first-run flow in a real Chromium, against a real server on the
bundled model whose hub is a stand-in on 127.0.0.1 (Hugging Face layout): the whole first run in
Simplified Chinese (browser language zh-CN), the Models page in Chinese and English (the language
switch is remembered per user), and Chinese input (IME composition never sends on Enter).
Screenshots: models-page-zh, models-page-en, first-run-notice-zh, first-run-done-zh."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import ACTION_TIMEOUT_MS, PASSWORD, USERNAME, screenshot
from live_server import LiveServer
from playwright.sync_api import expect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))
from hub_standin import Hub, serving, write_gguf  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DOWNLOAD_MS = 120_000


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    with serving() as state:
        yield state


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, hub: Hub) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("models-home")
    with LiveServer(home, env={"OPENWEN_HUB_ENDPOINT": hub.url}) as live:
        yield live


@pytest.fixture
def context_options() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 900}, "locale": "zh-CN"}


def catalog_entry(page: Any, name: str) -> dict[str, Any]:
    data = page.evaluate("async () => (await (await fetch('/api/models/catalog')).json())")
    return next(m for m in data["models"] if m["name"] == name)


def test_first_run_in_chinese(page: Any, hub: Hub, tmp_path: Path) -> None:
    page.goto("/")
    # the sign-up screen follows the browser's language
    expect(page.locator("#auth-intro")).to_have_text("欢迎！请创建第一个账户：它将成为管理员。")
    expect(page.locator("#auth-submit")).to_have_text("创建账户")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    page.fill("#auth-username", USERNAME)
    page.fill("#auth-password", PASSWORD)
    page.click("#auth-submit")
    page.wait_for_selector("body[data-ready='true']")

    notice = page.locator("#first-run")
    expect(notice).to_be_visible()
    expect(page.locator("#first-run-text")).to_contain_text("演示模型")
    get = page.locator("#first-run-get")
    label = get.text_content() or ""
    match = re.fullmatch(r"下载 (\S+)", label)
    assert match, label  # one click: the Qwen model that fits this machine
    pick = match.group(1)
    assert pick.startswith("qwen")
    entry = catalog_entry(page, pick)
    assert entry["fits"] is True
    # the stand-in hub serves that exact repository and file (a small real GGUF)
    payload = write_gguf(tmp_path / entry["file"], arch="qwen3", payload_floats=400_000,
                         chat_template="{{ tools }}{{ tool_calls }}<think>").read_bytes()
    hub.add(entry["repo"], {entry["file"]: payload})
    hub.throttle = 0.1  # about 2.5 s: slow enough to see the progress
    screenshot(page, "first-run-notice-zh")

    get.click()
    progress = page.locator("#first-run-progress")
    expect(progress).to_be_visible()
    expect(progress).to_contain_text(re.compile(r"\d.*B|正在"))  # bytes so far, or starting
    # a reload does not lose it: the download runs on the server
    page.reload()
    page.wait_for_selector("body[data-ready='true']")
    expect(page.locator("#first-run-text")).to_contain_text("已下载完毕", timeout=DOWNLOAD_MS)
    hub.throttle = 0
    expect(page.locator("#model-picker option", has_text=pick)).to_have_count(1,
                                                                           timeout=DOWNLOAD_MS)
    screenshot(page, "first-run-done-zh")
    # it became the default for new chats, and a thinking model shows the thinking switch
    page.click("#new-chat")
    expect(page.locator("#model-picker")).to_have_value(pick)
    expect(page.locator("#thinking-switch")).to_be_visible()
    page.select_option("#model-picker", "smollm2")
    expect(page.locator("#thinking-switch")).to_be_hidden()  # SmolLM2 cannot think


def sign_in(page: Any) -> None:
    page.goto("/")
    page.fill("#auth-username", USERNAME)
    page.fill("#auth-password", PASSWORD)
    page.click("#auth-submit")
    page.wait_for_selector("body[data-ready='true']")


def test_models_page_in_chinese_then_english(page: Any) -> None:
    sign_in(page)
    page.click("#models-button")
    dialog = page.locator("#models-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("h2")).to_have_text("模型")
    rows = page.locator("#installed-rows tr")
    expect(rows.filter(has_text="smollm2")).to_have_count(1)
    smollm2 = rows.filter(has_text="smollm2")
    expect(smollm2).to_contain_text("演示")
    expect(smollm2).to_contain_text("Q4_1")
    expect(smollm2).to_contain_text("llama")
    catalog = page.locator("#catalog-rows tr")
    expect(catalog.first).to_contain_text("qwen")  # Qwen first
    expect(page.locator("#models-memory")).to_contain_text("可用内存")
    # every model of known size says whether it fits this machine's free memory
    sized = catalog.filter(has_not_text="大小未知")
    assert sized.count() >= 10
    for i in range(sized.count()):
        expect(sized.nth(i)).to_contain_text(re.compile("可以运行|对这台机器来说太大|已安装"))
    screenshot(page, "models-page-zh")
    page.keyboard.press("Escape")

    # switch to English in the account dialog: remembered for this user
    page.click("#account-button")
    page.select_option("#language-picker", "en")
    expect(page.locator("#account-title")).to_have_text("Account")
    page.keyboard.press("Escape")
    page.reload()
    page.wait_for_selector("body[data-ready='true']")
    expect(page.locator("#models-button")).to_have_text("Models…")
    page.click("#models-button")
    expect(page.locator("#models-dialog h2")).to_have_text("Models")
    expect(page.locator("#installed-rows tr").filter(has_text="smollm2")).to_contain_text("demo")
    expect(page.locator("#models-memory")).to_contain_text("memory free")
    # numbers and sizes are formatted for the locale
    expect(page.locator("#catalog-rows")).to_contain_text(re.compile(r"\d(\.\d)? GB"))
    screenshot(page, "models-page-en")
    page.keyboard.press("Escape")
    page.click("#account-button")
    page.select_option("#language-picker", "zh-CN")  # back, for the next test
    expect(page.locator("#account-title")).to_have_text("账户")


IME_EVENTS = """() => {
  const prompt = document.querySelector('#prompt');
  prompt.value = '你好';
  const composing = new KeyboardEvent('keydown', { key: 'Enter', isComposing: true,
    bubbles: true, cancelable: true });
  prompt.dispatchEvent(composing);
  const legacy = new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true });
  Object.defineProperty(legacy, 'keyCode', { get: () => 229 });
  prompt.dispatchEvent(legacy);
  return [composing.defaultPrevented, legacy.defaultPrevented];
}"""


def test_chinese_input_method_never_sends_on_enter(page: Any) -> None:
    sign_in(page)
    page.click("#new-chat")
    prevented = page.evaluate(IME_EVENTS)
    assert prevented == [False, False]  # the Enter went to the input method
    page.wait_for_timeout(300)
    expect(page.locator(".msg.user")).to_have_count(0)
    expect(page.locator("#prompt")).to_have_value("你好")
    # a real composition through the browser's IME interface, then a plain Enter sends
    cdp = page.context.new_cdp_session(page)
    page.fill("#prompt", "")
    page.focus("#prompt")
    cdp.send("Input.imeSetComposition", {"text": "ni", "selectionStart": 2, "selectionEnd": 2})
    cdp.send("Input.insertText", {"text": "你好，世界"})
    expect(page.locator("#prompt")).to_have_value("你好，世界")
    expect(page.locator(".msg.user")).to_have_count(0)
    page.keyboard.press("Enter")
    expect(page.locator(".msg.user")).to_have_count(1, timeout=ACTION_TIMEOUT_MS)
    expect(page.locator(".msg.user .body")).to_have_text("你好，世界")
    if page.locator("#stop").is_visible():
        page.click("#stop")

