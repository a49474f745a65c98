"""OpenAI API request and response models, and their one conversion to engine parameters.

Field order follows the OpenAI API reference. Fields marked *extension* are not in OpenAI's API but
are accepted by the open serving engines (vLLM, SGLang, llama.cpp) and by openwen. Requests are
lenient: unknown fields are ignored and logged (:class:`~openwen.server.openai.base.Lenient`).
Responses and stream chunks are rendered in :mod:`openwen.server.openai.render`.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from openwen.errors import InvalidRequestError
from openwen.messages import Message, ToolCall
from openwen.requests import ChatRequest, Sampling, ToolChoice
from openwen.server.openai.base import Lenient

TOOL_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_STOP = 16
THINKING_OFF_EFFORTS = frozenset({"none", "minimal"})
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


# -- chat messages ------------------------------------------------------------------------------


class ContentPart(Lenient):
    """One part of a message's content array. Only text (and refusal text) is supported."""

    type: str
    text: str | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _text_only(self) -> ContentPart:
        if self.type in ("image_url", "input_image", "input_audio", "file", "image"):
            raise ValueError(f"content parts of type '{self.type}' are not supported: "
                             "openwen's models read text only; send text parts")
        if self.type == "text" and self.text is None:
            raise ValueError("a text content part needs a 'text' string")
        if self.type == "refusal" and self.refusal is None:
            raise ValueError("a refusal content part needs a 'refusal' string")
        if self.type not in ("text", "refusal"):
            raise ValueError(f"unknown content part type '{self.type}'; use 'text'")
        return self

    @property
    def as_text(self) -> str:
        return (self.text if self.type == "text" else self.refusal) or ""


class FunctionCallParam(Lenient):
    name: str
    arguments: str = "{}"

    @field_validator("arguments", mode="before")
    @classmethod
    def _arguments_text(cls, value: Any) -> Any:
        """Some clients send the arguments object itself instead of its JSON text."""
        return json.dumps(value) if isinstance(value, dict) else value


class ToolCallParam(Lenient):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallParam


class ChatMessage(Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallParam] | None = None
    tool_call_id: str | None = None
    #: extension: an earlier assistant turn's thinking (vLLM and DeepSeek spell it this way)
    reasoning_content: str | None = None
    #: extension: the same, as vLLM >= 0.10 and OpenRouter spell it
    reasoning: str | None = None

    @model_validator(mode="after")
    def _content_required(self) -> ChatMessage:
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a '{self.role}' message needs 'content'")
        if self.role != "assistant" and self.tool_calls:
            raise ValueError("only assistant messages can have 'tool_calls'")
        return self

    def text(self) -> str | None:
        if self.content is None or isinstance(self.content, str):
            return self.content
        return "\n".join(part.as_text for part in self.content)

    def to_message(self) -> Message:
        calls = tuple(ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
                      for c in self.tool_calls or ())
        return Message(role=self.role, content=self.text(),
                       reasoning=self.reasoning_content or self.reasoning or None,
                       tool_calls=calls, tool_call_id=self.tool_call_id, name=self.name)


# -- tools and output formats -------------------------------------------------------------------


class FunctionDefinition(Lenient):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not TOOL_NAME.fullmatch(value):
            raise ValueError("a function name is 1-64 characters: letters, digits, _ . : -")
        return value


class ToolDefinition(Lenient):
    type: Literal["function"]
    function: FunctionDefinition

    def to_dict(self) -> dict[str, Any]:
        return {"type": "function", "function": self.function.model_dump(exclude_none=True)}


class NamedFunction(Lenient):
    name: str


class NamedToolChoice(Lenient):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaSpec(Lenient):
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and (self.json_schema is None
                                           or self.json_schema.schema_ is None):
            raise ValueError("type 'json_schema' needs json_schema.schema (a JSON Schema object)")
        return self

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.json_schema is not None:
            out["json_schema"] = self.json_schema.model_dump(by_alias=True, exclude_none=True)
        return out


class StreamOptions(Lenient):
    include_usage: bool | None = None


class OpenwenOptions(Lenient):
    """*Extension* (openwen only): ``"openwen": {"tools": true}`` lets the server run its own
    tools (built-ins, MCP servers) in an agent loop; ``{"tools": ["calculator", ...]}`` only
    those. Without it the server never runs a tool (see
    :mod:`openwen.server.openai.server_tools`)."""

    tools: bool | list[str] | None = None

    @field_validator("tools")
    @classmethod
    def _names(cls, value: bool | list[str] | None) -> bool | list[str] | None:
        if isinstance(value, list):
            bad = [n for n in value if not isinstance(n, str) or not TOOL_NAME.fullmatch(n)]
            if bad:
                raise ValueError(f"not tool names: {bad[:5]}")
            if len(value) > 128:
                raise ValueError("at most 128 tool names")
        return value


# -- sampling shared by chat and completions ----------------------------------------------------


class SamplingFields(Lenient):
    """Sampling behaviour shared by ``/v1/chat/completions`` and ``/v1/completions`` (the fields
    themselves are declared in each request, in the OpenAI reference's order)."""

    if TYPE_CHECKING:  # declared by the subclasses (parent fields would come first)
        frequency_penalty: float | None
        presence_penalty: float | None
        seed: int | None
        stop: str | list[str] | None
        temperature: float | None
        top_p: float | None
        top_k: int | None
        min_p: float | None
        repetition_penalty: float | None

    @field_validator("stop", check_fields=False)
    @classmethod
    def _few_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences")
        return value

    def stops(self) -> tuple[str, ...]:
        values = [self.stop] if isinstance(self.stop, str) else self.stop or []
        return tuple(s for s in values if s)

    def sampling(self) -> Sampling:
        return Sampling(
            temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p,
            presence_penalty=self.presence_penalty, frequency_penalty=self.frequency_penalty,
            repeat_penalty=self.repetition_penalty,
            # llama.cpp seeds are 32-bit and 0xFFFFFFFF means "random": fold into 31 bits
            seed=None if self.seed is None else self.seed % 2**31,
        )


def _check_n(value: int | None) -> int | None:
    if value is not None and value != 1:
        raise ValueError("only n=1 is supported")
    return value


# -- /v1/chat/completions -----------------------------------------------------------------------


class ChatCompletionRequest(SamplingFields):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage]
    model: str | None = None
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    logprobs: bool | None = None
    max_completion_tokens: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    n: int | None = None
    parallel_tool_calls: bool | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    reasoning_effort: ReasoningEffort | None = None
    response_format: ResponseFormat | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    tools: list[ToolDefinition] | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    #: extension (vLLM, SGLang, llama.cpp): ``{"enable_thinking": false}`` and friends
    chat_template_kwargs: dict[str, Any] | None = None
    #: extension (vLLM, llama.cpp)
    top_k: int | None = Field(None, ge=0)
    #: extension (vLLM, llama.cpp)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    #: extension (vLLM); llama.cpp calls it repeat_penalty
    repetition_penalty: float | None = Field(None, gt=0.0, le=10.0)
    #: extension (openwen): ``{"tools": true | [names]}`` opts in to server-side tools
    openwen: OpenwenOptions | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        return _check_n(value)

    @property
    def server_tools(self) -> bool | list[str]:
        """The opt-in: False (the default: never run a tool), True (every server tool) or the
        names of the server tools to offer."""
        wanted = self.openwen.tools if self.openwen is not None else None
        if isinstance(wanted, list):
            return wanted or False
        return bool(wanted)

    def check(self) -> None:
        """Rules that involve several fields (each error names the param to fix)."""
        if self.top_logprobs and not self.logprobs:
            raise InvalidRequestError("top_logprobs needs logprobs: true", param="top_logprobs")
        if self.server_tools is not False:
            return  # tool_choice may name a server tool: checked against them when they run
        if isinstance(self.tool_choice, NamedToolChoice):
            wanted = self.tool_choice.function.name
            if wanted not in {t.function.name for t in self.tools or ()}:
                raise InvalidRequestError(
                    f"tool_choice names the function '{wanted}', which is not among the "
                    "request's tools", param="tool_choice")
        elif self.tool_choice == "required" and not self.tools:
            raise InvalidRequestError("tool_choice 'required' needs at least one tool in 'tools'",
                                      param="tool_choice")

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def thinking(self) -> bool | None:
        """``chat_template_kwargs.enable_thinking`` wins over ``reasoning_effort``."""
        kwargs = self.chat_template_kwargs or {}
        if isinstance(kwargs.get("enable_thinking"), bool):
            return bool(kwargs["enable_thinking"])
        if self.reasoning_effort is not None:
            return self.reasoning_effort not in THINKING_OFF_EFFORTS
        return None

    def to_chat_request(self) -> ChatRequest:
        """The one place an HTTP chat request becomes engine parameters."""
        self.check()
        choice: ToolChoice | None = (
            self.tool_choice.model_dump() if isinstance(self.tool_choice, NamedToolChoice)
            else self.tool_choice)
        return ChatRequest(
            messages=tuple(m.to_message() for m in self.messages),
            model=self.model or None,
            tools=tuple(t.to_dict() for t in self.tools or ()),
            tool_choice=choice,
            parallel_tool_calls=self.parallel_tool_calls is not False,
            sampling=self.sampling(),
            stop=self.stops(),
            max_tokens=self.max_completion_tokens or self.max_tokens,
            response_format=self.response_format.to_dict() if self.response_format else None,
            thinking=self.thinking(),
            logprobs=bool(self.logprobs),
            top_logprobs=self.top_logprobs or 0,
        )


# -- /v1/completions ----------------------------------------------------------------------------


class CompletionRequest(SamplingFields):
    """``POST /v1/completions`` (legacy): a raw prompt, no chat template."""

    model: str | None = None
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool | None = False
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    logprobs: int | None = Field(None, ge=0, le=20)
    max_tokens: int | None = Field(16, ge=1)
    n: int | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    #: extension (vLLM, llama.cpp)
    top_k: int | None = Field(None, ge=0)
    #: extension (vLLM, llama.cpp)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    #: extension (vLLM); llama.cpp calls it repeat_penalty
    repetition_penalty: float | None = Field(None, gt=0.0, le=10.0)

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        return _check_n(value)

    @field_validator("prompt")
    @classmethod
    def _one_text_prompt(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise ValueError("token-id prompts are not supported; send the prompt as text")
            if len(value) != 1:
                raise ValueError("send exactly one prompt; batches of prompts are not supported")
        return value

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, value: str | None) -> str | None:
        if value:
            raise ValueError("suffix (fill-in-the-middle) is not supported")
        return value

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else str(self.prompt[0])

    def to_chat_request(self) -> ChatRequest:
        return ChatRequest(
            prompt=self.prompt_text, model=self.model or None, sampling=self.sampling(),
            stop=self.stops(), max_tokens=self.max_tokens,
            logprobs=self.logprobs is not None, top_logprobs=self.logprobs or 0,
        )


# -- /v1/embeddings -----------------------------------------------------------------------------


class EmbeddingRequest(Lenient):
    """``POST /v1/embeddings``. Token-id inputs are refused: ids from another tokenizer
    (tiktoken) mean nothing to a local model."""

    input: str | list[str] | list[int] | list[list[int]]
    model: str | None = None
    dimensions: int | None = Field(None, ge=1)
    encoding_format: Literal["float", "base64"] | None = "float"

    @field_validator("input")
    @classmethod
    def _texts_only(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError("input must not be empty")
            if len(value) > 2048:
                raise ValueError("at most 2048 inputs per request")
            if not all(isinstance(v, str) for v in value):
                raise ValueError("token-id inputs are not supported; send text (LangChain: "
                                 "OpenAIEmbeddings(check_embedding_ctx_length=False))")
            if not all(value):
                raise ValueError("inputs must not be empty strings")
        elif not value:
            raise ValueError("input must not be empty")
        return value

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)  # type: ignore[arg-type]


# -- responses ----------------------------------------------------------------------------------


class Out(BaseModel):
    """A response object. Fields named in ``omit_if_none`` are left out when unset (extensions
    and optional parts), every other field is always present, as ``null`` when empty."""

    omit_if_none: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in self.omit_if_none:
            if data.get(key) is None:
                data.pop(key, None)
        return data


class ErrorDetail(Out):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(Out):
    error: ErrorDetail


class PromptTokensDetails(Out):
    cached_tokens: int = 0


class UsageInfo(Out):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None

    omit_if_none: ClassVar[tuple[str, ...]] = ("prompt_tokens_details",)


class TopLogprob(Out):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprobOut(TopLogprob):
    top_logprobs: list[TopLogprob] = []


class ChoiceLogprobs(Out):
    content: list[TokenLogprobOut] | None = None
    refusal: list[TokenLogprobOut] | None = None


class FunctionCallOut(Out):
    name: str
    arguments: str


class ToolCallOut(Out):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallOut


class AssistantMessageOut(Out):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallOut] | None = None
    #: extension: the model's thinking (same text in both fields; clients read one or the other)
    reasoning_content: str | None = None
    #: extension: see ``reasoning_content``
    reasoning: str | None = None

    omit_if_none: ClassVar[tuple[str, ...]] = ("tool_calls", "reasoning_content", "reasoning")


class ChatChoice(Out):
    index: int = 0
    message: AssistantMessageOut
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"]


class ChatCompletionResponse(Out):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageInfo
    system_fingerprint: str | None = None
    #: extension (openwen): ``{"tool_steps": [...]}`` when the request opted in to server tools
    openwen: dict[str, Any] | None = None

    omit_if_none: ClassVar[tuple[str, ...]] = ("openwen",)


class CompletionLogprobs(Out):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None = None
    text_offset: list[int]


class CompletionChoice(Out):
    text: str
    index: int = 0
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"]


class CompletionResponse(Out):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo
    system_fingerprint: str | None = None


class ModelCard(Out):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    #: extension: context size in tokens, when known
    context_length: int | None = None
    #: extension: "chat" or "embedding"
    type: str = "chat"
    #: extension: false while the upstream serving the model fails its health checks
    available: bool = True

    omit_if_none: ClassVar[tuple[str, ...]] = ("context_length",)


class ModelList(Out):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingData(Out):
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str
    index: int


class EmbeddingUsage(Out):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(Out):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage
