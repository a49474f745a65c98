"""Fetch a web page as readable text, and search the web through a SearXNG instance."""

from __future__ import annotations

import json
from urllib.parse import urlencode, urlsplit

from openwen.tools.base import FunctionTool, ToolError, truncate
from openwen.tools.context import ToolContext
from openwen.tools.htmltext import html_to_text
from openwen.tools.netguard import AddressPolicy, Fetched, GuardedFetcher

_TEXT_TYPES = ("application/json", "application/xml", "application/javascript",
               "application/x-javascript", "application/ld+json", "application/rss+xml",
               "application/atom+xml", "application/x-yaml", "application/yaml")
MAX_FETCH_CHARS = 20_000


def page_text(page: Fetched) -> str:
    """The body as text: HTML converted, other text as is, binary content described."""
    kind = page.content_type
    if kind in ("text/html", "application/xhtml+xml") or (not kind and b"<html" in
                                                            page.body[:2048].lower()):
        return html_to_text(page.text(), base_url=page.url)
    if kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith(("+json", "+xml")):
        return page.text()
    return f"[binary content of type {kind or 'unknown'}, {len(page.body)} bytes, not shown]"


def make_fetch_tool(ctx: ToolContext) -> FunctionTool:
    fetcher = GuardedFetcher.from_settings(ctx.settings)

    async def fetch_url(url: str, max_chars: int = 6000) -> str:
        """Fetch a web page (http or https) and return its text; HTML is converted to plain text.

        Args:
            url: the address to fetch, starting with http:// or https://.
            max_chars: the most characters of text to return (up to 20000).
        """
        page = await fetcher.get(url)
        limit = max(200, min(max_chars, MAX_FETCH_CHARS))
        header = f"URL: {page.url}\nStatus: {page.status}\n"
        if page.truncated:
            header += f"(only the first {fetcher.max_bytes} bytes were read)\n"
        return header + "\n" + truncate(page_text(page), limit)

    return FunctionTool(fetch_url, side_effects=True)


def make_search_tool(ctx: ToolContext) -> FunctionTool | None:
    """``web_search`` through the configured SearXNG instance (``None`` when none is set)."""
    base = (ctx.settings.searxng_url or "").rstrip("/")
    if not base:
        return None
    host = urlsplit(base).hostname or ""
    # the operator chose this instance, so its own address is reachable even on a private
    # network; nothing else is, and its redirects are not followed
    fetcher = GuardedFetcher(AddressPolicy.from_settings(ctx.settings),
                             timeout=ctx.settings.fetch_timeout,
                             max_bytes=ctx.settings.fetch_max_bytes, max_redirects=0,
                             trusted_hosts=(host,))

    async def web_search(query: str, max_results: int = 5) -> str:
        """Search the web and return the top results with their titles, addresses and snippets.

        Args:
            query: what to search for.
            max_results: how many results to return (1 to 10).
        """
        if not query.strip():
            raise ToolError("the query is empty")
        url = f"{base}/search?{urlencode({'q': query, 'format': 'json'})}"
        page = await fetcher.get(url, headers={"Accept": "application/json"})
        if page.status != 200:
            raise ToolError(f"the search service answered HTTP {page.status}")
        return format_results(page.body, max(1, min(max_results, 10)))

    return FunctionTool(web_search)


def format_results(body: bytes, limit: int) -> str:
    try:
        data = json.loads(body)
        results = data.get("results") or []
    except (ValueError, AttributeError):
        raise ToolError("the search service did not return JSON (is format=json enabled in "
                        "its settings.yml?)") from None
    lines = []
    for i, item in enumerate(r for r in results if isinstance(r, dict)):
        if i >= limit:
            break
        title = " ".join(str(item.get("title") or "(no title)").split())
        snippet = " ".join(str(item.get("content") or "").split())
        lines.append(f"{i + 1}. {title}\n   {item.get('url', '')}\n   {snippet[:400]}".rstrip())
    return "\n".join(lines) if lines else "no results"
