"""The interactive terminal chat loop behind ``openwen chat``."""

from __future__ import annotations

import asyncio
import sys

from rich.console import Console

from openwen.chat.service import ChatService
from openwen.chat.turn import ChatSettings
from openwen.cli.agent_run import stream_answer
from openwen.cli.render import AnswerView
from openwen.errors import OpenwenError
from openwen.messages import Message, MessageEvent
from openwen.models.profiles import Capabilities, Profile, profile_for
from openwen.requests import ChatRequest

HELP = """\
Commands:
  /help            this help
  /reset           forget the conversation
  /model NAME      switch model (empty: show the current one)
  /system TEXT     set the system prompt (empty: clear it)
  /think on|off    reasoning on or off for thinking models (/think alone: model default)
  /thinking        show the last answer's reasoning in full
  /exit            quit (or Ctrl-D)
Multi-line input: start and end a block with a line of three double quotes (\"\"\").
Ctrl-C stops the current answer; the conversation keeps what was said so far."""


class ChatSession:
    def __init__(self, service: ChatService, console: Console, *, model: str,
                 system: str | None = None, thinking: bool | None = None,
                 tools: bool | None = None, max_tokens: int | None = None):
        self.service = service
        self.console = console
        self.model = model
        self.system = system
        self.thinking = thinking
        self.history: list[Message] = []
        self.last_reasoning = ""
        self.tools = tools
        self.max_tokens = max_tokens
        self._runner = asyncio.Runner()
        self._profiles: dict[str, tuple[Profile, Capabilities]] = {}  # by model name

    def run(self) -> None:
        self.console.print(f"[bold]openwen[/bold] chat with [cyan]{self.model}[/cyan] "
                           "(/help for commands, Ctrl-D to quit)")
        try:
            while (text := self.read_input()) is not None:
                if text.startswith("/"):
                    if not self.command(text):
                        break
                elif text.strip():
                    self.turn(text)
        finally:
            self._runner.run(self.service.aclose())
            self._runner.close()

    def read_input(self) -> str | None:
        try:
            line = self.console.input("[bold green]> [/]") if sys.stdin.isatty() else input()
        except (EOFError, KeyboardInterrupt):
            self.console.print()
            return None
        if line.strip() != '"""':
            return line
        lines: list[str] = []
        while True:
            try:
                more = input()
            except (EOFError, KeyboardInterrupt):
                break
            if more.strip() == '"""':
                break
            lines.append(more)
        return "\n".join(lines)

    def command(self, text: str) -> bool:
        """Run a slash command; False means quit."""
        name, _, arg = text.partition(" ")
        arg = arg.strip()
        if name in ("/exit", "/quit"):
            return False
        if name == "/help":
            self.console.print(HELP, markup=False)
        elif name == "/reset":
            self.history.clear()
            self.console.print("[dim]conversation cleared[/dim]")
        elif name == "/model":
            self.model = arg or self.model
            self.console.print(f"model: [cyan]{self.model}[/cyan]")
        elif name == "/system":
            self.system = arg or None
            self.console.print(f"system prompt {'set' if arg else 'cleared'}")
        elif name == "/think":
            self.thinking = {"on": True, "off": False}.get(arg.lower()) if arg else None
            state = {True: "on", False: "off", None: "model default"}[self.thinking]
            self.console.print(f"thinking: {state}")
        elif name == "/thinking":
            self.console.print(self.last_reasoning or "(no reasoning in the last answer)",
                               style="dim", markup=False)
        else:
            self.console.print(f"unknown command {name}; /help lists them")
        return True

    def turn(self, text: str) -> None:
        user = Message("user", text)
        added: list[Message] = []
        view = AnswerView(self.console)
        try:
            chat = self.chat_settings()
            request = chat.request((*self.history, user), system=self.system)
            self._runner.run(self._stream(request, view, added, chat))
        except KeyboardInterrupt:
            self.console.print("[dim](stopped)[/dim]")
        except OpenwenError as exc:
            self.console.print(f"[red]error:[/red] {exc.message}")
            return
        if not added or added[-1].role != "assistant":  # stopped mid-answer, or no tools
            added.append(Message("assistant", view.text, reasoning=view.reasoning or None))
        self.history += [user, *added]
        self.last_reasoning = view.reasoning

    def chat_settings(self) -> ChatSettings:
        """This turn's settings: the session's choices over the model's profile, applied as the
        web app applies it (:meth:`ChatSettings.with_profile`); each model's profile is read
        once."""
        found = self._profiles.get(self.model)
        if found is None:
            found = self._profiles[self.model] = profile_for(self.model, self.service.settings)
        chat = ChatSettings(model=self.model, thinking=self.thinking, tools=self.tools,
                            max_tokens=self.max_tokens)
        return chat.with_profile(*found)

    async def _stream(self, request: ChatRequest, view: AnswerView, added: list[Message],
                      chat: ChatSettings) -> None:
        with view:
            async for event in stream_answer(self.service, request, tools=chat.tools_on,
                                             decide=chat.tool_decision,
                                             arithmetic=chat.arithmetic):
                if isinstance(event, MessageEvent):
                    added.append(event.message)
                view.add(event)
