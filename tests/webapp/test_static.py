"""The page and its assets: served with a strict CSP, gzip-compressed, every referenced file
present, no build step, and the first load under 300 KB compressed."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from fastapi.testclient import TestClient

from openwen.server.app.static import WEB_DIR

FIRST_LOAD_BUDGET = 300 * 1024


def local_imports(path: Path) -> list[Path]:
    """Files a JS module imports (relative specifiers)."""
    text = path.read_text(encoding="utf-8")
    found = re.findall(r"""(?:import|export)[^'"]*?from\s*["'](\.{1,2}/[^"']+)["']""", text)
    return [(path.parent / spec).resolve() for spec in found]


def first_load_files() -> set[Path]:
    """index.html, what it references, and every module reachable from main.js."""
    html = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    refs = re.findall(r"""(?:src|href)="/static/([^"]+)\"""", html)
    files = {WEB_DIR / "index.html", *(WEB_DIR / ref for ref in refs)}
    todo = [f for f in files if f.suffix == ".js"]
    while todo:
        for imported in local_imports(todo.pop()):
            if imported not in files:
                files.add(imported)
                todo.append(imported)
    return files


def test_page_is_served_with_security_headers(client: TestClient) -> None:
    for url in ("/", "/c/some-conversation"):
        r = client.get(url)
        assert r.status_code == 200 and "<title>openwen</title>" in r.text
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
    compressed = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert compressed.headers["content-encoding"] == "gzip"
    assert "<title>openwen</title>" in compressed.text


def test_assets_are_compressed_and_revalidated(client: TestClient) -> None:
    r = client.get("/static/js/chat.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["cache-control"] == "no-cache" and r.headers.get("etag")
    assert "javascript" in r.headers["content-type"]
    again = client.get("/static/js/chat.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/../webapp.py").status_code == 404


def test_every_referenced_file_exists_and_is_served(client: TestClient) -> None:
    files = first_load_files()
    assert WEB_DIR / "vendor" / "marked.esm.js" in files
    for path in files:
        assert path.is_file(), path
        if path.name != "index.html":
            url = "/static/" + path.relative_to(WEB_DIR).as_posix()
            assert client.get(url).status_code == 200, url


def test_first_load_is_under_the_budget() -> None:
    total = sum(len(gzip.compress(p.read_bytes(), 6)) for p in first_load_files())
    assert total < FIRST_LOAD_BUDGET, f"first load is {total} bytes compressed"


def test_vendored_libraries_are_documented() -> None:
    readme = (WEB_DIR / "vendor" / "README.md").read_text(encoding="utf-8")
    for path in (WEB_DIR / "vendor").rglob("*.js"):
        assert path.name in readme or path.parent.name == "languages", path
    for license_file in ("LICENSE.marked.md", "LICENSE.dompurify", "LICENSE.highlightjs"):
        assert (WEB_DIR / "vendor" / license_file).is_file()
    assert "18.2.1" in readme and "3.4.18" in readme and "11.12.0" in readme


def test_no_inline_scripts_or_handlers_in_the_page() -> None:
    html = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\son[a-z]+=", html)
