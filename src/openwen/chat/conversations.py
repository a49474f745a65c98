"""The persistent chat flow: answers generated into stored conversations, saved as they stream.

    chat = ConversationChat(storage, service)
    turn = await chat.send(user.id, conversation_id, "Hello")
    async for event in turn.events():      # TurnStarted, TextDelta ..., then TurnEnded
        ...

Nothing is lost:

- the user message is stored before generation starts, with the assistant message beside it,
  status ``streaming``;
- the answer's text (and reasoning) is saved every ``save_interval`` seconds while it streams;
- at the end the answer is marked ``complete`` (with model, sampling, token counts, timings and
  finish reason in its metadata), ``incomplete`` when it was stopped, or ``error``;
- :meth:`ConversationChat.recover_interrupted`, called at server start and periodically, marks
  ``incomplete`` the answers left ``streaming`` by an instance that is gone (its heartbeat
  lease expired, see :mod:`openwen.storage.cluster`); answers other live instances are writing
  are left alone.

Lifetime: a turn generates while someone listens. Closing :meth:`Turn.events` (the client went
away), :meth:`Turn.stop` or :meth:`ConversationChat.stop` ends generation (a stop handled by
another instance reaches the writer through a cancel flag in the store, polled as it saves);
what was generated is kept, marked ``incomplete``. Editing a user message or regenerating an
answer adds a sibling in the message tree, so earlier versions stay reachable.

The prompt is the conversation's system prompt plus the branch from the root down to the user
message being answered; the model, sampling, ``max_tokens`` and thinking switch come from the
conversation's settings (see :class:`ChatSettings`). When the branch does not fit the model's
context, the oldest messages are left out (the count is kept in ``metadata.trimmed_messages``).

Tools (``settings.tools``, on unless false, when the chat was given a tool source): the answer is
run by the :class:`~openwen.chat.agent.Agent`. Every step is stored as it completes: the
assistant message that called tools (``tool_calls``, status ``complete``), one ``tool`` message
per result (``metadata``: name, arguments, duration, error, source, images), then the next
assistant message, each the child of the one before; :class:`StepSaved` streams each. A tool that
needs the user's confirmation streams a :class:`ToolConfirmRequest` and waits for
:meth:`ConversationChat.answer_confirmation` (no answer in time is a no).

Documents and memory (when the chat was given a knowledge base): an explicit "remember that ..."
is stored, recalled memories and the sources of the documents attached to the conversation and of
its collection (``settings.collection``) go LATE into the prompt (see
:mod:`openwen.chat.turn_knowledge`), a :class:`TurnContext` event lists them, and the answer's
metadata keeps the citations. Automatic memory extraction, when the user switched it on, runs
after the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from openwen.chat.answer_store import AnswerStore
from openwen.chat.service import ChatService
from openwen.chat.turn import (
    MAX_TRIMS,
    ChatSettings,
    EndStatus,
    StepSaved,
    Turn,
    TurnContext,
    TurnEnded,
    TurnEvent,
    TurnServices,
    TurnStarted,
    trim,
    usage_metadata,
)
from openwen.chat.turn_tools import (
    DEFAULT_CONFIRM_TIMEOUT,
    ToolConfirmAnswered,
    ToolConfirmRequest,
    ToolSource,
)
from openwen.errors import InvalidRequestError, NotFoundError
from openwen.messages import Message
from openwen.storage import ConversationRecord, MessageRecord, Storage
from openwen.storage.cluster import DEFAULT_LEASE_SECONDS
from openwen.storage.conversations import DEFAULT_TITLE

if TYPE_CHECKING:
    from openwen.knowledge import KnowledgeBase
    from openwen.models.profiles import Capabilities, Profile

__all__ = [
    "MAX_TRIMS",
    "ChatSettings",
    "ConversationChat",
    "EndStatus",
    "StepSaved",
    "ToolConfirmAnswered",
    "ToolConfirmRequest",
    "Turn",
    "TurnContext",
    "TurnEnded",
    "TurnEvent",
    "TurnStarted",
    "prompt_history",
    "trim",
    "usage_metadata",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
ProfileSource = Callable[[int, str], "tuple[Profile, Capabilities]"]
MAX_CONTENT = 200_000
TITLE_LENGTH = 60
DEFAULT_SAVE_INTERVAL = 0.5
REMOTE_STOP_POLL = 0.2


# -- the chat ----------------------------------------------------------------------------------


class ConversationChat:
    """Generates answers into a user's stored conversations, through the chat service.

    ``tools`` gives each user's tools (answers then run through the agent loop unless a
    conversation switches tools off); ``knowledge`` adds documents and memory; a tool call that
    needs confirmation waits ``confirm_timeout`` seconds for the user's answer. ``profiles``
    gives a model's profile for a user (blocking; see :mod:`openwen.models.profiles`): its
    defaults fill what a conversation's settings leave unset."""

    def __init__(
        self,
        storage: Storage,
        service: ChatService,
        *,
        save_interval: float = DEFAULT_SAVE_INTERVAL,
        tools: ToolSource | None = None,
        knowledge: KnowledgeBase | None = None,
        confirm_timeout: float = DEFAULT_CONFIRM_TIMEOUT,
        profiles: ProfileSource | None = None,
    ):
        self.storage = storage
        self.profiles = profiles
        self.service = service
        self.save_interval = save_interval
        self.tools = tools
        self.knowledge = knowledge
        self.confirm_timeout = confirm_timeout
        self.remote_stop_wait = 10.0
        self._turns: dict[int, Turn] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.store = AnswerStore(storage)  # every write of an answer: one thread, in order

    @property
    def default_model(self) -> str:
        registry = getattr(self.service, "registry", None)
        return str(getattr(registry, "default_model", None) or self.service.settings.model)

    def recover_interrupted(self, lease: float = DEFAULT_LEASE_SECONDS) -> int:
        """Mark ``incomplete`` the answers left ``streaming`` by an instance that is gone
        (call at start and periodically); answers of live instances are left alone."""
        count = self.storage.instances.sweep(lease, me=self.storage.instance_id)
        if count:
            log.info("marked %d interrupted answer(s) incomplete", count)
        return count

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking store call on the writer thread (in order of submission)."""
        return await self.store.write(fn, *args, **kwargs)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking store read on a worker thread."""
        return await self.store.read(fn, *args, **kwargs)

    # -- starting turns ---------------------------------------------------------------------

    async def send(
        self,
        user_id: int,
        conversation_id: str,
        content: str,
        *,
        parent_id: int | None | Literal["current"] = "current",
    ) -> Turn:
        """Store a user message (a child of ``parent_id``, by default the current leaf) and
        start answering it."""
        content = check_content(content)
        conversation = await self.read(self.storage.conversations.get, user_id, conversation_id)
        self._check_idle(conversation.id)
        if parent_id == "current":
            parent_id = conversation.current_leaf_id
        question = await self.write(
            self.storage.messages.add,
            user_id,
            conversation.id,
            parent_id=parent_id,
            role="user",
            content=content,
        )
        if parent_id is None and conversation.title == DEFAULT_TITLE:
            conversation = await self.write(
                self.storage.conversations.rename, user_id, conversation.id, title_from(content)
            )
        return await self._answer(user_id, conversation, question, question)

    async def edit(self, user_id: int, message_id: int, content: str) -> Turn:
        """Add an edited copy of user message ``message_id`` beside it and answer that."""
        content = check_content(content)
        original = await self.read(self.storage.messages.get, user_id, message_id)
        if original.role != "user":
            raise InvalidRequestError("only user messages can be edited", param="message_id")
        self._check_idle(original.conversation_id)
        question = await self.write(
            self.storage.messages.add,
            user_id,
            original.conversation_id,
            parent_id=original.parent_id,
            role="user",
            content=content,
        )
        conversation = await self.read(
            self.storage.conversations.get, user_id, original.conversation_id
        )
        return await self._answer(user_id, conversation, question, question)

    async def regenerate(self, user_id: int, message_id: int) -> Turn:
        """Answer again: a new sibling of answer ``message_id`` (or a new answer to user
        message ``message_id``)."""
        target = await self.read(self.storage.messages.get, user_id, message_id)
        if target.role == "user":
            question = target
        elif target.role in ("assistant", "tool") and target.parent_id is not None:
            question = await self.read(self._question_of, user_id, target)
        else:
            raise InvalidRequestError(
                "only answers (or user messages) can be regenerated", param="message_id"
            )
        self._check_idle(target.conversation_id)
        conversation = await self.read(
            self.storage.conversations.get, user_id, target.conversation_id
        )
        return await self._answer(user_id, conversation, None, question)

    def _question_of(self, user_id: int, answer: MessageRecord) -> MessageRecord:
        """The user message an answer (or one of its tool steps) answers."""
        path = self.storage.messages.path(user_id, answer.conversation_id, answer.id)
        for record in reversed(path):
            if record.role == "user":
                return record
        raise InvalidRequestError("this answer has no question to answer again",
                                  param="message_id")

    async def _answer(
        self,
        user_id: int,
        conversation: ConversationRecord,
        user_message: MessageRecord | None,
        question: MessageRecord,
    ) -> Turn:
        path = await self.read(self.storage.messages.preferred_path, user_id, conversation.id,
                              question.id)
        settings = ChatSettings.of(conversation.settings)
        model = settings.model or self.default_model
        if self.profiles is not None:  # the model's own defaults under the chat's settings
            profile, capabilities = await asyncio.to_thread(self.profiles, user_id, model)
            settings = settings.with_profile(profile, capabilities)
        answer = await self.write(
            self.storage.messages.add,
            user_id,
            conversation.id,
            parent_id=question.id,
            role="assistant",
            status="streaming",
            metadata={"model": model},
        )
        turn = Turn(
            self._services(),
            user_id=user_id,
            conversation=conversation,
            user_message=user_message,
            message=answer,
            history=prompt_history(path),
            settings=settings,
        )
        self._turns[answer.id] = turn
        return turn

    def _check_idle(self, conversation_id: str) -> None:
        if any(t.conversation.id == conversation_id for t in self._turns.values()):
            raise InvalidRequestError(
                "an answer is still being generated in this conversation; stop it first",
                code="conversation_busy",
            )

    # -- running turns ------------------------------------------------------------------------

    def running(self, user_id: int, message_id: int) -> Turn | None:
        """The user's turn that is writing (or wrote) message ``message_id``, while it runs."""
        for turn in self._turns.values():
            if message_id in turn.message_ids and turn.user_id == user_id:
                return turn
        return None

    def running_in(self, user_id: int, conversation_id: str) -> list[Turn]:
        return [
            t
            for t in self._turns.values()
            if t.user_id == user_id and t.conversation.id == conversation_id
        ]

    async def stop(self, user_id: int, message_id: int) -> bool:
        """Stop the answer ``message_id`` if it is generating, here or on another instance
        (then wait up to ``remote_stop_wait`` seconds for it to end); False when it is not
        generating (NotFoundError when it is not the user's)."""
        turn = self.running(user_id, message_id)
        if turn is not None:
            turn.stop()
            await turn.wait()
            return True
        message = await self.read(self.storage.messages.get, user_id, message_id)
        if message.status != "streaming":
            return False
        if not await self.write(self.storage.instances.request_cancel, message_id):
            return False
        deadline = asyncio.get_running_loop().time() + self.remote_stop_wait
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(REMOTE_STOP_POLL)
            message = await self.read(self.storage.messages.get, user_id, message_id)
            if message.status != "streaming":
                break
        return True

    async def answer_confirmation(self, user_id: int, confirmation_id: str, approved: bool
                                  ) -> int:
        """Allow or refuse the tool call a running turn of the user waits on, here or on
        another instance; the id of the answer's message. NotFoundError when there is no such
        question (answered, timed out, or someone else's)."""
        for turn in self._turns.values():
            if turn.user_id == user_id and turn.confirmations.answer(confirmation_id, approved):
                return turn.message.id
        message_id = await self.store.answer_question(user_id, confirmation_id, approved)
        if message_id is None:
            raise NotFoundError(f"no tool call waits for confirmation {confirmation_id!r}",
                                param="confirmation_id")
        return message_id

    def _services(self) -> TurnServices:
        return TurnServices(
            self.service, self.store, self.default_model, tools=self.tools,
            knowledge=self.knowledge, save_interval=self.save_interval,
            confirm_timeout=self.confirm_timeout, on_end=self._ended)

    def _ended(self, turn: Turn) -> None:
        """A turn ended: forget it, and extract memories from a complete answer (when the user
        switched that on), off the answer's path."""
        if self._turns.get(turn.first_message.id) is turn:
            del self._turns[turn.first_message.id]
        ended = turn.ended
        if ended is None or ended.status != "complete":
            return
        if self.knowledge is None or turn.user_message is None:
            return
        work = self._extract(turn.user_id, turn.user_message.content, turn.settings.model)
        task = asyncio.create_task(work, name=f"openwen-memories-{turn.user_message.id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _extract(self, user_id: int, text: str, model: str | None) -> None:
        assert self.knowledge is not None
        try:
            await self.knowledge.extract_memories(self.service, user_id, text, model=model)
        except Exception:
            log.warning("automatic memory extraction failed", exc_info=True)

    async def aclose(self) -> None:
        """Stop every running turn (their answers are saved as incomplete)."""
        turns = list(self._turns.values())
        for turn in turns:
            turn.stop()
        for turn in turns:
            with contextlib.suppress(Exception):
                await turn.wait()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self.store.close()


def check_content(content: object) -> str:
    if not isinstance(content, str) or not content.strip():
        raise InvalidRequestError("the message is empty", param="content")
    if len(content) > MAX_CONTENT:
        raise InvalidRequestError(f"the message is over {MAX_CONTENT} characters", param="content")
    return content


def title_from(content: str) -> str:
    line = " ".join(content.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


def prompt_history(path: list[MessageRecord]) -> list[Message]:
    """The branch as prompt messages: reasoning left out (templates drop it for past turns),
    failed answers with nothing in them skipped, tool calls whose results were never stored
    (the answer was stopped while its tools ran) left out."""
    answered = {r.tool_call_id for r in path if r.role == "tool" and r.tool_call_id}
    history = []
    for record in path:
        if record.role == "system":
            continue  # the conversation's system prompt goes first instead
        calls = record.tool_calls
        if record.role == "assistant":
            calls = tuple(c for c in calls if c.id in answered)
            if not record.content and not calls and (
                record.tool_calls or record.status != "complete"
            ):
                continue
        name = record.metadata.get("name") if record.role == "tool" else None
        history.append(
            Message(
                role=record.role,
                content=record.content,
                tool_calls=calls,
                tool_call_id=record.tool_call_id,
                name=name if isinstance(name, str) else None,
            )
        )
    return history
