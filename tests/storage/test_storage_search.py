"""Full-text search: ranking, snippets, awkward queries, CJK text, index upkeep."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from openwen.storage import SearchHit, Storage, UserRecord
from openwen.storage.search import parse_query
from openwen.storage.snippets import make_snippet

AWKWARD = [
    '"',
    '""',
    '"unbalanced',
    "*",
    "pyth*",
    "-",
    "-python",
    "NOT",
    "AND",
    "python AND",
    "OR python",
    "NEAR(python rust)",
    "python:",
    "content:python",
    "^python",
    "(python",
    "python)",
    "'",
    "it's",
    "a & b | !c",
    "<->",
    "python:*",
    "\\",
    "%",
    "_",
    "100%",
    "a_b",
    "'; DROP TABLE messages; --",
    "\x00",
    "🙂",
    "   ",
    "",
    "x" * 5000,
    " ".join(["word"] * 200),
]


def add_chat(storage: Storage, user: UserRecord, title: str, *texts: str) -> str:
    chat = storage.conversations.create(user.id, title)
    parent = None
    for i, content in enumerate(texts):
        role = "user" if i % 2 == 0 else "assistant"
        parent = storage.messages.add(
            user.id, chat.id, parent_id=parent, role=role, content=content
        ).id
    return chat.id


def ids(hits: list[SearchHit]) -> list[str]:
    return [h.conversation_id for h in hits]


def highlighted(hit: SearchHit) -> list[str]:
    return [hit.snippet[a:b] for a, b in hit.highlights]


def test_finds_messages_and_titles(storage: Storage, alice: UserRecord) -> None:
    rust = add_chat(storage, alice, "Borrow checker", "How do lifetimes work in Rust?", "Like so.")
    python = add_chat(storage, alice, "Snakes", "Tell me about Python generators", "They yield.")
    assert ids(storage.search.search(alice.id, "lifetimes")) == [rust]
    assert ids(storage.search.search(alice.id, "PYTHON")) == [python]
    assert ids(storage.search.search(alice.id, "borrow")) == [rust]  # title only
    assert ids(storage.search.search(alice.id, "generators yield")) == []  # not in one message
    assert storage.search.search(alice.id, "nonexistentword") == []


def test_words_match_as_prefixes(storage: Storage, alice: UserRecord) -> None:
    chat = add_chat(storage, alice, "t", "running quickly through the documentation")
    hits = storage.search.search(alice.id, "run docu")
    assert ids(hits) == [chat]
    assert highlighted(hits[0]) == ["running", "documentation"]


def test_title_matches_rank_first_then_relevance(storage: Storage, alice: UserRecord) -> None:
    once = add_chat(
        storage, alice, "misc", "a note that mentions kafka once among many other words"
    )
    often = add_chat(storage, alice, "more", "kafka kafka kafka")
    titled = add_chat(storage, alice, "Kafka setup", "nothing relevant here")
    assert ids(storage.search.search(alice.id, "kafka")) == [titled, often, once]
    assert storage.search.search(alice.id, "kafka", limit=1)[0].conversation_id == titled


def test_snippet_and_highlights(storage: Storage, alice: UserRecord) -> None:
    long_text = "filler " * 40 + "the needle is here\nand the rest " + "tail " * 40
    add_chat(storage, alice, "haystack", long_text)
    [hit] = storage.search.search(alice.id, "needle")
    assert hit.snippet.startswith("…") and hit.snippet.endswith("…")
    assert "\n" not in hit.snippet and len(hit.snippet) <= 170
    assert highlighted(hit) == ["needle"]
    assert hit.message_id is not None and hit.title == "haystack"


@pytest.mark.parametrize("query", AWKWARD)
def test_awkward_queries_never_error(storage: Storage, alice: UserRecord, query: str) -> None:
    python = add_chat(storage, alice, "code", "I like python and rust, it's a_b 100% fine")
    hits = storage.search.search(alice.id, query)
    assert all(h.conversation_id == python for h in hits)


def test_fts_operators_are_searched_as_words(storage: Storage, alice: UserRecord) -> None:
    chat = add_chat(storage, alice, "logic", "NOT this AND that OR the other NEAR me")
    other = add_chat(storage, alice, "plain", "this and that")
    assert ids(storage.search.search(alice.id, "NOT")) == [chat]
    assert set(ids(storage.search.search(alice.id, '"this" -that'))) == {other, chat}
    assert ids(storage.search.search(alice.id, "near*")) == [chat]


def test_chinese_text(storage: Storage, alice: UserRecord) -> None:
    weather = add_chat(storage, alice, "闲聊", "今天北京的天气很好，我们去公园散步吧。")
    food = add_chat(storage, alice, "美食推荐", "推荐几道川菜：麻婆豆腐、回锅肉。")
    mixed = add_chat(storage, alice, "学习", "我在学Python编程，好难啊")
    assert ids(storage.search.search(alice.id, "天气")) == [weather]
    assert ids(storage.search.search(alice.id, "麻婆豆腐")) == [food]
    assert ids(storage.search.search(alice.id, "美食")) == [food]  # title
    assert ids(storage.search.search(alice.id, "公园 散步")) == [weather]
    assert ids(storage.search.search(alice.id, "python 编程")) == [mixed]
    assert storage.search.search(alice.id, "上海") == []
    [hit] = storage.search.search(alice.id, "北京 天气")
    assert highlighted(hit) == ["北京", "天气"]
    assert ids(storage.search.search(alice.id, "「天气」")) == [weather]  # CJK punctuation


def test_other_scripts_and_diacritics(storage: Storage, alice: UserRecord) -> None:
    russian = add_chat(storage, alice, "ru", "Привет, как дела?")
    german = add_chat(storage, alice, "de", "Größe und Übermut")
    assert ids(storage.search.search(alice.id, "привет")) == [russian]
    assert ids(storage.search.search(alice.id, "größe")) == [german]


def test_index_follows_edits_deletes_and_streaming(storage: Storage, alice: UserRecord) -> None:
    chat = storage.conversations.create(alice.id, "live")
    q = storage.messages.add(alice.id, chat.id, parent_id=None, role="user", content="alpha")
    a = storage.messages.add(
        alice.id, chat.id, parent_id=q.id, role="assistant", status="streaming"
    )
    storage.messages.append(alice.id, a.id, content="zebra crossing")
    assert storage.search.search(alice.id, "zebra") == []  # not indexed while streaming
    storage.messages.set_status(alice.id, a.id, "complete")
    assert ids(storage.search.search(alice.id, "zebra")) == [chat.id]
    storage.messages.update(alice.id, a.id, content="giraffe")
    assert storage.search.search(alice.id, "zebra") == []
    assert ids(storage.search.search(alice.id, "giraffe")) == [chat.id]
    storage.conversations.rename(alice.id, chat.id, "Savanna animals")
    assert ids(storage.search.search(alice.id, "savanna")) == [chat.id]
    assert storage.search.search(alice.id, "live") == []
    storage.conversations.delete(alice.id, chat.id)
    assert storage.search.search(alice.id, "giraffe") == []
    assert storage.search.search(alice.id, "savanna") == []
    if storage.db.is_sqlite:
        with storage.db.write() as s:
            s.execute(text("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')"))
            assert s.execute(text("SELECT count(*) FROM conversations_fts")).scalar() == 0


def test_tool_and_system_messages_are_not_searched(storage: Storage, alice: UserRecord) -> None:
    chat = storage.conversations.create(alice.id, "t")
    storage.messages.add(alice.id, chat.id, parent_id=None, role="tool", content="secretword")
    storage.messages.add(alice.id, chat.id, parent_id=None, role="system", content="hiddenword")
    assert storage.search.search(alice.id, "secretword") == []
    assert storage.search.search(alice.id, "hiddenword") == []


def test_parse_query_sanitises() -> None:
    parsed = parse_query('"Hello" -world* AND NEAR(x) a_b')
    assert parsed.words == ("hello", "world", "and", "near", "x", "a", "b")
    assert parsed.substrings == ()
    cjk = parse_query("Python 天气 -x")
    assert (cjk.words, cjk.substrings) == ((), ("python", "天气", "x"))
    assert parse_query('"*-^:()').empty


def test_make_snippet_without_a_match() -> None:
    snippet, spans = make_snippet("short text", ("zzz",), ())
    assert (snippet, spans) == ("short text", ())
