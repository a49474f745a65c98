"""The answer path's events out, as a Response object and its streaming events.

:class:`ResponseBuilder` folds one answer's events into the Response (``output`` items, status,
usage, error) and returns, for each step, the streaming events OpenAI documents, numbered by
``sequence_number``:

    response.created, response.in_progress
    per output item: response.output_item.added
        reasoning:  response.content_part.added, response.reasoning_text.delta ...,
                    response.reasoning_text.done, response.content_part.done
        message:    response.content_part.added, response.output_text.delta ...,
                    response.output_text.done, response.content_part.done
        function_call: response.function_call_arguments.delta, ...arguments.done
    response.output_item.done
    response.completed | response.incomplete (max_output_tokens) | response.failed (+ error)

The same builder serves a stream, a whole response and a background run (its snapshot is what
``GET /v1/responses/{id}`` returns while it runs).
"""

from __future__ import annotations

import time
from typing import Any

from openwen.errors import OpenwenError, OverloadedError
from openwen.messages import Done, ReasoningDelta, TextDelta, TokenLogprob, ToolCallEvent
from openwen.server.openai.render import finite
from openwen.server.responses.protocol import ResponseCreateRequest
from openwen.server.responses.translate import function_tools, new_item_id
from openwen.server.sse import TYPED_SSE

Payload = dict[str, Any]


def request_echo(body: ResponseCreateRequest) -> dict[str, Any]:
    """The request's settings as a Response repeats them."""
    choice: Any = body.tool_choice or "auto"
    if not isinstance(choice, str):
        choice = {"type": "function", "name": choice.name}
    tools = [{"type": "function", "name": t.name, "description": t.description,
              "parameters": t.parameters, "strict": t.strict}
             for t in function_tools(body.tools)]
    return {
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "metadata": body.metadata or {},
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id,
        "reasoning": {"effort": body.reasoning.effort if body.reasoning else None,
                      "summary": body.reasoning.summary if body.reasoning else None},
        "store": body.stored,
        "temperature": body.temperature,
        "text": {"format": format_echo(body)},
        "tool_choice": choice,
        "tools": tools,
        "top_p": body.top_p,
        "truncation": body.truncation or "disabled",
        "user": body.user,
        "background": bool(body.background),
    }


def format_echo(body: ResponseCreateRequest) -> dict[str, Any]:
    fmt = body.text.format if body.text is not None else None
    if fmt is None:
        return {"type": "text"}
    out = fmt.model_dump(by_alias=True, exclude_none=True)
    if fmt.type == "json_schema":
        out.setdefault("name", "response")
    return out


def usage_json(done: Done) -> dict[str, Any]:
    u = done.usage
    return {"input_tokens": u.prompt_tokens,
            "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": u.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u.total_tokens}


def logprob_json(lp: TokenLogprob, *, full: bool) -> dict[str, Any]:
    """A token's logprob: with ``bytes`` in output parts (``full``), without in delta events."""
    out: dict[str, Any] = {"token": lp.token, "logprob": finite(lp.logprob)}
    top = [{"token": t, "logprob": finite(v)} for t, v in lp.top]
    if full:
        out["bytes"] = lp.bytes if lp.bytes is not None else list(lp.token.encode("utf-8"))
        for entry in top:
            entry["bytes"] = list(str(entry["token"]).encode("utf-8"))
    out["top_logprobs"] = top
    return out


class ResponseBuilder:
    """One response: its state, and the streaming events of each step (see the module)."""

    framing = TYPED_SSE

    def __init__(self, response_id: str, model: str, echo: dict[str, Any], *,
                 with_logprobs: bool = False, created_at: int | None = None):
        self.id = response_id
        self.model = model
        self.echo = echo
        self.created_at = created_at or int(time.time())
        self.with_logprobs = with_logprobs
        self.status = "in_progress"
        self.output: list[dict[str, Any]] = []
        self.usage: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.failure: OpenwenError | None = None
        self.incomplete: dict[str, Any] | None = None
        self.completed_at: int | None = None
        self._seq = 0
        self._open: dict[str, Any] | None = None  # the item being streamed
        self._text: list[str] = []
        self._logprobs: list[dict[str, Any]] = []

    @property
    def finished(self) -> bool:
        return self.status not in ("queued", "in_progress")

    def snapshot(self) -> dict[str, Any]:
        """The Response object as it stands (an item still streaming holds its text so far)."""
        output = [dict(item) for item in self.output]
        if self._open is not None:
            output[-1]["content"] = [self._part(self._open["type"], "".join(self._text))]
        return {
            "id": self.id, "object": "response", "created_at": self.created_at,
            "status": self.status, "error": self.error,
            "incomplete_details": self.incomplete, "model": self.model,
            "output": output, "usage": self.usage,
            "completed_at": self.completed_at, **self.echo,
        }

    def _part(self, kind: str, text: str) -> dict[str, Any]:
        if kind == "message":
            logprobs = self._logprobs if self.with_logprobs else []
            return {"type": "output_text", "text": text, "annotations": [],
                    "logprobs": list(logprobs)}
        return {"type": "reasoning_text", "text": text}

    def _event(self, kind: str, **fields: Any) -> Payload:
        payload = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return payload

    def _response_event(self, kind: str) -> Payload:
        return self._event(kind, response=self.snapshot())

    # -- steps ---------------------------------------------------------------------------------

    def start(self) -> list[Payload]:
        return [self._response_event("response.created"),
                self._response_event("response.in_progress")]

    def add(self, event: Any) -> list[Payload]:
        if isinstance(event, TextDelta):
            out = self._open_item("message")
            if event.text or event.logprobs:
                self._text.append(event.text)
                deltas = [logprob_json(lp, full=False) for lp in event.logprobs]
                self._logprobs += [logprob_json(lp, full=True) for lp in event.logprobs]
                out.append(self._event("response.output_text.delta", **self._where(),
                                       content_index=0, delta=event.text,
                                       logprobs=deltas if self.with_logprobs else []))
            return out
        if isinstance(event, ReasoningDelta):
            out = self._open_item("reasoning")
            self._text.append(event.text)
            out.append(self._event("response.reasoning_text.delta", **self._where(),
                                   content_index=0, delta=event.text))
            return out
        if isinstance(event, ToolCallEvent):
            return self._function_call(event)
        return []  # server-side steps are not part of this dialect

    def finish(self, done: Done) -> list[Payload]:
        out = self._close_item("completed")
        self.usage = usage_json(done)
        self.completed_at = int(time.time())
        if done.finish_reason == "length":
            self.status, self.incomplete = "incomplete", {"reason": "max_output_tokens"}
            out.append(self._response_event("response.incomplete"))
        elif done.finish_reason == "cancelled":
            self.status = "cancelled"
        else:
            self.status = "completed"
            out.append(self._response_event("response.completed"))
        return out

    def fail(self, exc: OpenwenError) -> list[Payload]:
        out = self._close_item("incomplete")
        code = "rate_limit_exceeded" if isinstance(exc, OverloadedError) else "server_error"
        self.status, self.failure = "failed", exc
        self.error = {"code": code, "message": exc.message}
        out.append(self._event("error", code=exc.code or exc.type, message=exc.message,
                               param=exc.param))
        out.append(self._response_event("response.failed"))
        return out

    def cancel(self) -> list[Payload]:
        out = self._close_item("incomplete")
        self.status = "cancelled"
        return out

    # -- output items --------------------------------------------------------------------------

    def _where(self) -> dict[str, Any]:
        assert self._open is not None
        return {"item_id": self._open["id"], "output_index": len(self.output) - 1}

    def _open_item(self, kind: str) -> list[Payload]:
        if self._open is not None and self._open["type"] == kind:
            return []
        out = self._close_item("completed")
        item: dict[str, Any] = {"id": new_item_id(kind), "type": kind, "status": "in_progress"}
        if kind == "message":
            item.update(role="assistant", content=[])
        else:
            item.update(summary=[], content=[])
        part = self._part(kind, "")
        self._open = item
        self.output.append(item)
        out.append(self._event("response.output_item.added", output_index=len(self.output) - 1,
                               item=dict(item, content=[])))
        out.append(self._event("response.content_part.added", **self._where(),
                               content_index=0, part=part))
        return out

    def _close_item(self, status: str) -> list[Payload]:
        item, self._open = self._open, None
        if item is None:
            return []
        text, self._text = "".join(self._text), []
        part = self._part(item["type"], text)
        self._logprobs = []
        where = {"item_id": item["id"], "output_index": len(self.output) - 1}
        out: list[Payload] = []
        if item["type"] == "message":
            out.append(self._event("response.output_text.done", **where, content_index=0,
                                   text=text, logprobs=[
                                       {k: v for k, v in lp.items() if k != "bytes"}
                                       for lp in part["logprobs"]]))
        else:
            out.append(self._event("response.reasoning_text.done", **where, content_index=0,
                                   text=text))
        out.append(self._event("response.content_part.done", **where, content_index=0,
                               part=part))
        item["content"] = [part]
        item["status"] = status
        out.append(self._event("response.output_item.done", output_index=where["output_index"],
                               item=dict(item)))
        return out

    def _function_call(self, event: ToolCallEvent) -> list[Payload]:
        out = self._close_item("completed")
        call = event.call
        item = {"id": new_item_id("function_call"), "type": "function_call",
                "status": "in_progress", "call_id": call.id, "name": call.name,
                "arguments": ""}
        self.output.append(item)
        where = {"item_id": item["id"], "output_index": len(self.output) - 1}
        out.append(self._event("response.output_item.added",
                               output_index=where["output_index"], item=dict(item)))
        out.append(self._event("response.function_call_arguments.delta", **where,
                               delta=call.arguments))
        out.append(self._event("response.function_call_arguments.done", **where,
                               arguments=call.arguments))
        item.update(arguments=call.arguments, status="completed")
        out.append(self._event("response.output_item.done",
                               output_index=where["output_index"], item=dict(item)))
        return out
