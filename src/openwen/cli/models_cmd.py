"""``openwen models``, ``openwen pull``, ``openwen rm`` and ``openwen create``: the local model
store in a terminal."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from openwen.cli.common import fail_on_errors
from openwen.config import Settings, load_settings
from openwen.errors import InvalidRequestError
from openwen.models import catalog
from openwen.models.profiles import (
    Profile,
    SamplingDefaults,
    capabilities_of,
    check_name,
    save_derivative,
)
from openwen.models.pull import PullProgress, pull
from openwen.models.store import LocalModel, ModelStore


def _settings() -> Settings:
    with fail_on_errors():
        return load_settings().settings


def human_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _lineage(model: LocalModel) -> str:
    if model.base is not None:
        return f"made from {model.base} (openwen {'tune' if model.tuned else 'create'})"
    return model.metadata.lineage if model.metadata else ""


def _capabilities(model: LocalModel) -> str:
    caps = capabilities_of(model.metadata)
    return ", ".join(n for n, on in (("tools", caps.tools), ("thinking", caps.thinking)) if on)


def _row(model: LocalModel) -> tuple[str, ...]:
    name = model.name + (" (bundled)" if model.bundled else "")
    meta = model.metadata
    if meta is None:
        return name, human_size(model.size), "?", "?", "", "", f"[red]{model.problem}[/red]"
    context = str(meta.context_length) if meta.context_length else ""
    return (
        name,
        human_size(model.size),
        meta.quantization or "",
        meta.architecture or "",
        context,
        _capabilities(model),
        _lineage(model),
    )


def models(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    show_catalog: Annotated[bool, typer.Option("--catalog", help="list pullable names")] = False,
) -> None:
    """List local models (or, with --catalog, the names `openwen pull` knows)."""
    settings = _settings()
    with fail_on_errors():
        local = ModelStore(settings).list()
    if show_catalog:
        _print_catalog({m.name for m in local}, as_json)
        return
    if as_json:
        typer.echo(json.dumps([m.to_dict() for m in local], indent=2))
        return
    table = Table(title=f"local models ({settings.models_path})")
    for column in ("name", "size", "quant", "arch", "context", "capabilities", "lineage"):
        table.add_column(column, justify="right" if column in ("size", "context") else "left")
    for model in local:
        table.add_row(*_row(model))
    Console().print(table)


def _print_catalog(local_names: set[str], as_json: bool) -> None:
    entries = list(catalog.catalog().values())
    if as_json:
        typer.echo(
            json.dumps(
                [{**e.to_dict(), "pulled": e.name in local_names} for e in entries], indent=2
            )
        )
        return
    table = Table(title="models `openwen pull NAME` knows")
    for column in ("name", "repository", "size", "pulled", "description"):
        table.add_column(column, no_wrap=column != "description")
    for e in entries:
        table.add_row(
            e.name,
            e.repo,
            human_size(e.size),
            "yes" if e.name in local_names else "",
            e.description,
        )
    Console().print(table)


class _Bar:
    """Feeds pull progress reports into a Rich progress bar on stderr."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, event: PullProgress) -> None:
        label = event.file if event.count == 1 else f"{event.file} ({event.index}/{event.count})"
        task = self.tasks.get(event.file)
        if task is None:
            task = self.progress.add_task(label, total=event.total)
            self.tasks[event.file] = task
        description = {"verify": f"verifying {label}", "skip": f"{label} (already present)"}
        self.progress.update(
            task,
            completed=event.completed,
            total=event.total,
            description=description.get(event.status, label),
        )


def pull_command(
    spec: Annotated[str, typer.Argument(help="catalog name (qwen3:0.6b) or OWNER/REPO[:FILE]")],
) -> None:
    """Download a model from the hub into the local store (resumes an interrupted download)."""
    settings = _settings()
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    try:
        quiet = not console.is_terminal
        with (
            fail_on_errors(),
            Progress(*columns, console=console, transient=True, disable=quiet) as bar,
        ):
            result = pull(spec, settings, progress=_Bar(bar))
    except KeyboardInterrupt:
        typer.echo("interrupted; run the same pull again to resume the download", err=True)
        raise typer.Exit(130) from None
    with fail_on_errors():
        name = ModelStore(settings).resolve(str(result.path)).name
    if result.downloaded == 0:
        console.print(f"[bold]{name}[/bold] is already up to date")
    else:
        check = "sha256 verified" if result.verified else "no sha256 published; size checked"
        console.print(f"pulled [bold]{name}[/bold] ({check})")
    typer.echo(str(result.path))


def rm(
    name: Annotated[str, typer.Argument(help="model name as `openwen models` shows it")],
) -> None:
    """Delete a pulled model from the local store."""
    settings = _settings()
    with fail_on_errors():
        model = ModelStore(settings).remove(name)
    if model.base is not None:
        typer.echo(f"removed {model.name} (made from {model.base}; its weights stay)")
    else:
        typer.echo(f"removed {model.name} ({model.path})")


def create(
    name: Annotated[str, typer.Argument(help="name of the new model")],
    base: Annotated[str, typer.Option("--from", help="the model it is made from")],
    system: Annotated[str | None, typer.Option("--system", "-s", help="default system prompt")]
    = None,
    temperature: Annotated[float | None, typer.Option(min=0, max=2, help="default temperature")]
    = None,
    top_p: Annotated[float | None, typer.Option("--top-p", min=0, max=1, help="default top_p")]
    = None,
    think: Annotated[bool | None, typer.Option("--think/--no-think", help="thinking by default")]
    = None,
) -> None:
    """Make a named derivative of a model: its own defaults over the base's, the same weights
    (like an Ollama Modelfile). `openwen models` lists its base; `openwen rm NAME` deletes it."""
    settings = _settings()
    with fail_on_errors():
        store = ModelStore(settings)
        check_name(name)
        if name in store.names():
            raise InvalidRequestError(f"a model called '{name}' exists already", param="name")
        parent = store.resolve(base)
        profile = Profile(system=system, base=parent.name, thinking=think,
                          sampling=SamplingDefaults(temperature=temperature, top_p=top_p))
        save_derivative(store.root, name, profile)
    typer.echo(f"created {name} from {parent.name}")


def register(app: typer.Typer) -> None:
    """Add the `models`, `pull`, `rm` and `create` commands to ``app``."""
    app.command("models")(models)
    app.command("pull")(pull_command)
    app.command("rm")(rm)
    app.command("create")(create)
