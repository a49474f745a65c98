"""``openwen docs`` (documents) and ``openwen memory`` (long-term memory), plus the grounded
answer behind ``openwen ask --collection NAME``.

The CLI acts as the local account (the oldest admin, else a user called ``local``, created on
first use), like the web app in single-user mode; ``--user NAME`` acts as another account.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from openwen.cli.common import fail_on_errors, settings_or_exit
from openwen.config import Settings
from openwen.errors import InvalidRequestError, NotFoundError, OpenwenError
from openwen.knowledge import KnowledgeBase, KnowledgeSettings, LocalEmbedder, Scope
from openwen.knowledge.context import format_sources
from openwen.knowledge.parse import KINDS
from openwen.storage import Storage

LOCAL_USERNAME = "local"
CollectionOpt = Annotated[str | None, typer.Option("--collection", "-c",
                                                   help="a named collection")]
UserOpt = Annotated[str | None, typer.Option("--user", help="act as this account "
                                             "(default: the local account)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]

docs_app = typer.Typer(help="Documents to search and ask about (PDF, DOCX, Markdown, text, "
                            "HTML, CSV).", no_args_is_help=True)
memory_app = typer.Typer(help="Facts openwen remembers about you.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(docs_app, name="docs")
    app.add_typer(memory_app, name="memory")


# -- opening the store ------------------------------------------------------------------------


def local_user_id(storage: Storage, username: str | None = None) -> int:
    """The account the CLI acts as: ``username``, else the oldest admin, else ``local``."""
    users = storage.users
    if username:
        found = users.get_by_name(username)
        if found is None:
            raise NotFoundError(f"no account named {username!r}", param="user")
        return found.id
    admins = sorted((u for u in users.list_all() if u.is_admin), key=lambda u: u.id)
    user = admins[0] if admins else users.get_by_name(LOCAL_USERNAME)
    if user is None:
        user = users.create(LOCAL_USERNAME, None, is_admin=True)
    return user.id


@contextmanager
def open_knowledge(settings: Settings, username: str | None = None
                   ) -> Iterator[tuple[KnowledgeBase, int]]:
    """The knowledge base over the configured database, and the acting user's id."""
    storage = Storage.open(settings.database)
    embedder: LocalEmbedder | None = None
    try:
        embedder = LocalEmbedder.for_settings(settings)
        kb = KnowledgeBase(storage.db, embedder, KnowledgeSettings.from_settings(settings))
        yield kb, local_user_id(storage, username)
    finally:
        if embedder is not None:
            embedder.close()
        storage.close()


@contextmanager
def _session(user: str | None) -> Iterator[tuple[KnowledgeBase, int]]:
    settings = settings_or_exit()
    with fail_on_errors(), open_knowledge(settings, user) as opened:
        yield opened


def _scope(collection: str | None) -> Scope:
    return Scope(collection=collection)


# -- docs ---------------------------------------------------------------------------------------


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files given, plus the supported files under any directory given."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*")
                                if p.is_file() and p.suffix.lower() in KINDS))
        else:
            files.append(path)
    return files


class _ProgressView:
    """One progress bar per file: parsing, then embedding chunk by chunk."""

    def __init__(self, progress: Progress, name: str):
        self.progress = progress
        self.name = name
        self.task: TaskID = progress.add_task(f"{name}: reading", total=None)

    def __call__(self, stage: str, done: int, total: int) -> None:
        label = "parsing" if stage == "parse" else "embedding"
        self.progress.update(self.task, description=f"{self.name}: {label}", completed=done,
                             total=total)

    def finish(self, message: str) -> None:
        self.progress.update(self.task, description=message, completed=1, total=1)


@docs_app.command("add")
def docs_add(
    paths: Annotated[list[Path], typer.Argument(help="files or directories")],
    collection: CollectionOpt = None,
    user: UserOpt = None,
) -> None:
    """Index files (an unchanged file is skipped; a changed one replaces its old version)."""
    console = Console(stderr=True)
    failed = 0
    with _session(user) as (kb, user_id):
        files = expand_paths(paths)
        if not files:
            raise InvalidRequestError("no supported files found")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            for path in files:
                view = _ProgressView(progress, path.name)
                try:
                    result = kb.add_file(user_id, path, _scope(collection), progress=view)
                except OpenwenError as exc:
                    failed += 1
                    view.finish(f"[red]{path.name}: {exc.message.removeprefix(path.name + ': ')}"
                                "[/red]")
                    continue
                doc = result.document
                state = "added" if result.created else "unchanged"
                if result.replaced:
                    state = "updated"
                view.finish(f"{path.name}: {state} ({doc.chunks} passages, id {doc.id[:8]})")
    if failed:
        raise typer.Exit(1)


def _reindex_notice(kb: KnowledgeBase, user_id: int, collection: str | None) -> None:
    """Tell the user (on stderr) when documents need ``openwen docs reindex``."""
    stale = kb.stale_documents(user_id, _scope(collection))
    if stale:
        where = f" {collection}" if collection else ""
        typer.echo(f"note: {len(stale)} document{'s' if len(stale) > 1 else ''} were indexed "
                   "by an older openwen or another embedding model; search them fully with: "
                   f"openwen docs reindex{where}", err=True)


@docs_app.command("reindex")
def docs_reindex(
    collection: Annotated[str | None, typer.Argument(help="only this collection")] = None,
    everything: Annotated[bool, typer.Option("--all", help="rebuild every document, not only "
                                             "those that need it")] = False,
    user: UserOpt = None,
) -> None:
    """Rebuild the index of documents indexed by an older openwen or another embedding model
    (each document's old index serves searches until its new one is stored)."""
    with _session(user) as (kb, user_id):
        def view(doc: Any, n: int, total: int) -> None:
            typer.echo(f"[{n}/{total}] {doc.filename}: reindexed", err=True)

        done = kb.reindex(user_id, _scope(collection), everything=everything, progress=view)
    typer.echo(f"reindexed {len(done)} document{'s' if len(done) != 1 else ''}"
               if done else "nothing to reindex: every document is up to date")


@docs_app.command("list")
def docs_list(collection: CollectionOpt = None, user: UserOpt = None,
              as_json: JsonOpt = False) -> None:
    """List documents (of one collection with --collection)."""
    with _session(user) as (kb, user_id):
        docs = kb.list_documents(user_id, _scope(collection))
        _reindex_notice(kb, user_id, collection)
    if as_json:
        typer.echo(json.dumps([d.to_json() for d in docs], indent=2))
        return
    if not docs:
        typer.echo("no documents; add some with: openwen docs add PATH")
        return
    table = Table()
    for column in ("id", "file", "type", "pages", "passages", "collections", "added"):
        table.add_column(column)
    for d in docs:
        table.add_row(d.id[:8], d.filename, d.kind, "" if d.pages is None else str(d.pages),
                      str(d.chunks), ", ".join(d.collections),
                      d.created_at.strftime("%Y-%m-%d %H:%M"))
    Console().print(table)


@docs_app.command("rm")
def docs_rm(
    documents: Annotated[list[str], typer.Argument(help="document ids (or 8+ character id "
                                                        "prefixes) or file names")],
    collection: Annotated[str | None, typer.Option(
        "--collection", "-c", help="only take them out of this collection")] = None,
    user: UserOpt = None,
) -> None:
    """Remove documents (or, with --collection, only take them out of that collection)."""
    with _session(user) as (kb, user_id):
        for name in documents:
            found = kb.find_documents(user_id, name)
            if not found:
                raise NotFoundError(f"document {name!r} not found", param="document")
            if len(found) > 1:
                ids = ", ".join(d.id[:8] for d in found)
                raise InvalidRequestError(f"{name!r} names several documents ({ids}); "
                                          "give an id")
            doc = found[0]
            if collection:
                kb.documents.detach(user_id, doc.id, _scope(collection))
                typer.echo(f"took {doc.filename} out of {collection}")
            else:
                kb.remove_document(user_id, doc.id)
                typer.echo(f"removed {doc.filename} ({doc.id[:8]})")


@docs_app.command("search")
def docs_search(
    query: Annotated[str, typer.Argument(help="what to look for")],
    collection: CollectionOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100)] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, fulltext or vector")] = "hybrid",
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the passages that best match QUERY, with their source and score."""
    with _session(user) as (kb, user_id):
        passages = kb.search(user_id, query, _scope(collection), limit=limit,
                             mode=mode)  # type: ignore[arg-type]
        _reindex_notice(kb, user_id, collection)
    if as_json:
        typer.echo(json.dumps([p.to_json() for p in passages], indent=2, ensure_ascii=False))
        return
    if not passages:
        typer.echo("no matching passages")
        return
    console = Console()
    for n, p in enumerate(passages, 1):
        console.print(f"[bold][{n}] {p.source}[/bold]  [dim]score {p.score:.4f}[/dim]",
                      highlight=False)
        console.print(" ".join(p.text.split()), markup=False, highlight=False)
        console.print()


@docs_app.command("collections")
def docs_collections(user: UserOpt = None, as_json: JsonOpt = False) -> None:
    """List collections and how many documents each holds."""
    with _session(user) as (kb, user_id):
        collections = kb.documents.collections(user_id)
    if as_json:
        typer.echo(json.dumps([c.to_json() for c in collections], indent=2))
        return
    for c in collections:
        typer.echo(f"{c.name}\t{c.documents} document{'s' if c.documents != 1 else ''}")


# -- memory -------------------------------------------------------------------------------------


@memory_app.command("list")
def memory_list(user: UserOpt = None, as_json: JsonOpt = False) -> None:
    """List everything openwen remembers about you."""
    with _session(user) as (kb, user_id):
        memories = kb.memories.all(user_id)
    if as_json:
        typer.echo(json.dumps([m.to_json() for m in memories], indent=2, ensure_ascii=False))
        return
    if not memories:
        typer.echo("no memories; add one with: openwen memory add \"I prefer metric units\"")
        return
    for m in memories:
        typer.echo(f"{m.id}\t{m.text}\t({m.source}, {m.updated_at:%Y-%m-%d})")


@memory_app.command("add")
def memory_add(text: Annotated[str, typer.Argument(help="the fact to remember")],
               user: UserOpt = None) -> None:
    """Remember a fact."""
    with _session(user) as (kb, user_id):
        memory = kb.memories.add(user_id, text, source="user")
    typer.echo(f"remembered ({memory.id}): {memory.text}")


@memory_app.command("edit")
def memory_edit(memory_id: Annotated[int, typer.Argument(help="the memory's number")],
                text: Annotated[str, typer.Argument(help="the new text")],
                user: UserOpt = None) -> None:
    """Change a memory."""
    with _session(user) as (kb, user_id):
        memory = kb.memories.edit(user_id, memory_id, text)
    typer.echo(f"updated ({memory.id}): {memory.text}")


@memory_app.command("rm")
def memory_rm(memory_ids: Annotated[list[int], typer.Argument(help="memory numbers")],
              user: UserOpt = None) -> None:
    """Forget memories."""
    with _session(user) as (kb, user_id):
        for memory_id in memory_ids:
            memory = kb.memories.delete(user_id, memory_id)
            typer.echo(f"forgot ({memory.id}): {memory.text}")


# -- ask --collection -------------------------------------------------------------------------


def ask_collection(question: str, collection: str, *, settings: Settings,
                   system: str | None = None, think: bool | None = None,
                   max_tokens: int | None = None, temperature: float | None = None,
                   seed: int | None = None, as_json: bool = False,
                   user: str | None = None) -> None:
    """``openwen ask --collection NAME "question"``: answer from the collection's documents,
    streamed, then the numbered sources (or one JSON object with ``--json``)."""
    from openwen.chat.service import ChatService
    from openwen.cli.render import AnswerView
    from openwen.knowledge.answer import prepare_answer, stream_answer
    from openwen.requests import Sampling

    async def run(kb: KnowledgeBase, user_id: int) -> tuple[Any, Any]:
        service = ChatService(settings)
        try:
            grounded = await prepare_answer(
                kb, user_id, question, collection=collection, model=settings.model,
                system=system, max_tokens=max_tokens, thinking=think,
                sampling=Sampling(temperature=temperature, seed=seed))
            view = AnswerView(Console(), plain_out=io.StringIO() if as_json else None)
            if as_json:
                async for event in stream_answer(service, grounded):
                    view.add(event)
            else:
                with view:
                    async for event in stream_answer(service, grounded):
                        view.add(event)
            return grounded, view
        finally:
            await service.aclose()

    with fail_on_errors(), open_knowledge(settings, user) as (kb, user_id):
        kb.documents.all(user_id, Scope(collection=collection))  # a missing one fails here
        grounded, view = asyncio.run(run(kb, user_id))
    citations = grounded.context.citations
    if as_json:
        typer.echo(json.dumps({
            "model": settings.model, "collection": collection, "content": view.text,
            "mode": grounded.context.mode, "citations": [c.to_json() for c in citations],
            "finish_reason": view.done.finish_reason if view.done else None,
        }, ensure_ascii=False, indent=2))
    elif citations:
        Console().print("\n" + format_sources(citations), markup=False, highlight=False)
    else:
        Console().print("\n(no passage of the collection matched the question)")
