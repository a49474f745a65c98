"""Full-text search over one user's conversations: titles and user/assistant message content.

A query is cut into words (runs of letters and digits); everything else, FTS syntax included
(quotes, ``*``, ``-``, ``:``, parentheses), is dropped, and words like ``AND`` are searched as
words, so no query can fail. All words must appear in one message (or in the title); each word
also matches as a prefix (``run`` finds "running").

Words are matched through the full-text index: SQLite FTS5 (``unicode61``, diacritics folded) or
PostgreSQL ``to_tsvector('simple', ...)`` with a GIN index. Neither tokenizer splits Chinese,
Japanese or Korean text into words, so a query containing CJK characters has all its terms
matched as substrings instead (``LIKE`` / ``ILIKE``, within the user's own messages).

Results are conversations, best first: those whose title matches, then by relevance of the best
matching message, then by most recent update.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from openwen.storage.base import Repository
from openwen.storage.models import Conversation, Message
from openwen.storage.records import SearchHit
from openwen.storage.snippets import make_snippet

TERM_RE = re.compile(r"[^\W_]+")
CJK_RE = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003ffff]")
MAX_TERMS = 16
MAX_TERM_LEN = 64
MAX_LIMIT = 100
SEARCHED_ROLES = "('user', 'assistant')"


@dataclass(frozen=True)
class ParsedQuery:
    words: tuple[str, ...]  # matched through the full-text index, as prefixes
    substrings: tuple[str, ...]  # CJK terms, matched as substrings

    @property
    def empty(self) -> bool:
        return not self.words and not self.substrings

    @property
    def terms(self) -> tuple[str, ...]:
        return self.words + self.substrings


def parse_query(query: str) -> ParsedQuery:
    """Words of ``query`` (lower-cased, deduplicated), split by whether the index can find them."""
    seen: dict[str, None] = {}
    for term in TERM_RE.findall(query if isinstance(query, str) else ""):
        seen.setdefault(term.lower()[:MAX_TERM_LEN], None)
    terms = tuple(seen)[:MAX_TERMS]
    if any(CJK_RE.search(t) for t in terms):
        # CJK text has no spaces, so a Latin word in it may be glued to its neighbours
        # ("学Python编程" is one token): match every term as a substring.
        return ParsedQuery(words=(), substrings=terms)
    return ParsedQuery(words=terms, substrings=())


def fts5_match(words: tuple[str, ...]) -> str:
    """An FTS5 query: every word as a quoted prefix (``"run"* "fast"*``, an implicit AND)."""
    return " ".join(f'"{w}"*' for w in words)


def tsquery(words: tuple[str, ...]) -> str:
    """A PostgreSQL ``to_tsquery`` text: every word as a quoted prefix lexeme, ANDed."""
    return " & ".join(f"'{w}':*" for w in words)


def like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SearchRepo(Repository):
    def search(self, user_id: int, query: str, *, limit: int = 20) -> list[SearchHit]:
        parsed = parse_query(query)
        limit = max(1, min(int(limit), MAX_LIMIT))
        if parsed.empty:
            return []
        with self.db.read() as s:
            titles = dict(self._run(s, self._title_sql(parsed), user_id, parsed, MAX_LIMIT * 5))
            rows = self._run(s, self._message_sql(parsed), user_id, parsed, limit + len(titles))
            best = {conv: (message_id, score) for conv, message_id, score in rows}
            return self._hits(s, user_id, parsed, titles, best, limit)

    # -- SQL ----------------------------------------------------------------------------

    def _run(
        self, s: Session, sql: str, user_id: int, parsed: ParsedQuery, limit: int
    ) -> list[Any]:
        params: dict[str, Any] = {"user_id": user_id, "limit": limit}
        if parsed.words:
            postgres = self.db.dialect == "postgresql"
            params["match"] = tsquery(parsed.words) if postgres else fts5_match(parsed.words)
        for i, term in enumerate(parsed.substrings):
            params[f"s{i}"] = like_pattern(term)
        return [tuple(row) for row in s.execute(text(sql), params)]

    def _like(self, column: str, parsed: ParsedQuery) -> str:
        op = "ILIKE" if self.db.dialect == "postgresql" else "LIKE"
        return "".join(
            f" AND {column} {op} :s{i} ESCAPE '\\'" for i in range(len(parsed.substrings))
        )

    def _title_sql(self, parsed: ParsedQuery) -> str:
        like = self._like("c.title", parsed)
        if not parsed.words:
            return (
                f"SELECT c.id, 0.0 FROM conversations c WHERE c.user_id = :user_id{like} "
                "LIMIT :limit"
            )
        if self.db.dialect == "postgresql":
            vector = "to_tsvector('simple'::regconfig, c.title)"
            return (
                f"SELECT c.id, ts_rank({vector}, q) FROM conversations c, "
                "to_tsquery('simple'::regconfig, :match) q "
                f"WHERE c.user_id = :user_id AND {vector} @@ q{like} LIMIT :limit"
            )
        return (
            "SELECT c.id, -bm25(conversations_fts) FROM conversations_fts "
            "JOIN conversations c ON c.id = conversations_fts.conversation_id "
            f"WHERE conversations_fts MATCH :match AND c.user_id = :user_id{like} LIMIT :limit"
        )

    def _message_sql(self, parsed: ParsedQuery) -> str:
        """Best matching message per conversation: (conversation_id, message_id, score)."""
        like = self._like("m.content", parsed)
        scope = f"c.user_id = :user_id AND m.role IN {SEARCHED_ROLES}{like}"
        if not parsed.words:
            hits = (
                "SELECT m.conversation_id AS cid, m.id AS mid, 0.0 AS score "
                "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                f"WHERE m.status != 'streaming' AND {scope}"
            )
        elif self.db.dialect == "postgresql":
            vector = "to_tsvector('simple'::regconfig, m.content)"
            hits = (
                f"SELECT m.conversation_id AS cid, m.id AS mid, ts_rank({vector}, q) AS score "
                "FROM messages m JOIN conversations c ON c.id = m.conversation_id, "
                "to_tsquery('simple'::regconfig, :match) q "
                f"WHERE m.status <> 'streaming' AND {vector} @@ q AND {scope}"
            )
        else:
            hits = (
                "SELECT m.conversation_id AS cid, m.id AS mid, -bm25(messages_fts) AS score "
                "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
                "JOIN conversations c ON c.id = m.conversation_id "
                f"WHERE messages_fts MATCH :match AND {scope}"
            )
        return (
            "SELECT cid, mid, score FROM (SELECT cid, mid, score, ROW_NUMBER() OVER "
            f"(PARTITION BY cid ORDER BY score DESC, mid DESC) AS rn FROM ({hits}) hits) ranked "
            "WHERE rn = 1 ORDER BY score DESC, mid DESC LIMIT :limit"
        )

    # -- results --------------------------------------------------------------------------

    def _hits(
        self,
        s: Session,
        user_id: int,
        parsed: ParsedQuery,
        titles: dict[str, float],
        best: dict[str, tuple[int, float]],
        limit: int,
    ) -> list[SearchHit]:
        ids = set(titles) | set(best)
        if not ids:
            return []
        conversations = {
            c.id: c
            for c in s.scalars(
                select(Conversation).where(
                    Conversation.user_id == user_id,
                    Conversation.id.in_(bindparam("ids", expanding=True)),
                ),
                {"ids": list(ids)},
            )
        }

        def rank(cid: str) -> tuple[bool, float, float]:
            score = best[cid][1] if cid in best else float(titles.get(cid, 0.0))
            return (cid in titles, score, conversations[cid].updated_at.timestamp())

        ranked = sorted((c for c in ids if c in conversations), key=rank, reverse=True)[:limit]
        message_ids = [best[c][0] for c in ranked if c in best]
        contents = self._contents(s, message_ids)
        hits = []
        for cid in ranked:
            title = conversations[cid].title
            message_id = best[cid][0] if cid in best else None
            source = contents.get(message_id, title) if message_id is not None else title
            snippet, spans = make_snippet(source, parsed.words, parsed.substrings)
            hits.append(SearchHit(cid, title, snippet, spans, message_id, rank(cid)[1]))
        return hits

    @staticmethod
    def _contents(s: Session, message_ids: list[int]) -> dict[int, str]:
        if not message_ids:
            return {}
        query = select(Message.id, Message.content).where(
            Message.id.in_(bindparam("mids", expanding=True))
        )
        return {row[0]: row[1] for row in s.execute(query, {"mids": message_ids})}
