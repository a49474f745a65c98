"""Datasets made from what openwen stores: a user's rated conversations, or a document collection.

Both become the JSONL a job keeps (``data.jsonl``), so the runner trains them like any file:

- **Conversations**: every answer the user marked good (👍) and/or edited becomes a chat example:
  the conversation's system prompt, its earlier turns as context (at most
  ``MAX_CONTEXT_MESSAGES`` messages and ``MAX_CONTEXT_CHARS`` characters, edited answers in
  their edited form, marked ``"weight": 0`` so they are not learnt), the question, and the
  answer (the edited text when there is one). Answers marked bad (👎) never count, edited or
  not; answers that called tools are left out (a dataset line has no tool turns).
- **Documents**: each document of the collection is a ``{"text": ...}`` line (continued
  training: loss on every token, cut into pieces of the maximum length).

The dataset's name says where it came from (``conversations:alice:rated=both``,
``documents:alice:collection=work``); its sha256 is that of the JSONL built, so the lineage
pins the exact examples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from openwen.storage import MessageRecord, Storage
from openwen.tune.errors import DatasetError

Rated = Literal["good", "edited", "both"]
RATED: tuple[Rated, ...] = ("good", "edited", "both")
MAX_CONTEXT_MESSAGES = 6  # earlier messages kept before the question
MAX_CONTEXT_CHARS = 6000


@dataclass(frozen=True)
class Built:
    """A dataset built from the store: its JSONL, its name, and what went in."""

    data: bytes
    name: str
    examples: int
    skipped: int = 0  # answers that qualified but could not become an example (tool calls)


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def conversations_dataset(storage: Storage, user_id: int, username: str,
                          rated: str = "both") -> Built:
    """The user's answers rated good and/or edited, as chat examples (see the module's doc)."""
    if rated not in RATED:
        raise DatasetError(f"rated must be one of {', '.join(RATED)}, not {rated!r}")
    picked = storage.feedback.rated(user_id, good=rated in ("good", "both"),
                                    edited=rated in ("edited", "both"))
    rows: list[dict[str, Any]] = []
    skipped = 0
    for answer, _ in picked:
        row = _example(storage, user_id, answer)
        if row is None:
            skipped += 1
        else:
            rows.append(row)
    if not rows:
        what = {"good": "marked good", "edited": "edited",
                "both": "marked good or edited"}[rated]
        extra = f" ({skipped} used tools, which a dataset cannot hold)" if skipped else ""
        raise DatasetError(f"no answers {what} in {username}'s conversations{extra}: rate "
                           "answers with the thumbs up or edit them in the web app first")
    return Built(data=_jsonl(rows), name=f"conversations:{username}:rated={rated}",
                 examples=len(rows), skipped=skipped)


def _example(storage: Storage, user_id: int, answer: MessageRecord) -> dict[str, Any] | None:
    """One chat example ending in ``answer``; None when its exchange used tools."""
    path = storage.messages.preferred_path(user_id, answer.conversation_id, answer.id)
    questions = [i for i, m in enumerate(path) if m.role == "user"]
    if not questions or answer.tool_calls or not answer.content.strip():
        return None
    start = questions[-1]
    if any(m.role == "tool" or m.tool_calls for m in path[start + 1:]):
        return None
    context = _context(path[:start])
    conversation = storage.conversations.get(user_id, answer.conversation_id)
    messages: list[dict[str, Any]] = []
    if conversation.system_prompt:
        messages.append({"role": "system", "content": conversation.system_prompt})
    messages += context
    messages.append({"role": "user", "content": path[start].content})
    messages.append({"role": "assistant", "content": path[-1].content})
    return {"messages": messages}


def _context(earlier: list[MessageRecord]) -> list[dict[str, Any]]:
    """The turns before the question: plain user and assistant text only, the newest first
    kept, starting with a user message; earlier answers are context (weight 0)."""
    kept: list[dict[str, Any]] = []
    chars = 0
    for m in reversed(earlier):
        if m.role not in ("user", "assistant") or m.tool_calls or not m.content.strip():
            continue
        if len(kept) >= MAX_CONTEXT_MESSAGES or chars + len(m.content) > MAX_CONTEXT_CHARS:
            break
        chars += len(m.content)
        turn: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.role == "assistant":
            turn["weight"] = 0
        kept.append(turn)
    kept.reverse()
    while kept and kept[0]["role"] != "user":
        kept.pop(0)
    return kept


def documents_dataset(storage: Storage, user_id: int, username: str, collection: str) -> Built:
    """Every document of ``collection`` as a plain-text example."""
    from openwen.knowledge.documents import DocumentStore
    from openwen.knowledge.records import Scope

    docs = DocumentStore(storage.db).contents(user_id, Scope(collection=collection))
    rows = [{"text": text} for _, text in docs if text.strip()]
    if not rows:
        raise DatasetError(f"the collection '{collection}' has no documents with text; add some "
                           f"with: openwen docs add FILE --collection {collection}")
    return Built(data=_jsonl(rows), name=f"documents:{username}:collection={collection}",
                 examples=len(rows))
