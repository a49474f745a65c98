"""One answer being generated into a stored conversation: :class:`Turn`, its events, and the
conversation settings it reads. :class:`~openwen.chat.conversations.ConversationChat` makes turns
(see that module for the whole flow) and hands each the :class:`TurnServices` it uses: the chat
service, the :class:`~openwen.chat.answer_store.AnswerStore` it writes through, its tools and
knowledge, and an end callback. A turn never reaches back into the chat that made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from openwen.cache_salt import cache_salt_for
from openwen.chat.answer import answer
from openwen.chat.answer_store import AnswerStore
from openwen.chat.service import ChatService
from openwen.chat.turn_knowledge import TurnKnowledge, gather, with_context
from openwen.chat.turn_tools import (
    DEFAULT_CONFIRM_TIMEOUT,
    Confirmations,
    ToolConfirmAnswered,
    ToolConfirmRequest,
    ToolSource,
    tool_message_metadata,
    tools_for,
)
from openwen.errors import (
    ContextLengthError,
    EngineError,
    InvalidRequestError,
    NotFoundError,
    OpenwenError,
)
from openwen.messages import (
    AgentEvent,
    AgentLimitEvent,
    AgentStepEvent,
    Done,
    FinishReason,
    Message,
    ReasoningDelta,
    TextDelta,
    Timings,
    ToolCall,
    ToolCallEvent,
    ToolResultEvent,
    Usage,
)
from openwen.models.profiles import Capabilities, Profile
from openwen.requests import ChatRequest, Sampling
from openwen.storage import ConversationRecord, MessageRecord
from openwen.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from openwen.knowledge import KnowledgeBase

log = logging.getLogger(__name__)

MAX_TRIMS = 8
EndStatus = Literal["complete", "incomplete", "error"]


@dataclass(frozen=True)
class ChatSettings:
    """A conversation's generation settings, read leniently from its stored ``settings``
    object (unknown keys and wrong types are ignored, so old data never breaks a chat).
    ``tools`` (default on) lets the answer use tools; ``collection`` names the document
    collection it draws sources from. :meth:`with_profile` fills what the chat leaves unset
    from the model's profile (``default_system``, ``top_k`` and ``min_p`` come only from
    there)."""

    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    thinking: bool | None = None
    tools: bool | None = None
    collection: str | None = None
    top_k: int | None = None
    min_p: float | None = None
    default_system: str | None = None
    tool_decision: bool = False  # the model decides on tools by a constrained choice first
    examples: tuple[tuple[str, str], ...] = ()  # the profile's example exchanges
    arithmetic: bool = False  # the calculator finishes equations the answer writes

    @classmethod
    def of(cls, data: dict[str, Any]) -> ChatSettings:
        def number(key: str) -> float | None:
            value = data.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            return None

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        def flag(key: str) -> bool | None:
            return data[key] if isinstance(data.get(key), bool) else None

        max_tokens = data.get("max_tokens")
        return cls(
            model=text("model"),
            temperature=number("temperature"),
            top_p=number("top_p"),
            max_tokens=max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
            thinking=flag("thinking"),
            tools=flag("tools"),
            collection=text("collection"),
        )

    @property
    def tools_on(self) -> bool:
        return self.tools is not False

    def with_profile(self, profile: Profile, capabilities: Capabilities) -> ChatSettings:
        """These settings over the model's profile (a model that cannot think gets no switch)."""
        thinking = self.thinking if self.thinking is not None else profile.thinking
        if not capabilities.thinking:
            thinking = None
        defaults = profile.sampling_for(thinking)
        return replace(
            self,
            thinking=thinking,
            tools=self.tools if self.tools is not None else profile.tools,
            temperature=self.temperature if self.temperature is not None
            else defaults.temperature,
            top_p=self.top_p if self.top_p is not None else defaults.top_p,
            top_k=defaults.top_k,
            min_p=defaults.min_p,
            default_system=profile.system,
            tool_decision=capabilities.chat_template and not capabilities.tools,
            examples=profile.examples or (),
            arithmetic=bool(profile.arithmetic),
        )

    def sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                        min_p=self.min_p)

    def request(self, messages: Sequence[Message], *, system: str | None = None,
                cache_salt: str | None = None) -> ChatRequest:
        """The request for ``messages`` under these settings: ``system`` (else the profile's
        default system prompt) first, then the profile's example exchanges (a stable prefix:
        the prefix cache keeps it). The web app's turns and the CLI both build theirs here."""
        system = system or self.default_system
        head = [Message(role="system", content=system)] if system else []
        for asked, answered in self.examples:
            head += [Message(role="user", content=asked),
                     Message(role="assistant", content=answered)]
        return ChatRequest(
            messages=(*head, *messages),
            model=self.model,
            sampling=self.sampling(),
            max_tokens=self.max_tokens,
            thinking=self.thinking,
            cache_salt=cache_salt,
        )

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
class TurnContext:
    """What documents and memory add to this answer, and the tools it may use."""

    knowledge: TurnKnowledge
    tools: tuple[str, ...] = ()
    kind: Literal["context"] = "context"


@dataclass(frozen=True)
class StepSaved:
    """A message of the answer was stored: a finished tool-calling step, a tool result, or the
    next assistant message (status ``streaming``) that the text streams into now."""

    message: MessageRecord
    kind: Literal["message"] = "message"


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


TurnEvent = (TurnStarted | TurnContext | TextDelta | ReasoningDelta | ToolCallEvent | StepSaved
             | ToolConfirmRequest | ToolConfirmAnswered | TurnEnded)


# -- one answer being generated ---------------------------------------------------------------


@dataclass(frozen=True)
class TurnServices:
    """What a turn uses. ``on_end`` is called once, when the turn has ended and its last save
    is done (``turn.ended`` is set)."""

    service: ChatService
    store: AnswerStore
    default_model: str
    tools: ToolSource | None = None
    knowledge: KnowledgeBase | None = None
    save_interval: float = 0.5
    confirm_timeout: float = DEFAULT_CONFIRM_TIMEOUT
    on_end: Callable[[Turn], None] = lambda turn: None


class Turn:
    """One answer being generated into the store. Generation runs in its own task from the
    moment the turn is made; :meth:`events` streams what it produces.

    ``message`` is the assistant message being written (with tools, the newest step's; at the
    end, the final answer); ``message_ids`` every message the turn stored."""

    def __init__(
        self,
        services: TurnServices,
        *,
        user_id: int,
        conversation: ConversationRecord,
        user_message: MessageRecord | None,
        message: MessageRecord,
        history: list[Message],
        settings: ChatSettings,
    ):
        self.services = services
        self.user_id = user_id
        self.conversation = conversation
        self.user_message = user_message
        self.first_message = self.message = message
        self.message_ids = {message.id}
        self.history = history
        self.settings = settings
        self.model = settings.model or services.default_model
        self.open = True  # ``message`` is streaming
        self.last_id = message.id  # the newest stored message: the parent of the next one
        self.content = ""
        self.reasoning = ""
        self.tool_calls: list[ToolCall] = []
        self.trimmed = 0
        self.knowledge = TurnKnowledge()
        self.registry: ToolRegistry | None = None
        self.tools_dropped = False
        self.limit_message: str | None = None
        self.calculated: dict[str, str] | None = None  # what the calculator wrote
        self._unsaved = ["", ""]  # content, reasoning not yet written
        self._queue: asyncio.Queue[TurnEvent] = asyncio.Queue()
        self._queue.put_nowait(TurnStarted(conversation, user_message, message))
        self.confirmations = Confirmations(
            self._queue.put_nowait, services.confirm_timeout,
            shared=services.store.questions(user_id, lambda: self.message.id))
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
            await self._prepare()
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
            self.confirmations.cancel()
        try:
            self.ended = await self._finish(done, error)
        except asyncio.CancelledError:
            pass  # cancelled again while saving: the save itself still runs
        finally:
            if self.ended is None:
                self.ended = TurnEnded(None, "incomplete", "cancelled")
            self._queue.put_nowait(self.ended)
            self.services.on_end(self)

    async def _prepare(self) -> None:
        """Documents, memory and tools for this answer."""
        chat = self.services
        last = self.history[-1] if self.history else None
        question = (last.content or "") if last is not None and last.role == "user" else ""
        if chat.knowledge is not None and question.strip():
            said = self.user_message.content if self.user_message is not None else None
            self.knowledge = await gather(
                chat.knowledge, self.user_id, question, conversation_id=self.conversation.id,
                collection=self.settings.collection, user_message=said)
        if self.settings.tools_on and chat.tools is not None:
            self.registry = await asyncio.to_thread(tools_for, chat.tools, chat.knowledge,
                                                    self.user_id)
        if not self.knowledge.empty or self.registry:
            names = tuple(self.registry.names()) if self.registry else ()
            self._queue.put_nowait(TurnContext(self.knowledge, names))

    async def _generate(self) -> Done:
        history = list(self.history)
        while True:
            started = False
            try:
                async with contextlib.aclosing(self._stream(self._request(history))) as stream:  # type: ignore[type-var]
                    async for event in stream:
                        started = True
                        if isinstance(event, Done):
                            return event
                        await self._take(event)
                raise EngineError("the engine ended the answer without finishing it")
            except ContextLengthError as exc:
                if started:
                    raise
                shorter = trim(history, exc)
                if shorter is not None and self.trimmed < MAX_TRIMS:
                    self.trimmed += len(history) - len(shorter)
                    history = shorter
                elif self.registry is not None:  # the tools' descriptions alone do not fit
                    self.registry = None
                    self.tools_dropped = True
                else:
                    raise

    def _stream(self, request: ChatRequest) -> AsyncIterator[AgentEvent]:
        return answer(self.services.service, request, tools=self.registry,
                      confirm=self.confirmations.ask, decide=self.settings.tool_decision,
                      arithmetic=self.settings.arithmetic, on_calculated=self._calculated)

    def _calculated(self, equation: str, result: str) -> None:
        """The calculator finished the answer's equation: the answer's metadata says so."""
        self.calculated = {"equation": equation, "result": result}

    def _request(self, history: list[Message]) -> ChatRequest:
        return self.settings.request(with_context(history, self.knowledge.text),
                                     system=self.conversation.system_prompt,
                                     cache_salt=cache_salt_for(self.user_id))

    async def _take(self, event: AgentEvent) -> None:
        if isinstance(event, TextDelta | ReasoningDelta | ToolCallEvent):
            if not self.open:
                await self._open_step()
            if isinstance(event, TextDelta):
                self.content += event.text
                self._unsaved[0] += event.text
            elif isinstance(event, ReasoningDelta):
                self.reasoning += event.text
                self._unsaved[1] += event.text
            else:
                self.tool_calls.append(event.call)
            self._queue.put_nowait(event)
        elif isinstance(event, AgentStepEvent):
            await self._close_step(event)
        elif isinstance(event, ToolResultEvent):
            await self._save_result(event)
        elif isinstance(event, AgentLimitEvent):
            self.limit_message = event.message
        # MessageEvent: the steps are stored from the events above

    # -- storing the steps ------------------------------------------------------------------

    def _take_unsaved(self) -> tuple[str, str]:
        content, reasoning = self._unsaved
        self._unsaved = ["", ""]
        return content, reasoning

    def _stored(self, record: MessageRecord) -> None:
        self.last_id = record.id
        self.message_ids.add(record.id)
        self._queue.put_nowait(StepSaved(record))

    async def _open_step(self) -> None:
        """The next assistant message, after a step's tool results."""
        record = await self.services.store.add(
            self.user_id, self.conversation.id, parent_id=self.last_id, role="assistant",
            status="streaming", metadata={"model": self.model})
        self.message, self.open = record, True
        self.content, self.reasoning, self.tool_calls = "", "", []
        self._stored(record)

    async def _close_step(self, event: AgentStepEvent) -> None:
        """The assistant message of a step that called tools is complete."""
        if not self.open:
            await self._open_step()
        metadata = {"model": self.model, **self.settings.describe(), "finish_reason": "tool_calls",
                    "step": event.step, **usage_metadata(event.usage, event.timings)}
        content, reasoning = self._take_unsaved()
        record = await self.services.store.finish(
            self.user_id, self.message.id, content, reasoning, event.tool_calls, "complete",
            metadata)
        if record is None:
            raise NotFoundError("the conversation was deleted", param="conversation_id")
        self.message, self.open = record, False
        self._stored(record)

    async def _save_result(self, result: ToolResultEvent) -> None:
        decision = self.confirmations.decisions.get(result.call.id)
        record = await self.services.store.add(
            self.user_id, self.conversation.id,
            parent_id=self.last_id, role="tool", content=result.content,
            tool_call_id=result.call.id, metadata=tool_message_metadata(result, decision))
        self._stored(record)

    async def _autosave(self) -> None:
        while True:
            await asyncio.sleep(self.services.save_interval)
            try:
                await self._save()
            except (NotFoundError, InvalidRequestError):
                # deleted, or no longer streaming (another process recovered it): stop
                log.info("message %s went away while streaming; stopping", self.message.id)
                self.stop()
                return
            if await self.services.store.cancel_requested(self.message_ids):
                log.info("stop requested for message %s elsewhere; stopping", self.message.id)
                self.stop()
                return

    async def _save(self) -> None:
        if not self.open:
            return
        content, reasoning = self._take_unsaved()
        if content or reasoning:
            await self.services.store.append(self.user_id, self.message.id, content, reasoning)

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
            metadata.update(usage_metadata(usage, timings))
        metadata.update(self.knowledge.describe())
        if self.trimmed:
            metadata["trimmed_messages"] = self.trimmed
        if self.tools_dropped:
            metadata["tools_dropped"] = True
        if self.calculated is not None:
            metadata["calculated"] = self.calculated
        if self.limit_message is not None:
            metadata["agent_limit"] = True
        if error is not None:
            metadata["error"] = {"message": error.message, "type": error.type, "code": error.code}
        if self.open:
            content, reasoning = self._take_unsaved()
            record = await self.services.store.finish(
                self.user_id, self.message.id, content, reasoning, tuple(self.tool_calls),
                status, metadata)
        else:  # ended between steps (stopped, failed, or the step limit): a closing message
            record = await self.services.store.add_closing(
                self.user_id, self.conversation.id, self.last_id, self.limit_message or "",
                status, metadata)
        if record is not None:
            self.message = record
            self.message_ids.add(record.id)
        return TurnEnded(record, status, reason, usage, timings, error)


def usage_metadata(usage: Usage, timings: Timings) -> dict[str, Any]:
    return {
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
        },
        "timings": {k: round(v, 1) for k, v in vars(timings).items()},
    }


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
