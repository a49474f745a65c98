"""Pieces both embedded engines share: sampling defaults, token pieces, and the output decoder.

:class:`OutputDecoder` turns sampled token ids into stream events: UTF-8-safe detokenising, stop
strings, the model family's output parser (reasoning, text, tool calls) and optional logprobs.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openwen.engines.inert import MARK, SpecialTexts
from openwen.engines.logprobs import LogprobReader
from openwen.engines.stops import StopMatcher
from openwen.errors import ModelFileError
from openwen.formats import ChatFormat, IncrementalDetokenizer, RenderedPrompt, format_for
from openwen.formats.base import OutputParser, PlainParser
from openwen.messages import StreamEvent, TextDelta
from openwen.requests import ChatRequest, Sampling

# llama.cpp's own defaults, used where neither the request nor the model family says otherwise.
BASE_SAMPLING = Sampling(temperature=0.8, top_p=0.95, top_k=40, min_p=0.05, presence_penalty=0.0,
                         frequency_penalty=0.0, repeat_penalty=1.0)


def merge_sampling(*layers: Sampling) -> Sampling:
    """Later layers win where they set a value."""
    values: dict[str, Any] = {}
    for layer in layers:
        values.update({k: v for k, v in layer.__dict__.items() if v is not None})
    return Sampling(**values)


def chat_format(metadata: dict[str, str], *, bos_text: str, eos_text: str) -> ChatFormat:
    """The model family adapter for a GGUF file, from its metadata and BOS/EOS token texts."""
    return format_for(
        metadata.get("tokenizer.chat_template"),
        architecture=metadata.get("general.architecture"),
        bos_token=bos_text,
        eos_token=eos_text,
        model_name=metadata.get("general.name"),
    )


def render_request(fmt: ChatFormat, request: ChatRequest,
                   special: SpecialTexts | None = None) -> RenderedPrompt:
    """The prompt text: a raw completion prompt as given, else the chat template's rendering.

    With ``special``, the special tokens' texts inside the messages and tool definitions are
    escaped first (:mod:`openwen.engines.inert`): tokenise the result with
    :func:`~openwen.engines.inert.tokenize_segments`.
    """
    if request.prompt is not None:
        return RenderedPrompt(request.prompt.replace(MARK, MARK + MARK))
    messages, tools = request.messages, request.tools
    if special is not None:
        messages, tools = special.escape_request_parts(messages, tools)
    return fmt.render(messages, tools=tools, enable_thinking=request.thinking)


LLAMA_TOKEN_ATTR_UNKNOWN = 1 << 0
LLAMA_TOKEN_ATTR_CONTROL = 1 << 3
LLAMA_TOKEN_ATTR_USER_DEFINED = 1 << 4
_MATCHED_ATTRS = LLAMA_TOKEN_ATTR_UNKNOWN | LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_USER_DEFINED


def special_texts(vocab: Any) -> SpecialTexts:
    """The texts llama.cpp's tokenizer would turn into a control or user-defined token."""
    import llama_cpp

    get_attr, get_text = llama_cpp.llama_vocab_get_attr, llama_cpp.llama_vocab_get_text
    texts = []
    for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
        if get_attr(vocab, token) & _MATCHED_ATTRS:
            raw = get_text(vocab, token)
            if raw:
                texts.append(raw.decode("utf-8", errors="replace"))
    return SpecialTexts(texts)


def needs_bos(text: str, *, adds_bos: bool, bos_text: str) -> bool:
    """Whether to prepend BOS: the model wants one and the rendered text does not start with it."""
    return adds_bos and not (bos_text and text.startswith(bos_text))


def check_gguf(path: Path) -> None:
    """A clear :class:`ModelFileError` unless ``path`` is a GGUF file."""
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ModelFileError(f"{path} is not a GGUF model file")


class TokenPieces:
    """Token id -> raw bytes of its text (special tokens render empty), memoised.

    Thread-safe enough: the vocabulary is read-only and a racing fill writes the same value.
    """

    def __init__(self, vocab: Any):
        import llama_cpp

        self._vocab = vocab
        self._to_piece = llama_cpp.llama_token_to_piece
        self._buf = ctypes.create_string_buffer(256)
        self._cache: dict[int, bytes] = {}

    def __call__(self, token: int) -> bytes:
        piece = self._cache.get(token)
        if piece is None:
            piece = self._lookup(token)
            self._cache[token] = piece
        return piece

    def _lookup(self, token: int) -> bytes:
        n = self._to_piece(self._vocab, token, self._buf, len(self._buf), 0, False)
        if n < 0:  # longer than the buffer: ask again with room for it
            buf = ctypes.create_string_buffer(-n)
            n = self._to_piece(self._vocab, token, buf, len(buf), 0, False)
            return buf.raw[:n]
        return self._buf.raw[:n]


class OutputDecoder:
    """Token ids in; reasoning, text and tool-call events out."""

    def __init__(self, fmt: ChatFormat, request: ChatRequest, rendered: RenderedPrompt, *,
                 piece_bytes: Callable[[int], bytes], logprobs: LogprobReader | None = None):
        self._piece_bytes = piece_bytes
        self._detok = IncrementalDetokenizer(piece_bytes)
        self._stops = StopMatcher(tuple(request.stop) + fmt.stop_strings)
        self._parser: OutputParser = (
            PlainParser() if request.prompt is not None else
            fmt.parser(rendered, tools_enabled=bool(request.tools)
                       and request.tool_choice != "none"))
        self.logprobs = logprobs

    @property
    def stopped(self) -> bool:
        return self._stops.stopped

    @property
    def tool_call_count(self) -> int:
        return self._parser.tool_call_count

    def add(self, token: int, logits: Any = None) -> list[StreamEvent]:
        """Events for one sampled token; ``logits`` (a float pointer) feeds logprobs if asked."""
        logprob = self.logprobs.read(token, logits) if self.logprobs is not None else None
        text = self._stops.feed(self._detok.add_bytes(self._piece_bytes(token)))
        events: list[StreamEvent] = list(self._parser.feed(text)) if text else []
        if logprob is not None:
            events = attach_logprob(events, logprob)
        return events

    def finish(self) -> list[StreamEvent]:
        text = self._stops.feed(self._detok.flush()) + self._stops.flush()
        return [*(self._parser.feed(text) if text else []), *self._parser.finish()]


def attach_logprob(events: list[StreamEvent], logprob: Any) -> list[StreamEvent]:
    """Attach a token's logprob to the first text event it produced (if any)."""
    for i, event in enumerate(events):
        if isinstance(event, TextDelta):
            events[i] = TextDelta(event.text, logprobs=(logprob,))
            break
    return events
