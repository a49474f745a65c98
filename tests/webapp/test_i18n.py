"""The web app's string catalogs: every key the markup and the code use exists in English, every
English key has its Simplified Chinese translation, and the markup itself carries no text (the
catalog is the one place strings live). The browser tests show the catalogs at work."""

from __future__ import annotations

import json
import re

from openwen.server.app.static import WEB_DIR

LOCALES = WEB_DIR / "js" / "locales"
PLURAL = ("_one", "_other")


def catalog(name: str) -> dict[str, str]:
    text = (LOCALES / f"{name}.js").read_text(encoding="utf-8")
    body = text[text.index("export default") + len("export default"):].strip().rstrip(";")
    return dict(json.loads(body))


def keys_in_markup() -> set[str]:
    html = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    return set(re.findall(r'data-i18n(?:-[a-z-]+)?="([^"]+)"', html))


def keys_in_code() -> set[str]:
    found: set[str] = set()
    for path in (WEB_DIR / "js").glob("*.js"):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r'\bt\(\s*"([a-z][\w.]*)"', text):
            found.add(match.group(1))
        choice = r'\bt\(\s*[^,()]*\?\s*"([a-z][\w.]*)"\s*:\s*"([a-z][\w.]*)"'
        for match in re.finditer(choice, text):
            found.update(match.groups())
    return found


def defined(key: str, strings: dict[str, str]) -> bool:
    return key in strings or all(key + p in strings for p in PLURAL) or key + "_other" in strings


def test_every_used_key_is_in_the_english_catalog() -> None:
    en = catalog("en")
    used = keys_in_markup() | keys_in_code()
    assert len(used) > 250
    missing = sorted(k for k in used if not defined(k, en))
    assert not missing, f"keys used but not in locales/en.js: {missing}"


def test_chinese_translates_every_english_key() -> None:
    en, zh = catalog("en"), catalog("zh-CN")
    missing = sorted(k for k in en if k not in zh and not k.endswith("_one"))
    assert not missing, f"keys without a zh-CN translation: {missing}"
    assert not sorted(set(zh) - set(en)), "zh-CN keys that English does not have"
    for key, text in zh.items():  # the same placeholders on both sides
        assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", en[key])), key
    assert zh["models.title"] == "模型" and zh["firstrun.get"] == "下载 {model}"


def test_the_markup_carries_no_text_of_its_own() -> None:
    html = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    body = html[html.index("<body>"):]
    body = re.sub(r"<svg.*?</svg>", "", body, flags=re.S)
    body = re.sub(r"<kbd>[^<]*</kbd>", "", body)
    texts = [t.strip() for t in re.findall(r">([^<]+)<", body)]
    words = [t for t in texts if re.search(r"[A-Za-z]{2}", t) and t != "openwen"]
    assert not words, f"text in index.html instead of the catalog: {words}"
    attributes = re.findall(r'\s(?:placeholder|title|aria-label|alt)="([^"]*[A-Za-z][^"]*)"', body)
    assert not attributes, attributes
