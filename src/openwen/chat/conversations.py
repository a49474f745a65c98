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
- :meth:`ConversationChat.recover_interrupted`, called at server start, marks answers left
  ``streaming`` by a killed process ``incomplete``.

Lifetime: a turn generates while someone listens. Closing :meth:`Turn.events` (the client went
away), :meth:`Turn.stop` or :meth:`ConversationChat.stop` ends generation; what was generated is
kept, marked ``incomplete``. Editing a user message or regenerating an answer adds a sibling in the
message tree, so earlier versions stay reachable.

The prompt is the conversation's system prompt plus the branch from the root down to the user
message being answered; the model, sampling, ``max_tokens`` and thinking switch come from the
conversation's settings (see :class:`ChatSettings`). When the branch does not fit the model's
context, the oldest messages are left out (the count is kept in ``metadata.trimmed_messages``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from openwen.chat.service import ChatService
from openwen.engines.base import ChatRequest, Sampling
from openwen.errors import (
    ContextLengthError,
    EngineError,
    InvalidRequestError,
    NotFoundError,
    OpenwenError,
)
from openwen.messages import (
    Done,
    FinishReason,
    Message,
    ReasoningDelta,
    TextDelta,
    Timings,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from openwen.storage import ConversationRecord, MessageRecord, Storage
from openwen.storage.conversations import DEFAULT_TITLE

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_CONTENT = 200_000
TITLE_LENGTH = 60
MAX_TRIMS = 8
DEFAULT_SAVE_INTERVAL = 0.5
EndStatus = Literal["complete", "incomplete", "error"]


@dataclass(frozen=True)
class ChatSettings:
    """A conversation's generation settings, read leniently from its stored ``settings``
    object (unknown keys and wrong types are ignored, so old data never breaks a chat)."""

    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    thinking: bool | None = None

    @classmethod
    def of(cls, data: dict[str, Any]) -> ChatSettings:
        def number(key: str) -> float | None:
            value = data.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            return None

        max_tokens = data.get("max_tokens")
        return cls(
            model=data["model"] if isinstance(data.get("model"), str) and data["model"] else None,
            temperature=number("temperature"),
            top_p=number("top_p"),
            max_tokens=max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
            thinking=data["thinking"] if isinstance(data.get("thinking"), bool) else None,
        )

    def sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, top_p=self.top_p)

    def describe(self) -> dict[str, Any]:
        """What goes into an answer's metadata."""
        sampling = {"temperature": self.temperature, "top_p": self.top_p}
        return {
            "sampling": {k: v for k, v in sampling.items() if v is not None},
            "max_tokens": self.max_tokens,
            "thinking": self.thinking,
        }


# -- events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnStarted:
    """First event: the stored user message (None when regenerating) and the new answer."""

    conversation: ConversationRecord
    user_message: MessageRecord | None
    message: MessageRecord
    kind: Literal["start"] = "start"


@dataclass(frozen=True)
class TurnEnded:
    """Last event: the answer as stored, and how it ended."""

    message: MessageRecord | None  # None when the conversation was deleted meanwhile
    status: EndStatus
    finish_reason: FinishReason
    usage: Usage = field(default_factory=Usage)
    timings: Timings = field(default_factory=Timings)
    error: OpenwenError | None = None
    kind: Literal["end"] = "end"


TurnEvent = TurnStarted | TextDelta | ReasoningDelta | ToolCallEvent | TurnEnded


# -- one answer being generated ---------------------------------------------------------------


class Turn:
    """One answer being generated into the store. Generation runs in its own task from the
    moment the turn is made; :meth:`events` streams what it produces."""

    def __init__(
        self,
        chat: ConversationChat,
        *,
        user_id: int,
        conversation: ConversationRecord,
        user_message: MessageRecord | None,
        message: MessageRecord,
        history: list[Message],
        settings: ChatSettings,
    ):
        self.chat = chat
        self.user_id = user_id
        self.conversation = conversation
        self.user_message = user_message
        self.message = message
        self.history = history
        self.settings = settings
        self.model = settings.model or chat.default_model
        self.content = ""
        self.reasoning = ""
        self.tool_calls: list[ToolCall] = []
        self.trimmed = 0
        self._unsaved = ["", ""]  # content, reasoning not yet written
        self._queue: asyncio.Queue[TurnEvent] = asyncio.Queue()
        self._queue.put_nowait(TurnStarted(conversation, user_message, message))
        self._task = asyncio.create_task(self._run(), name=f"openwen-turn-{message.id}")
        self.ended: TurnEnded | None = None

    @property
    def running(self) -> bool:
        return not self._task.done()

    async def events(self) -> AsyncIterator[TurnEvent]:
        """The turn's events, ending with :class:`TurnEnded`. Leaving early stops generation."""
        try:
            while True:
                event = await self._queue.get()
                yield event
                if isinstance(event, TurnEnded):
                    return
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop generating; the answer so far is kept, marked incomplete."""
        if not self._task.done():
            self._task.cancel()

    async def wait(self) -> TurnEnded:
        """Wait for the turn to end (and its last save)."""
        await asyncio.shield(self._task)
        assert self.ended is not None
        return self.ended

    # -- the generation task ----------------------------------------------------------------

    async def _run(self) -> None:
        saver = asyncio.create_task(self._autosave())
        done: Done | None = None
        error: OpenwenError | None = None
        try:
            done = await self._generate()
        except asyncio.CancelledError:
            pass  # stopped: keep what we have
        except OpenwenError as exc:
            error = exc
        except Exception as exc:  # an engine bug must not leave the answer "streaming"
            log.exception("generating message %s failed", self.message.id)
            error = EngineError(f"generation failed: {type(exc).__name__}")
        finally:
            saver.cancel()
        try:
            self.ended = await self._finish(done, error)
        except asyncio.CancelledError:
            pass  # cancelled again while saving: the save itself still runs
        finally:
            self.chat._forget(self)
            if self.ended is None:
                self.ended = TurnEnded(None, "incomplete", "cancelled")
            self._queue.put_nowait(self.ended)

    async def _generate(self) -> Done:
        history = list(self.history)
        while True:
            request = self._request(history)
            started = False
            try:
                events = self.chat.service.stream(request)
                async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
                    async for event in stream:
                        started = True
                        if isinstance(event, Done):
                            return event
                        self._take(event)
                raise EngineError("the engine ended the answer without finishing it")
            except ContextLengthError as exc:
                shorter = None if started else trim(history, exc)
                if shorter is None or self.trimmed >= MAX_TRIMS:
                    raise
                self.trimmed += len(history) - len(shorter)
                history = shorter

    def _request(self, history: list[Message]) -> ChatRequest:
        system = self.conversation.system_prompt
        messages = ([Message(role="system", content=system)] if system else []) + history
        return ChatRequest(
            messages=tuple(messages),
            model=self.settings.model,
            sampling=self.settings.sampling(),
            max_tokens=self.settings.max_tokens,
            thinking=self.settings.thinking,
        )

    def _take(self, event: TextDelta | ReasoningDelta | ToolCallEvent) -> None:
        if isinstance(event, TextDelta):
            self.content += event.text
            self._unsaved[0] += event.text
        elif isinstance(event, ReasoningDelta):
            self.reasoning += event.text
            self._unsaved[1] += event.text
        elif isinstance(event, ToolCallEvent):
            self.tool_calls.append(event.call)
        self._queue.put_nowait(event)

    async def _autosave(self) -> None:
        while True:
            await asyncio.sleep(self.chat.save_interval)
            try:
                await self._save()
            except (NotFoundError, InvalidRequestError):
                # deleted, or no longer streaming (another process recovered it): stop
                log.info("message %s went away while streaming; stopping", self.message.id)
                self.stop()
                return

    async def _save(self) -> None:
        content, reasoning = self._unsaved
        self._unsaved = ["", ""]
        if content or reasoning:
            append = self.chat.storage.messages.append
            await self.chat.write(append, self.user_id, self.message.id, content, reasoning)

    async def _finish(self, done: Done | None, error: OpenwenError | None) -> TurnEnded:
        status: EndStatus
        reason: FinishReason
        if error is not None:
            status, reason = "error", "error"
        elif done is None or done.finish_reason == "cancelled":
            status, reason = "incomplete", "cancelled"
        else:
            status, reason = "complete", done.finish_reason
        usage = done.usage if done else Usage()
        timings = done.timings if done else Timings()
        metadata = {"model": self.model, **self.settings.describe(), "finish_reason": reason}
        if done is not None:
            metadata["usage"] = {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cached_tokens": usage.cached_tokens,
            }
            metadata["timings"] = {k: round(v, 1) for k, v in vars(timings).items()}
        if self.trimmed:
            metadata["trimmed_messages"] = self.trimmed
        if error is not None:
            metadata["error"] = {"message": error.message, "type": error.type, "code": error.code}
        content, reasoning = self._unsaved
        self._unsaved = ["", ""]
        record = await self.chat.write(
            self.chat.finish_message,
            self.user_id,
            self.message.id,
            content,
            reasoning,
            tuple(self.tool_calls),
            status,
            metadata,
        )
        return TurnEnded(record, status, reason, usage, timings, error)


def trim(history: list[Message], exc: ContextLengthError) -> list[Message] | None:
    """``history`` without its oldest messages, by the share the prompt is over the context
    (and at least one exchange); None when only the last message is left."""
    if len(history) <= 1:
        return None
    over = exc.prompt_tokens / max(1, exc.n_ctx)
    drop = max(2, int(len(history) * (1 - 1 / over)) + 1) if over > 1 else 2
    shorter = history[min(drop, len(history) - 1) :]
    while len(shorter) > 1 and shorter[0].role != "user":  # start with a question
        shorter = shorter[1:]
    return shorter


# -- the chat ----------------------------------------------------------------------------------


class ConversationChat:
    """Generates answers into a user's stored conversations, through the chat service."""

    def __init__(
        self,
        storage: Storage,
        service: ChatService,
        *,
        save_interval: float = DEFAULT_SAVE_INTERVAL,
    ):
        self.storage = storage
        self.service = service
        self.save_interval = save_interval
        self._turns: dict[int, Turn] = {}
        # Every write of a streaming answer goes through this one thread, in order, so a save
        # whose caller was cancelled can never land after a later one.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="openwen-chat-save")

    @property
    def default_model(self) -> str:
        registry = getattr(self.service, "registry", None)
        return str(getattr(registry, "default_model", None) or self.service.settings.model)

    def recover_interrupted(self) -> int:
        """Mark answers left ``streaming`` by a killed process ``incomplete`` (call at start)."""
        count = self.storage.messages.recover_interrupted()
        if count:
            log.info("marked %d interrupted answer(s) incomplete", count)
        return count

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking store call on the writer thread (in order of submission)."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._writer, functools.partial(fn, *args, **kwargs))
        return await asyncio.shield(future)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking store read on a worker thread."""
        return await asyncio.to_thread(fn, *args, **kwargs)

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
        elif target.role == "assistant" and target.parent_id is not None:
            question = await self.read(self.storage.messages.get, user_id, target.parent_id)
        else:
            raise InvalidRequestError(
                "only answers (or user messages) can be regenerated", param="message_id"
            )
        self._check_idle(target.conversation_id)
        conversation = await self.read(
            self.storage.conversations.get, user_id, target.conversation_id
        )
        return await self._answer(user_id, conversation, None, question)

    async def _answer(
        self,
        user_id: int,
        conversation: ConversationRecord,
        user_message: MessageRecord | None,
        question: MessageRecord,
    ) -> Turn:
        path = await self.read(self.storage.messages.path, user_id, conversation.id, question.id)
        settings = ChatSettings.of(conversation.settings)
        model = settings.model or self.default_model
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
            self,
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
        turn = self._turns.get(message_id)
        return turn if turn is not None and turn.user_id == user_id else None

    def running_in(self, user_id: int, conversation_id: str) -> list[Turn]:
        return [
            t
            for t in self._turns.values()
            if t.user_id == user_id and t.conversation.id == conversation_id
        ]

    async def stop(self, user_id: int, message_id: int) -> bool:
        """Stop the answer ``message_id`` if it is generating here; False when it is not
        (NotFoundError when it is not the user's)."""
        turn = self.running(user_id, message_id)
        if turn is None:
            await self.read(self.storage.messages.get, user_id, message_id)
            return False
        turn.stop()
        await turn.wait()
        return True

    def _forget(self, turn: Turn) -> None:
        if self._turns.get(turn.message.id) is turn:
            del self._turns[turn.message.id]

    async def aclose(self) -> None:
        """Stop every running turn (their answers are saved as incomplete)."""
        turns = list(self._turns.values())
        for turn in turns:
            turn.stop()
        for turn in turns:
            with contextlib.suppress(Exception):
                await turn.wait()
        self._writer.shutdown(wait=True)

    # -- store calls (on the writer thread) --------------------------------------------------

    def finish_message(
        self,
        user_id: int,
        message_id: int,
        content: str,
        reasoning: str,
        tool_calls: tuple[ToolCall, ...],
        status: str,
        metadata: dict[str, Any],
    ) -> MessageRecord | None:
        messages = self.storage.messages
        try:
            messages.append(user_id, message_id, content, reasoning)
            return messages.update(
                user_id,
                message_id,
                tool_calls=tool_calls or None,
                status=status,
                metadata=metadata,
            )
        except NotFoundError:
            return None  # the conversation was deleted while the answer streamed
        except InvalidRequestError:  # no longer streaming: someone else finished it
            return messages.get(user_id, message_id)


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
    failed answers with nothing in them skipped."""
    history = []
    for record in path:
        if record.role == "assistant" and record.status == "error" and not record.content:
            continue
        if record.role == "system":
            continue  # the conversation's system prompt goes first instead
        history.append(
            Message(
                role=record.role,
                content=record.content,
                tool_calls=record.tool_calls,
                tool_call_id=record.tool_call_id,
            )
        )
    return history
