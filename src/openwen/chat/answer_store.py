"""Where a stored conversation's answers are written: one writer thread, in order.

Every write of a streaming answer goes through :meth:`AnswerStore.write`, on one thread, in the
order of submission, so a save whose caller was cancelled can never land after a later one. A
:class:`~openwen.chat.turn.Turn` writes through this store and never reaches into the
:class:`~openwen.chat.conversations.ConversationChat` that made it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from openwen.errors import InvalidRequestError, NotFoundError
from openwen.messages import ToolCall
from openwen.storage import MessageRecord, Storage

T = TypeVar("T")


class AnswerStore:
    """The store calls of answers being generated (blocking ones run on the writer thread)."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="openwen-chat-save")

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking store call on the writer thread (in order of submission)."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._writer, functools.partial(fn, *args, **kwargs))
        return await asyncio.shield(future)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking store read on a worker thread."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def cancel_requested(self, message_ids: Iterable[int]) -> bool:
        """Whether a stop for one of these answers was pressed (on any instance)."""
        return await self.read(self.storage.instances.cancel_requested, tuple(message_ids))

    def questions(self, user_id: int, message_id: Callable[[], int]) -> StoredQuestions:
        """Where the open tool confirmations of ``user_id``'s answer are kept (``message_id``
        gives the answer's current message)."""
        return StoredQuestions(self, user_id, message_id)

    async def answer_question(self, user_id: int, key: str, approved: bool) -> int | None:
        """Decide an open question recorded by any instance: its answer's message id, or
        None when ``user_id`` has no such open question."""
        return await self.write(self.storage.confirmations.answer, user_id, key, approved)

    async def add(self, user_id: int, conversation_id: str, **fields: Any) -> MessageRecord:
        return await self.write(self.storage.messages.add, user_id, conversation_id, **fields)

    async def append(self, user_id: int, message_id: int, content: str, reasoning: str) -> None:
        await self.write(self.storage.messages.append, user_id, message_id, content, reasoning)

    async def finish(self, user_id: int, message_id: int, content: str, reasoning: str,
                     tool_calls: tuple[ToolCall, ...], status: str, metadata: dict[str, Any]
                     ) -> MessageRecord | None:
        """Append the last text and mark the answer ``status``; None when the conversation was
        deleted meanwhile."""
        return await self.write(self._finish, user_id, message_id, content, reasoning,
                                tool_calls, status, metadata)

    async def add_closing(self, user_id: int, conversation_id: str, parent_id: int,
                          content: str, status: str, metadata: dict[str, Any]
                          ) -> MessageRecord | None:
        """The last message of an answer that ended between tool steps."""
        return await self.write(self._add_closing, user_id, conversation_id, parent_id,
                                content, status, metadata)

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    # -- on the writer thread --------------------------------------------------------------

    def _finish(self, user_id: int, message_id: int, content: str, reasoning: str,
                tool_calls: tuple[ToolCall, ...], status: str, metadata: dict[str, Any]
                ) -> MessageRecord | None:
        messages = self.storage.messages
        try:
            messages.append(user_id, message_id, content, reasoning)
            return messages.update(user_id, message_id, tool_calls=tool_calls or None,
                                   status=status, metadata=metadata)
        except NotFoundError:
            return None  # the conversation was deleted while the answer streamed
        except InvalidRequestError:  # no longer streaming: someone else finished it
            return messages.get(user_id, message_id)

    def _add_closing(self, user_id: int, conversation_id: str, parent_id: int, content: str,
                     status: str, metadata: dict[str, Any]) -> MessageRecord | None:
        try:
            return self.storage.messages.add(
                user_id, conversation_id, parent_id=parent_id, role="assistant",
                content=content, status=status, metadata=metadata)
        except NotFoundError:
            return None


class StoredQuestions:
    """A turn's open questions in the database (see
    :class:`~openwen.chat.turn_tools.SharedQuestions`)."""

    def __init__(self, store: AnswerStore, user_id: int, message_id: Callable[[], int]):
        self.store = store
        self.user_id = user_id
        self.message_id = message_id

    async def open(self, key: str) -> None:
        await self.store.write(self.store.storage.confirmations.open, key, self.user_id,
                               self.message_id())

    async def decision(self, key: str) -> bool | None:
        return await self.store.read(self.store.storage.confirmations.decision, key)

    async def close(self, key: str) -> None:
        await self.store.write(self.store.storage.confirmations.close, key)
