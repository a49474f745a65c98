"""Full-text ranking: SQLite FTS5 BM25, PostgreSQL ``ts_rank``.

What is indexed is a chunk's ``search_text``: its document title, heading path and text, with
every run of Chinese, Japanese or Korean characters written as its overlapping character
bigrams ("中文文本" -> "中文 文文 文本"), so that both backends' word tokenizers, which would
take a whole unspaced CJK run as one word, find CJK words of any length. A query is segmented
the same way.

A query is cut into words (runs of letters and digits: FTS syntax can never leak in), common
English words and Chinese question words are dropped (unless nothing else is left), and the
rest are ORed, so a passage matching some of the words still ranks, by BM25 / ``ts_rank``.
Both backends stem English words (FTS5 ``porter``, PostgreSQL ``english``). Scores are
returned "higher is better".

BM25 costs time per matching row, and an OR of common words matches a large share of a big
index. On SQLite the words are therefore counted first (cheap: no ranking), and the most common
ones are left out while the query would match more than ``MATCH_BUDGET`` rows; the rarest word
always stays. Such words carry little weight in BM25 anyway (a low IDF), and an index smaller
than the budget is never affected.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

WORD = re.compile(r"[^\W_]+")
MAX_TERMS = 32
MAX_TERM_LEN = 64
MATCH_BUDGET = 5000
STOPWORD_LIST = """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had
has have having he her here hers herself him himself his how i if in into is it its itself just
me more most my myself no nor not now of off on once only or other our ours ourselves out over
own same she should so some such than that the their theirs them themselves then there these
they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours yourself yourselves s t don
"""
# Chinese question words and particles, as bigrams
CJK_STOPWORD_LIST = """
什么 怎么 哪里 哪个 哪些 哪位 多少 多久 为什 么时 时候 如何 是否 可以 我们 你们 他们 一个
这个 那个 的是 是什 要多 需要 应该 吗 呢 的 了 是 在 有 和 要 我 你 谁
"""
STOPWORDS = frozenset(STOPWORD_LIST.split()) | frozenset(CJK_STOPWORD_LIST.split())
CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")


def _bigrams(match: re.Match[str]) -> str:
    run = match.group(0)
    if len(run) == 1:
        return f" {run} "
    return " " + " ".join(run[i:i + 2] for i in range(len(run) - 1)) + " "


def segment(text: str) -> str:
    """``text`` with each CJK run written as its overlapping bigrams, space separated."""
    return CJK_RUN.sub(_bigrams, text)


def search_text(context: str | None, text: str) -> str:
    """What the full-text index holds for a chunk (keep in step with migration 0130)."""
    return segment(f"{context}\n{text}" if context else text)

# Keep in step with the expression indexes of migration 0130_chinese_fulltext.
PG_CHUNK_VECTOR = "to_tsvector('english'::regconfig, coalesce(c.search_text, ''))"
PG_MEMORY_VECTOR = "to_tsvector('english'::regconfig, m.text)"


def query_terms(query: str) -> list[str]:
    words: dict[str, None] = {}
    for word in WORD.findall(segment(query) if isinstance(query, str) else ""):
        words.setdefault(word.lower()[:MAX_TERM_LEN], None)
    terms = [w for w in words if w not in STOPWORDS] or list(words)
    return terms[:MAX_TERMS]


def fts5_any(terms: list[str]) -> str:
    return " OR ".join(f'"{t}"' for t in terms)


def tsquery_any(terms: list[str]) -> str:
    return " | ".join(f"'{t}'" for t in terms)


def rank_chunks(session: Session, user_id: int, query: str, *, document_filter: str = "",
                params: dict[str, Any] | None = None, limit: int = 50) -> list[tuple[int, float]]:
    """``(chunk_id, score)`` best first. ``document_filter`` is extra SQL on ``c`` (the chunk
    row), with its bind values in ``params``."""
    terms = query_terms(query)
    if not terms:
        return []
    values: dict[str, Any] = {"user_id": user_id, "limit": limit, **(params or {})}
    if session.get_bind().dialect.name == "postgresql":
        values["match"] = tsquery_any(terms)
        sql = (
            f"SELECT c.id, ts_rank({PG_CHUNK_VECTOR}, q) AS score FROM knowledge_chunks c, "
            "to_tsquery('english'::regconfig, :match) q "
            f"WHERE c.user_id = :user_id AND {PG_CHUNK_VECTOR} @@ q {document_filter} "
            "ORDER BY score DESC, c.id LIMIT :limit"
        )
    else:
        values["match"] = fts5_any(within_budget(session, terms))
        sql = (
            "SELECT c.id, -bm25(knowledge_chunks_fts) AS score FROM knowledge_chunks_fts "
            "JOIN knowledge_chunks c ON c.id = knowledge_chunks_fts.rowid "
            f"WHERE knowledge_chunks_fts MATCH :match AND c.user_id = :user_id {document_filter} "
            "ORDER BY bm25(knowledge_chunks_fts) LIMIT :limit"
        )
    return [(int(r[0]), float(r[1])) for r in session.execute(text(sql), values)]


def within_budget(session: Session, terms: list[str], budget: int = MATCH_BUDGET) -> list[str]:
    """``terms`` less the most common ones while they would match more than ``budget`` chunks
    (SQLite FTS5; counts are over the whole index, which is what BM25's statistics use too)."""
    if len(terms) < 2:
        return terms
    count = text("SELECT count(*) FROM knowledge_chunks_fts WHERE knowledge_chunks_fts MATCH :m")
    frequency = {t: int(session.execute(count, {"m": f'"{t}"'}).scalar() or 0) for t in terms}
    kept = sorted(terms, key=lambda t: frequency[t])
    while len(kept) > 1 and sum(frequency[t] for t in kept) > budget:
        kept.pop()
    return [t for t in terms if t in kept]


def rank_memories(session: Session, user_id: int, query: str, *,
                  limit: int = 50) -> list[tuple[int, float]]:
    terms = query_terms(query)
    if not terms:
        return []
    values: dict[str, Any] = {"user_id": user_id, "limit": limit}
    if session.get_bind().dialect.name == "postgresql":
        values["match"] = tsquery_any(terms)
        sql = (
            f"SELECT m.id, ts_rank({PG_MEMORY_VECTOR}, q) AS score FROM memories m, "
            "to_tsquery('english'::regconfig, :match) q "
            f"WHERE m.user_id = :user_id AND {PG_MEMORY_VECTOR} @@ q "
            "ORDER BY score DESC, m.id LIMIT :limit"
        )
    else:
        values["match"] = fts5_any(terms)
        sql = (
            "SELECT m.id, -bm25(memories_fts) AS score FROM memories_fts "
            "JOIN memories m ON m.id = memories_fts.rowid "
            "WHERE memories_fts MATCH :match AND m.user_id = :user_id "
            "ORDER BY bm25(memories_fts) LIMIT :limit"
        )
    return [(int(r[0]), float(r[1])) for r in session.execute(text(sql), values)]
