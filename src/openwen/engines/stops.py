"""Stop strings over a text stream, holding back text that might be the start of a stop string."""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Feed text pieces; get back the text that is safe to emit and whether a stop string hit.

    The matched stop string itself is never emitted (OpenAI semantics).
    """

    def __init__(self, stops: Sequence[str]):
        self._stops = tuple(s for s in stops if s)
        self._firsts = frozenset(s[0] for s in self._stops)  # a match or a partial one starts so
        self._held = ""
        self.stopped = False
        self.matched: str | None = None  # the stop string that ended the text

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        if not self._stops:
            return text
        buffer = self._held + text
        if not any(c in buffer for c in self._firsts):
            self._held = ""  # no stop string can start anywhere in it (most tokens)
            return buffer
        cut = _first_match(buffer, self._stops)
        if cut is not None:
            self.stopped = True
            self._held = ""
            self.matched = next(s for s in self._stops if buffer.startswith(s, cut))
            return buffer[:cut]
        keep = _longest_partial_suffix(buffer, self._stops)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.stopped else held


def _first_match(buffer: str, stops: tuple[str, ...]) -> int | None:
    hits = [i for i in (buffer.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None


def _longest_partial_suffix(buffer: str, stops: tuple[str, ...]) -> int:
    """Length of the longest suffix of ``buffer`` that is a proper prefix of some stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(buffer)), best, -1):
            if buffer.endswith(stop[:n]):
                best = n
                break
    return best
