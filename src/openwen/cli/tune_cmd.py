"""``openwen tune``: train a derivative (LoRA) on a JSONL dataset, on the answers you rated or
edited (``--from-conversations``) or on a document collection (``--from-docs``); follow it,
cancel it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from openwen.cli.common import fail_on_errors, settings_or_exit

tune_app = typer.Typer(help="Make your own model: fine-tune a derivative on your data.",
                       no_args_is_help=True)


@tune_app.command("create")
def create(
    base: Annotated[str, typer.Option("--base", help="base model (a name from openwen models)")],
    name: Annotated[str, typer.Option("--name", help="the derivative's model name")],
    data: Annotated[Path | None, typer.Option(
        "--data", help="JSONL: chats, prompt/completion pairs or texts")] = None,
    from_conversations: Annotated[bool, typer.Option(
        "--from-conversations", help="learn from the answers you rated good or edited")] = False,
    rated: Annotated[str, typer.Option(
        help="with --from-conversations: good, edited or both")] = "both",
    from_docs: Annotated[str | None, typer.Option(
        "--from-docs", metavar="COLLECTION", help="continued training on a document "
        "collection's text")] = None,
    user: Annotated[str | None, typer.Option(
        "--user", help="whose conversations or documents (default: the local account)")] = None,
    epochs: Annotated[int, typer.Option(help="passes over the data")] = 3,
    rank: Annotated[int, typer.Option(help="LoRA rank")] = 8,
    lr: Annotated[float, typer.Option(help="learning rate")] = 1e-3,
    seed: Annotated[int, typer.Option(help="seed (same data + seed: same adapter)")] = 0,
    max_length: Annotated[int, typer.Option(help="longest example in tokens")] = 1024,
    batch_size: Annotated[int, typer.Option(help="examples per training step")] = 4,
    merge: Annotated[bool, typer.Option(
        "--merge", help="also write a full GGUF with the adapter merged in (NAME-merged)")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="follow the job until it ends")] = False,
) -> None:
    """Queue a training job; it runs in a process of its own."""
    from openwen.tune.service import create_job
    from openwen.tune.train import TrainSettings

    given = [x for x in (data is not None, from_conversations, from_docs is not None) if x]
    if len(given) != 1:
        typer.echo("error: give exactly one of --data FILE, --from-conversations or "
                   "--from-docs COLLECTION", err=True)
        raise typer.Exit(2)
    settings = settings_or_exit()
    with fail_on_errors():
        payload, data_name, source = _dataset(settings, data, from_conversations, rated,
                                              from_docs, user)
        created = create_job(settings, name=name, base=base, data=payload, data_name=data_name,
                             train=TrainSettings(epochs=epochs, rank=rank, lr=lr, seed=seed,
                                                 max_length=max_length,
                                                 batch_size=batch_size),
                             source=source, merge=merge)
    for warning in created.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"queued '{name}': {created.n_train} training and {created.n_heldout} held-out "
               f"examples on {base}")
    if wait:
        _follow(settings, name)
    else:
        typer.echo(f"follow it with: openwen tune show {name}")


def _dataset(settings: Any, data: Path | None, from_conversations: bool, rated: str,
             collection: str | None, user: str | None) -> tuple[bytes, str, dict[str, Any]]:
    """The dataset's bytes, name and source, from a file or from the store."""
    if data is not None:
        from openwen.tune.data import read_jsonl

        raw = read_jsonl(data)  # reads and validates; create_job parses the same bytes
        return data.read_bytes(), raw.name, {"kind": "file"}
    from openwen.cli.docs_cmd import local_user_id
    from openwen.storage import Storage
    from openwen.tune.sources import conversations_dataset, documents_dataset

    storage = Storage.open(settings.database)
    try:
        user_id = local_user_id(storage, user)
        username = storage.users.get(user_id).username
        if from_conversations:
            built = conversations_dataset(storage, user_id, username, rated)
            source = {"kind": "conversations", "user": username, "rated": rated}
        else:
            assert collection is not None
            built = documents_dataset(storage, user_id, username, collection)
            source = {"kind": "documents", "user": username, "collection": collection}
    finally:
        storage.close()
    if built.skipped:
        typer.echo(f"note: {built.skipped} rated answers used tools and were left out", err=True)
    typer.echo(f"dataset {built.name}: {built.examples} examples")
    return built.data, built.name, source


@tune_app.command("list")
def list_jobs(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every training job and its state."""
    from openwen.tune.jobs import JobStore

    store = JobStore(settings_or_exit())
    store.resume()
    jobs = store.list()
    if as_json:
        typer.echo(json.dumps([j.to_dict() for j in jobs], indent=2))
        return
    if not jobs:
        typer.echo("no training jobs yet (openwen tune create --help)")
    for job in jobs:
        typer.echo(f"{job.name:24} {job.state:12} {job.spec.get('base', ''):16} "
                   f"{_progress_line(job.status)}")


@tune_app.command("show")
def show(name: str, as_json: Annotated[bool, typer.Option("--json")] = False,
         follow: Annotated[bool, typer.Option("--follow", "-f",
                                              help="follow until the job ends")] = False) -> None:
    """A job's progress, or its result: held-out loss of base vs derivative, sample answers."""
    from openwen.tune.jobs import JobStore

    settings = settings_or_exit()
    if follow:
        _follow(settings, name)
        return
    with fail_on_errors():
        job = JobStore(settings).get(name)
    if as_json:
        typer.echo(json.dumps(job.to_dict(), indent=2))
        return
    _print_job(job.name, job.state, job.spec, job.status)


@tune_app.command("cancel")
def cancel(name: str) -> None:
    """Stop a queued or running job; nothing of it is kept."""
    from openwen.tune.jobs import JobStore

    with fail_on_errors():
        job = JobStore(settings_or_exit()).cancel(name)
    typer.echo(f"{name}: {'cancelled' if job.state == 'cancelled' else 'cancelling'}")


@tune_app.command("merge")
def merge_cmd(
    name: str,
    merged: Annotated[str | None, typer.Option(
        "--name", help="the merged model's name (default NAME-merged)")] = None,
) -> None:
    """Write a finished derivative as a full GGUF of its own (base + adapter merged)."""
    from openwen.tune.service import merge_job

    with fail_on_errors():
        made = merge_job(settings_or_exit(), name, merged)
    typer.echo(f"merged {name} into {made['name']}: {made['path']} "
               f"({made['size'] / 2**20:.0f} MiB, {made['merged_tensors']} weights merged)")
    typer.echo(f"chat with it: openwen chat --model {made['name']}")


@tune_app.command("rm")
def remove(name: str) -> None:
    """Remove a finished job and its derivative."""
    from openwen.tune.jobs import JobStore

    with fail_on_errors():
        JobStore(settings_or_exit()).remove(name)
    typer.echo(f"removed {name}")


def _follow(settings: Any, name: str) -> None:
    from openwen.tune.jobs import FINAL, JobStore

    store = JobStore(settings)
    last = ""
    while True:
        with fail_on_errors():
            job = store.get(name)
        line = f"{job.state}: {_progress_line(job.status)}"
        if line != last:
            typer.echo(line)
            last = line
        if job.state in FINAL:
            break
        time.sleep(1.0)
    _print_job(job.name, job.state, job.spec, job.status)
    if job.state != "done":
        raise typer.Exit(1)


def _progress_line(status: dict[str, Any]) -> str:
    phase = status.get("phase", "")
    if status.get("state") == "running" and "step" in status and phase == "training":
        return (f"step {status['step']}/{status['total_steps']} loss {status['loss']:.3f} "
                f"{status['tokens_per_s']:.0f} tok/s ETA {status['eta_s']:.0f}s")
    if status.get("error"):
        return str(status["error"])
    return str(phase)


def _print_job(name: str, state: str, spec: dict[str, Any], status: dict[str, Any]) -> None:
    settings = spec.get("settings", {})
    typer.echo(f"{name}: {state} (base {spec.get('base')}, data {spec.get('dataset')}, "
               f"{spec.get('examples')} examples; epochs {settings.get('epochs')}, rank "
               f"{settings.get('rank')}, lr {settings.get('lr')}, seed {settings.get('seed')})")
    if state in ("running", "queued"):
        typer.echo(f"  {_progress_line(status)}")
    for warning in status.get("warnings", []):
        typer.echo(f"  warning: {warning}")
    if status.get("error"):
        typer.echo(f"  error: {status['error']}")
    ev = status.get("eval")
    if not ev:
        return
    typer.echo(f"  held-out examples: {ev['heldout_examples']}")
    typer.echo(f"  {'':12}{'base':>12}{'derivative':>12}")
    typer.echo(f"  {'loss':12}{_num(ev['base_loss']):>12}{_num(ev['derivative_loss']):>12}")
    typer.echo(f"  {'perplexity':12}{_num(ev['base_perplexity']):>12}"
               f"{_num(ev['derivative_perplexity']):>12}")
    for i, sample in enumerate(ev.get("samples", []), start=1):
        typer.echo(f"  [{i}] prompt:     {sample['prompt']}")
        typer.echo(f"      expected:   {sample['expected']}")
        typer.echo(f"      base:       {sample['base']}")
        typer.echo(f"      derivative: {sample['derivative']}")
    typer.echo(f"  chat with it: openwen chat --model {name}")
    merged = status.get("merged")
    if merged:
        typer.echo(f"  merged into a full GGUF: {merged['name']} ({merged['path']})")
    if status.get("merge_error"):
        typer.echo(f"  merging failed: {status['merge_error']}")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    app.add_typer(tune_app, name="tune")
