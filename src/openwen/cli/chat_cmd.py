"""``openwen chat`` (interactive) and ``openwen ask`` (one-shot)."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import replace
from typing import Annotated

import typer
from rich.console import Console

from openwen.chat.service import ChatService
from openwen.chat.turn import ChatSettings
from openwen.cli.agent_run import stream_answer, with_profile
from openwen.cli.common import fail_on_errors, settings_or_exit, stdin_text
from openwen.cli.render import AnswerView
from openwen.cli.session import ChatSession
from openwen.messages import Message
from openwen.requests import ChatRequest

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="model name or .gguf path")]
ToolsOpt = Annotated[bool | None, typer.Option(
    "--tools/--no-tools", help="let the model use openwen's tools (calculator, clock, files, "
    "sandboxed Python, fetch, search, MCP servers); side-effecting ones ask first. "
    "Default: what the model's profile says")]
ThinkOpt = Annotated[
    bool | None, typer.Option("--think/--no-think", help="reasoning on/off for thinking models")
]


def register(app: typer.Typer) -> None:
    app.command()(chat)
    app.command()(ask)


def chat(
    model: ModelOpt = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="system prompt")] = None,
    think: ThinkOpt = None,
    tools: ToolsOpt = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1,
                                                   help="longest answer in tokens")] = None,
) -> None:
    """Chat in the terminal. Type /help for commands; Ctrl-C stops an answer, Ctrl-D quits."""
    settings = settings_or_exit(model=model)
    session = ChatSession(
        ChatService(settings, allow_model_paths=True),
        Console(),
        model=settings.model,
        system=system,
        thinking=think,
        tools=tools,
        max_tokens=max_tokens,
    )
    with fail_on_errors():
        session.run()


def ask(
    question: Annotated[str | None, typer.Argument(help="the question; stdin is appended")] = None,
    model: ModelOpt = None,
    system: Annotated[str | None, typer.Option("--system", "-s")] = None,
    think: ThinkOpt = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1)] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", min=0.0, max=2.0)] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON object")] = False,
    tools: ToolsOpt = None,
    collection: Annotated[str | None, typer.Option(
        "--collection", "-c", help="answer from this document collection, with citations")] = None,
) -> None:
    """Ask one question and print the answer. Reads stdin when piped."""
    piped = stdin_text()
    text = "\n\n".join(p for p in ((question or "").strip(), piped.strip()) if p)
    settings = settings_or_exit(model=model)
    if collection is not None:
        from openwen.cli.docs_cmd import ask_collection

        if not text:
            typer.echo("error: the message is empty", err=True)
            raise typer.Exit(1)
        with fail_on_errors():
            ask_collection(text, collection, settings=settings, system=system, think=think,
                           max_tokens=max_tokens, temperature=temperature, seed=seed,
                           as_json=as_json)
        return
    with fail_on_errors():
        chat = with_profile(settings, ChatSettings(
            model=settings.model, temperature=temperature, max_tokens=max_tokens,
            thinking=think, tools=tools))
        request = chat.request((Message("user", text),), system=system)
        request = replace(request, sampling=replace(request.sampling, seed=seed))
        service = ChatService(settings, allow_model_paths=True)
        view = asyncio.run(_answer(service, request, as_json, chat))
    if as_json:
        typer.echo(json.dumps(_as_json(view, request), ensure_ascii=False, indent=2))


async def _answer(service: ChatService, request: ChatRequest, quiet: bool, chat: ChatSettings
                  ) -> AnswerView:
    # quiet (--json): the view only collects, writing its plain text into a discarded buffer
    view = AnswerView(Console(), plain_out=io.StringIO() if quiet else None)
    try:
        with view:
            async for event in stream_answer(service, request, tools=chat.tools_on,
                                             decide=chat.tool_decision,
                                             arithmetic=chat.arithmetic):
                view.add(event)
        return view
    finally:
        await service.aclose()


def _as_json(view: AnswerView, request: ChatRequest) -> dict[str, object]:
    done = view.done
    return {
        "model": request.model,
        "content": view.text,
        "reasoning": view.reasoning or None,
        "tool_calls": [
            {"id": t.call.id, "name": t.call.name, "arguments": t.call.arguments}
            for t in view.tool_calls
        ],
        "tool_results": [{"id": r.call.id, "content": r.content, "error": r.error}
                         for r in view.tool_results],
        "finish_reason": done.finish_reason if done else None,
        "usage": {
            "prompt_tokens": done.usage.prompt_tokens,
            "completion_tokens": done.usage.completion_tokens,
        }
        if done
        else None,
    }
