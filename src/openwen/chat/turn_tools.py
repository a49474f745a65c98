"""Tools for one answer of a stored conversation: the registry, asking the user, storing results.

- :func:`tools_for` builds the registry a turn offers: the interface's tools for the user
  (built-ins, MCP) plus the ``remember`` tool when the user's memory is on (side-effecting,
  so it waits for the user's confirmation like ``write_file``).
- :class:`Confirmations` asks the user before a tool that needs confirmation runs: the turn
  streams a :class:`ToolConfirmRequest`, the interface answers through
  :meth:`ConversationChat.answer_confirmation` (on any instance: open questions are also kept in
  the database), and no answer within the timeout is a no.
- :func:`tool_message_metadata` is what a stored tool message keeps: name, arguments, duration,
  error, source, and the images the tool made (base64, so the page can show them inline).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from openwen.messages import ToolCall, ToolResultEvent
from openwen.tools.base import FunctionTool, Tool
from openwen.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from openwen.knowledge import KnowledgeBase

log = logging.getLogger(__name__)

ToolSource = Callable[[int], ToolRegistry]
"""The tools a user's chats may use (called in a worker thread with the user's id)."""

DEFAULT_CONFIRM_TIMEOUT = 300.0  # seconds the user has to approve a tool call
CONFIRM_POLL_SECONDS = 0.5  # how often a waiting question looks for another instance's answer
MAX_IMAGE_BYTES = 4 * 1024 * 1024  # images kept per tool message


@dataclass(frozen=True)
class ToolConfirmRequest:
    """The turn waits for the user to allow (or refuse) this call."""

    id: str
    call: ToolCall
    tool: str
    source: str
    description: str
    timeout: float
    kind: Literal["tool_confirm"] = "tool_confirm"


@dataclass(frozen=True)
class ToolConfirmAnswered:
    """How a confirmation ended: ``user`` answered, or the ``timeout`` passed (a no)."""

    id: str
    approved: bool
    by: Literal["user", "timeout"]
    kind: Literal["tool_confirmed"] = "tool_confirmed"


class SharedQuestions(Protocol):
    """Where a turn's open questions are recorded so that another instance can answer them
    (:class:`~openwen.storage.confirmations.ConfirmationRepo` through the answer store)."""

    async def open(self, key: str) -> None: ...

    async def decision(self, key: str) -> bool | None: ...

    async def close(self, key: str) -> None: ...


@dataclass
class Confirmations:
    """The open questions of one turn. ``announce`` puts events into the turn's stream.

    With ``shared``, each question is also recorded in the database and polled every
    ``poll_seconds`` while it waits, so a decision taken on another instance arrives too."""

    announce: Callable[[Any], None]
    timeout: float = DEFAULT_CONFIRM_TIMEOUT
    shared: SharedQuestions | None = None
    poll_seconds: float = CONFIRM_POLL_SECONDS
    pending: dict[str, asyncio.Future[bool]] = field(default_factory=dict)
    decisions: dict[str, str] = field(default_factory=dict)  # call id -> approved/declined/...

    async def ask(self, call: ToolCall, tool: Tool) -> bool:
        key = secrets.token_urlsafe(12)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.pending[key] = future
        if self.shared is not None:
            await self.shared.open(key)
        self.announce(ToolConfirmRequest(key, call, tool.name, tool.source, tool.description,
                                         self.timeout))
        try:
            async with asyncio.timeout(self.timeout):
                approved = await self._wait(key, future)
        except TimeoutError:
            self.decisions[call.id] = "timeout"
            self.announce(ToolConfirmAnswered(key, False, "timeout"))
            return False
        finally:
            self.pending.pop(key, None)
            if self.shared is not None:
                await asyncio.shield(self.shared.close(key))
        self.decisions[call.id] = "approved" if approved else "declined"
        self.announce(ToolConfirmAnswered(key, approved, "user"))
        return approved

    async def _wait(self, key: str, future: asyncio.Future[bool]) -> bool:
        """The answer given here (the future) or, polled, on another instance."""
        if self.shared is None:
            return await future
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(future), self.poll_seconds)
            except TimeoutError:
                decided = await self.shared.decision(key)
                if decided is not None:
                    return decided

    def answer(self, key: str, approved: bool) -> bool:
        """Settle question ``key``; False when it is not (or no longer) open here."""
        future = self.pending.get(key)
        if future is None or future.done():
            return False
        future.set_result(bool(approved))
        return True

    def cancel(self) -> None:
        for future in self.pending.values():
            future.cancel()


def tools_for(source: ToolSource | None, kb: KnowledgeBase | None, user_id: int
              ) -> ToolRegistry | None:
    """The registry for one answer (blocking: call it in a worker thread); None when the
    interface has no tools, or they could not be built."""
    if source is None:
        return None
    try:
        registry = source(user_id)
    except Exception:
        log.exception("could not build the tools of user %s; answering without tools", user_id)
        return None
    if kb is not None and "remember" not in registry:
        try:
            if kb.memory_enabled(user_id):
                # side-effecting: a memory returns in later chats, so an injected document
                # must not plant one unasked (the web app asks; a stored one says "tool")
                registry.add(FunctionTool(kb.remember_tool(user_id), name="remember",
                                          source="memory", side_effects=True))
        except Exception:
            log.exception("the remember tool is left out")
    return registry


def tool_message_metadata(result: ToolResultEvent, decision: str | None) -> dict[str, Any]:
    """A stored tool message's metadata (``content`` holds what the model read)."""
    meta: dict[str, Any] = {
        "name": result.call.name,
        "arguments": result.call.arguments,
        "duration_ms": round(result.duration_ms, 1),
        "source": result.source,
        "step": result.step,
    }
    if result.error:
        meta["error"] = result.error
    if decision:
        meta["confirmation"] = decision
    images: list[dict[str, str]] = []
    size = 0
    for image in result.images:
        size += len(image.data)
        if size > MAX_IMAGE_BYTES:
            meta["images_dropped"] = len(result.images) - len(images)
            break
        images.append({"mime_type": image.mime_type,
                       "data": base64.b64encode(image.data).decode("ascii")})
    if images:
        meta["images"] = images
    return meta
