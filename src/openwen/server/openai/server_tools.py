"""Server-side tools through ``POST /v1/chat/completions``, for requests that opt in.

The opt-in is an openwen extension field::

    {"model": "...", "messages": [...], "openwen": {"tools": true}}
    {"model": "...", "messages": [...], "openwen": {"tools": ["calculator", "current_datetime"]}}

Without it nothing changes: tools in ``tools`` are the client's, their calls come back as
standard ``tool_calls``, and the server never runs a tool. With it, the agent loop offers the
server's tools (built-ins and MCP servers; a list limits them) beside the client's, runs the
server's own calls, feeds the results back, and repeats until a final answer or the step limit
(``agent_max_steps``). A round that calls one of the client's tools still ends the run with
``finish_reason: "tool_calls"`` and only the client's calls in the message.

What the client gets:

- ``content``: the text of every model round, joined by a blank line (``reasoning_content``
  likewise); server tool calls never appear in ``tool_calls``;
- non-streaming: the extension field ``openwen.tool_steps`` on the response, one object per
  server tool call: ``step, id, name, arguments, content, error, duration_ms, source`` (and
  ``images``: ``[{mime_type, data (base64)}]`` for code-interpreter figures);
- streaming: the usual chunks, plus per server tool call two chunks with an empty ``delta`` and
  a top-level extension field: ``"openwen": {"tool_call": {step?, id, name, arguments}}`` when
  the model makes the call and ``"openwen": {"tool_result": {...as above}}`` when it finishes.

Server tools are off unless the admin sets ``api_server_tools = true``, and then run only for
API keys with the ``tools`` scope (:func:`openwen.server.auth.check_server_tools`), never for
anonymous callers; they act for the key's user (their file workspace). A tool that needs the
user's confirmation (``tools_confirm``, by default every side-effecting tool) is not run: the
API cannot ask, and the model is told so.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from openwen.chat.answer import ServerToolCall
from openwen.errors import InvalidRequestError
from openwen.messages import ToolResultEvent
from openwen.requests import ChatRequest
from openwen.server.auth import check_server_tools
from openwen.server.generating import chat_service, generate
from openwen.server.openai.protocol import ChatCompletionRequest, ChatCompletionResponse
from openwen.server.openai.render import ChatChunks, chat_response
from openwen.tools.registry import ToolRegistry
from openwen.tools.shared import SharedTools, workspace_name


class ServerToolChunks(ChatChunks):
    """Chat chunks plus the extension chunks of server tool steps."""

    def for_event(self, event: Any) -> list[dict[str, Any]]:
        if isinstance(event, ServerToolCall | ToolResultEvent):
            chunk = self._chunk({})
            chunk["openwen"] = step_extension(event)
            return [chunk]
        return super().for_event(event)


def step_extension(event: ServerToolCall | ToolResultEvent) -> dict[str, Any]:
    """The ``openwen`` extension object of a server tool call or result."""
    if isinstance(event, ToolResultEvent):
        return {"tool_result": step_data(event)}
    call = event.call
    return {"tool_call": {"id": call.id, "name": call.name, "arguments": call.arguments}}


def registry_for(request: Request, body: ChatCompletionRequest, chat: ChatRequest
                 ) -> ToolRegistry:
    """The server tools this request may use: the opt-in's, minus any name a client tool has
    (those stay the client's)."""
    shared = getattr(request.app.state, "tools", None)
    settings = chat_service(request).settings
    tools = shared if isinstance(shared, SharedTools) else SharedTools(settings)
    user = request.state.user  # check_server_tools: a key's user
    registry = tools.registry(workspace_name(user.username, user.id), user)
    wanted = body.server_tools
    if isinstance(wanted, list):
        unknown = [name for name in wanted if name not in registry]
        if unknown:
            raise InvalidRequestError(
                f"unknown server tool(s) {', '.join(unknown)}; the server has "
                f"{', '.join(registry.names()) or 'none'}", param="openwen.tools")
        registry = registry.select(wanted)
    client = {(t.get("function") or t).get("name") for t in chat.tools}
    return registry.select(n for n in registry.names() if n not in client)


def with_server_tools(chat: ChatRequest, registry: ToolRegistry) -> ChatRequest:
    """The request offering the client's tools and the server's; a named ``tool_choice`` must
    be one of them."""
    tools = (*chat.tools, *registry.definitions())
    choice = chat.tool_choice
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        if wanted not in {(t.get("function") or t).get("name") for t in tools}:
            raise InvalidRequestError(
                f"tool_choice names the function '{wanted}', which is neither among the "
                "request's tools nor the server's", param="tool_choice")
    elif choice == "required" and not tools:
        raise InvalidRequestError("tool_choice 'required' needs at least one tool",
                                  param="tool_choice")
    return replace(chat, tools=tools)


def step_data(result: ToolResultEvent) -> dict[str, Any]:
    data: dict[str, Any] = {
        "step": result.step, "id": result.call.id, "name": result.call.name,
        "arguments": result.call.arguments, "content": result.content, "error": result.error,
        "duration_ms": round(result.duration_ms, 1), "source": result.source,
    }
    if result.images:
        data["images"] = [{"mime_type": i.mime_type,
                           "data": base64.b64encode(i.data).decode("ascii")}
                          for i in result.images]
    return data


async def respond(request: Request, body: ChatCompletionRequest, chat: ChatRequest, *,
                  received: float) -> Response:
    """The response of a request that opted in to server tools (no one to ask: tools needing
    confirmation are not run)."""
    if (stop := request.app.state.shutdown.refusal()) is not None:
        raise stop
    check_server_tools(request)
    registry = registry_for(request, body, chat)
    asked = with_server_tools(chat, registry)
    client_tools = {str((t.get("function") or t).get("name")) for t in chat.tools}

    def respond_all(model: str, events: list[Any]) -> ChatCompletionResponse:
        response = chat_response(model, events, with_logprobs=chat.logprobs)
        steps = [step_data(e) for e in events if isinstance(e, ToolResultEvent)]
        response.openwen = {"tool_steps": steps}
        return response

    return await generate(
        request, asked, received=received, stream=bool(body.stream), respond=respond_all,
        tools=registry, client_tools=client_tools,
        renderer=lambda model: ServerToolChunks(model=model, include_usage=body.include_usage))
