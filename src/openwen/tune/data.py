"""Datasets for fine-tuning: read JSONL, render with the base model's chat template, mask, split.

A line is either an OpenAI chat (``{"messages": [{"role": ..., "content": ...}, ...]}``) or a
pair (``{"prompt": ..., "completion": ...}``, a user message and the assistant's answer). Blank
lines are skipped; anything else that is not one of the two shapes is an error naming its line.

Rendering uses the same :class:`~openwen.formats.ChatFormat` the engines serve the model with, so
the model learns exactly the prompt shape it will later see. The loss is on assistant tokens only:
each assistant turn's span is the text its message adds after the prompt up to the generation
prompt, including the end-of-turn token, so the derivative also learns when to stop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openwen.formats import ChatFormat
from openwen.messages import Message
from openwen.tune.errors import DatasetError

log = logging.getLogger(__name__)

IGNORE = -100  # label of a token the loss skips (PyTorch's cross-entropy default)
ROLES = ("system", "user", "assistant")
MAX_TRUNCATED_SHARE = 0.25  # more truncated examples than this share: refuse the dataset


@dataclass(frozen=True)
class RawDataset:
    """Parsed examples plus what identifies the dataset in the derivative's lineage."""

    name: str
    sha256: str
    examples: list[list[Message]]


@dataclass(frozen=True)
class Example:
    """One tokenised example: ``labels`` is ``IGNORE`` where no loss is taken."""

    ids: list[int]
    labels: list[int]

    @property
    def n_target(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


@dataclass
class Prepared:
    train: list[Example]
    heldout: list[Example]
    heldout_chats: list[list[Message]]
    truncated: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def train_tokens(self) -> int:
        return sum(len(e.ids) for e in self.train)


def read_jsonl(path: Path, *, name: str | None = None) -> RawDataset:
    """Parse a JSONL dataset file; :class:`DatasetError` names the first bad line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_jsonl(data, name=name or path.name)


def parse_jsonl(data: bytes, *, name: str) -> RawDataset:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = data[: exc.start].count(b"\n") + 1
        raise DatasetError("not UTF-8 text", line=bad_line) from None
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            examples.append(parse_line(line, number))
    if not examples:
        raise DatasetError(f"the dataset '{name}' has no examples")
    return RawDataset(name=name, sha256=hashlib.sha256(data).hexdigest(), examples=examples)


def parse_line(line: str, number: int) -> list[Message]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"not valid JSON ({exc.msg} at column {exc.colno})",
                           line=number) from None
    if not isinstance(obj, dict):
        raise DatasetError("expected a JSON object with 'messages' or 'prompt' and 'completion'",
                           line=number)
    if "messages" in obj:
        return _chat(obj["messages"], number)
    if "prompt" in obj and "completion" in obj:
        prompt, completion = obj["prompt"], obj["completion"]
        if not isinstance(prompt, str) or not isinstance(completion, str):
            raise DatasetError("'prompt' and 'completion' must be strings", line=number)
        if not completion.strip():
            raise DatasetError("'completion' is empty", line=number)
        return [Message(role="user", content=prompt), Message(role="assistant", content=completion)]
    raise DatasetError("expected 'messages' (a chat) or 'prompt' and 'completion'", line=number)


def _chat(messages: Any, number: int) -> list[Message]:
    if not isinstance(messages, list) or not messages:
        raise DatasetError("'messages' must be a non-empty list", line=number)
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise DatasetError(f"message {i + 1} is not an object", line=number)
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise DatasetError(f"message {i + 1} has role {role!r}; use one of "
                               + ", ".join(ROLES), line=number)
        if not isinstance(content, str):
            raise DatasetError(f"message {i + 1} has no text 'content'", line=number)
        out.append(Message(role=role, content=content))
    if out[0].role == "assistant":
        raise DatasetError("the chat starts with an assistant message; put the user's message "
                           "(or a system message) first", line=number)
    if not any(m.role == "assistant" and (m.content or "").strip() for m in out):
        raise DatasetError("the chat has no assistant message to learn from", line=number)
    return out


# -- rendering and masking ------------------------------------------------------------------------

Tokenize = Callable[[str, bool], list[int]]  # (text, add_bos) -> token ids


def segments(fmt: ChatFormat, chat: Sequence[Message]) -> list[tuple[str, bool]]:
    """The rendered chat as ``(text, trained)`` pieces that concatenate to the full rendering.

    Every assistant turn is trained when the template renders the conversation incrementally
    (each prefix is a prefix of the next); templates that rewrite history (Qwen3 drops earlier
    reasoning) train on the last assistant turn only.
    """
    turns = [i for i, m in enumerate(chat) if m.role == "assistant"]
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i in turns:
        prompt = fmt.render(chat[:i], add_generation_prompt=True).text
        full = fmt.render(chat[: i + 1], add_generation_prompt=False).text
        if not (prompt.startswith(done) and full.startswith(prompt)):
            return _last_turn(fmt, chat, turns[-1])
        pieces += [(prompt[len(done):], False), (full[len(prompt):], True)]
        done = full
    return [(t, trained) for t, trained in pieces if t]


def _last_turn(fmt: ChatFormat, chat: Sequence[Message], last: int) -> list[tuple[str, bool]]:
    prompt = fmt.render(chat[:last], add_generation_prompt=True).text
    full = fmt.render(chat[: last + 1], add_generation_prompt=False).text
    if not full.startswith(prompt):
        # the template renders the answer differently from what follows a generation prompt
        return [(prompt, False), (chat[last].content or "", True)]
    return [(prompt, False), (full[len(prompt):], True)]


def tokenize_chat(fmt: ChatFormat, tokenize: Tokenize, chat: Sequence[Message]) -> Example:
    """Tokenise piece by piece (as a served prompt and its generated answer are)."""
    ids: list[int] = []
    labels: list[int] = []
    for k, (text, trained) in enumerate(segments(fmt, chat)):
        piece = tokenize(text, k == 0)
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
    return Example(ids, labels)


def prepare(raw: RawDataset, fmt: ChatFormat, tokenize: Tokenize, *, max_length: int,
            holdout: float = 0.1, seed: int = 0,
            max_truncated_share: float = MAX_TRUNCATED_SHARE) -> Prepared:
    """Tokenise, truncate to ``max_length`` and split off the held-out examples."""
    if len(raw.examples) < 2:
        raise DatasetError(f"the dataset '{raw.name}' has {len(raw.examples)} example; at least "
                           "2 are needed (one is held out for evaluation)")
    order = list(range(len(raw.examples)))
    random.Random(seed).shuffle(order)
    n_held = min(max(1, round(len(order) * holdout)), len(order) - 1)
    held, train_idx = sorted(order[:n_held]), sorted(order[n_held:])
    examples: list[Example] = []
    truncated = 0
    for chat in raw.examples:
        ex = tokenize_chat(fmt, tokenize, chat)
        if len(ex.ids) > max_length:
            truncated += 1
            ex = Example(ex.ids[:max_length], ex.labels[:max_length])
        examples.append(ex)
    warnings = []
    if truncated:
        share = truncated / len(examples)
        what = f"{truncated} of {len(examples)} examples are longer than {max_length} tokens"
        if share > max_truncated_share:
            raise DatasetError(f"{what}, more than {max_truncated_share:.0%}; shorten them or "
                               "raise the maximum length (--max-length)")
        msg = f"{what} and were truncated"
        warnings.append(msg)
        log.warning("%s", msg)
    empty = [i + 1 for i, e in enumerate(examples) if e.n_target == 0]
    if len(empty) == len(examples):
        raise DatasetError("no example has an assistant answer left after truncation")
    return Prepared(
        train=[examples[i] for i in train_idx if examples[i].n_target],
        heldout=[examples[i] for i in held if examples[i].n_target],
        heldout_chats=[raw.examples[i] for i in held],
        truncated=truncated,
        warnings=warnings,
    )
