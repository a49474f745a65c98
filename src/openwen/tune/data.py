"""Datasets for fine-tuning: read JSONL, render with the base model's chat template, mask, split.

A line is an OpenAI chat (``{"messages": [{"role": ..., "content": ...}, ...]}``; an assistant
message with ``"weight": 0`` is context only, not learnt, as in OpenAI's fine-tuning format), a
pair (``{"prompt": ..., "completion": ...}``, a user message and the assistant's answer), or plain
text (``{"text": ...}``, for continued training on documents: the loss is on every token and a
long text is cut into pieces of the maximum length). Blank lines are skipped; anything else is an
error naming its line.

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
    examples: list[list[Message] | str]  # a chat, or a plain text
    # per example: the indexes of assistant messages with weight 0 (context, not learnt)
    untrained: dict[int, frozenset[int]] = field(default_factory=dict)


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
    examples: list[list[Message] | str] = []
    untrained: dict[int, frozenset[int]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            example, skip = parse_row(line, number)
            if skip:
                untrained[len(examples)] = skip
            examples.append(example)
    if not examples:
        raise DatasetError(f"the dataset '{name}' has no examples")
    return RawDataset(name=name, sha256=hashlib.sha256(data).hexdigest(), examples=examples,
                      untrained=untrained)


def parse_line(line: str, number: int) -> list[Message] | str:
    return parse_row(line, number)[0]


def parse_row(line: str, number: int) -> tuple[list[Message] | str, frozenset[int]]:
    """One line: the chat (or text) and the indexes of its messages not learnt (weight 0)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"not valid JSON ({exc.msg} at column {exc.colno})",
                           line=number) from None
    if not isinstance(obj, dict):
        raise DatasetError("expected a JSON object with 'messages', 'prompt' and 'completion', "
                           "or 'text'", line=number)
    if "messages" in obj:
        return _chat(obj["messages"], number)
    if "prompt" in obj and "completion" in obj:
        prompt, completion = obj["prompt"], obj["completion"]
        if not isinstance(prompt, str) or not isinstance(completion, str):
            raise DatasetError("'prompt' and 'completion' must be strings", line=number)
        if not completion.strip():
            raise DatasetError("'completion' is empty", line=number)
        return [Message(role="user", content=prompt),
                Message(role="assistant", content=completion)], frozenset()
    if "text" in obj:
        if not isinstance(obj["text"], str) or not obj["text"].strip():
            raise DatasetError("'text' must be non-empty text", line=number)
        return obj["text"], frozenset()
    raise DatasetError("expected 'messages' (a chat), 'prompt' and 'completion', or 'text'",
                       line=number)


def _chat(messages: Any, number: int) -> tuple[list[Message], frozenset[int]]:
    if not isinstance(messages, list) or not messages:
        raise DatasetError("'messages' must be a non-empty list", line=number)
    out = []
    skip = set()
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise DatasetError(f"message {i + 1} is not an object", line=number)
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise DatasetError(f"message {i + 1} has role {role!r}; use one of "
                               + ", ".join(ROLES), line=number)
        if not isinstance(content, str):
            raise DatasetError(f"message {i + 1} has no text 'content'", line=number)
        weight = m.get("weight", 1)
        bad = weight not in (0, 1) or isinstance(weight, bool)
        if bad or (weight == 0 and role != "assistant"):
            raise DatasetError(f"message {i + 1} has weight {weight!r}; an assistant message's "
                               "weight is 0 (context only) or 1 (learnt)", line=number)
        if weight == 0:
            skip.add(i)
        out.append(Message(role=role, content=content))
    if out[0].role == "assistant":
        raise DatasetError("the chat starts with an assistant message; put the user's message "
                           "(or a system message) first", line=number)
    if not any(m.role == "assistant" and (m.content or "").strip() and i not in skip
               for i, m in enumerate(out)):
        raise DatasetError("the chat has no assistant message to learn from", line=number)
    return out, frozenset(skip)


# -- rendering and masking ------------------------------------------------------------------------

Tokenize = Callable[[str, bool], list[int]]  # (text, add_bos) -> token ids


def segments(fmt: ChatFormat, chat: Sequence[Message],
             untrained: frozenset[int] = frozenset()) -> list[tuple[str, bool]]:
    """The rendered chat as ``(text, trained)`` pieces that concatenate to the full rendering.

    Every assistant turn (except those in ``untrained``) is trained when the template renders
    the conversation incrementally (each prefix is a prefix of the next); templates that
    rewrite history (Qwen3 drops earlier reasoning) train on the last trained turn only.
    """
    turns = [i for i, m in enumerate(chat) if m.role == "assistant"]
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i in turns:
        prompt = fmt.render(chat[:i], add_generation_prompt=True).text
        full = fmt.render(chat[: i + 1], add_generation_prompt=False).text
        if not (prompt.startswith(done) and full.startswith(prompt)):
            last = max((t for t in turns if t not in untrained), default=turns[-1])
            return _last_turn(fmt, chat[: last + 1], last)
        pieces += [(prompt[len(done):], False), (full[len(prompt):], i not in untrained)]
        done = full
    return [(t, trained) for t, trained in pieces if t]


def _last_turn(fmt: ChatFormat, chat: Sequence[Message], last: int) -> list[tuple[str, bool]]:
    prompt = fmt.render(chat[:last], add_generation_prompt=True).text
    full = fmt.render(chat[: last + 1], add_generation_prompt=False).text
    if not full.startswith(prompt):
        # the template renders the answer differently from what follows a generation prompt
        return [(prompt, False), (chat[last].content or "", True)]
    return [(prompt, False), (full[len(prompt):], True)]


def tokenize_chat(fmt: ChatFormat, tokenize: Tokenize, chat: Sequence[Message],
                  untrained: frozenset[int] = frozenset()) -> Example:
    """Tokenise piece by piece (as a served prompt and its generated answer are)."""
    ids: list[int] = []
    labels: list[int] = []
    for k, (text, trained) in enumerate(segments(fmt, chat, untrained)):
        piece = tokenize(text, k == 0)
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
    return Example(ids, labels)


MIN_PIECE = 8  # a text's last piece shorter than this (in tokens) is dropped


def tokenize_text(tokenize: Tokenize, text: str, max_length: int) -> list[Example]:
    """A plain text as pieces of at most ``max_length`` tokens, every token learnt."""
    ids = tokenize(text, True)
    pieces = [ids[i:i + max_length] for i in range(0, len(ids), max_length)]
    keep = [p for k, p in enumerate(pieces) if k == 0 or len(p) >= MIN_PIECE]
    return [Example(p, list(p)) for p in keep if len(p) >= 2]


def prepare(raw: RawDataset, fmt: ChatFormat, tokenize: Tokenize, *, max_length: int,
            holdout: float = 0.1, seed: int = 0,
            max_truncated_share: float = MAX_TRUNCATED_SHARE) -> Prepared:
    """Tokenise (texts cut into pieces, chats truncated to ``max_length``) and split off the
    held-out examples (a text's pieces are examples of their own)."""
    units: list[tuple[Example, list[Message] | None]] = []
    truncated = n_chats = 0
    for k, example in enumerate(raw.examples):
        if isinstance(example, str):
            units += [(piece, None) for piece in tokenize_text(tokenize, example, max_length)]
            continue
        n_chats += 1
        ex = tokenize_chat(fmt, tokenize, example, raw.untrained.get(k, frozenset()))
        if len(ex.ids) > max_length:
            truncated += 1
            ex = Example(ex.ids[:max_length], ex.labels[:max_length])
        units.append((ex, example))
    if len(units) < 2:
        raise DatasetError(f"the dataset '{raw.name}' has {len(units)} example; at least "
                           "2 are needed (one is held out for evaluation)")
    order = list(range(len(units)))
    random.Random(seed).shuffle(order)
    n_held = min(max(1, round(len(order) * holdout)), len(order) - 1)
    held, train_idx = sorted(order[:n_held]), sorted(order[n_held:])
    warnings = []
    if truncated:
        share = truncated / n_chats
        what = f"{truncated} of {n_chats} examples are longer than {max_length} tokens"
        if share > max_truncated_share:
            raise DatasetError(f"{what}, more than {max_truncated_share:.0%}; shorten them or "
                               "raise the maximum length (--max-length)")
        msg = f"{what} and were truncated"
        warnings.append(msg)
        log.warning("%s", msg)
    examples = [ex for ex, _ in units]
    if all(e.n_target == 0 for e in examples):
        raise DatasetError("no example has an assistant answer left after truncation")
    return Prepared(
        train=[examples[i] for i in train_idx if examples[i].n_target],
        heldout=[examples[i] for i in held if examples[i].n_target],
        heldout_chats=[chat for i in held if (chat := units[i][1]) is not None],
        truncated=truncated,
        warnings=warnings,
    )
