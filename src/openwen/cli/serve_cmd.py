"""``openwen serve`` (the OpenAI-compatible HTTP API) and ``openwen keys`` (its API keys)."""

from __future__ import annotations

import json
import signal
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from openwen.cli.common import fail_on_errors, settings_or_exit
from openwen.errors import NotFoundError

if TYPE_CHECKING:
    import uvicorn

    from openwen.config import Settings
    from openwen.server.lifecycle import ShutdownGate
    from openwen.storage.db import Database
    from openwen.storage.records import UserRecord

ADMIN_USERNAME = "admin"
BACKSTOP_SECONDS = 5.0

keys_app = typer.Typer(name="keys", help="Manage API keys for `openwen serve`.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.add_typer(keys_app, name="keys")


def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on [default: 127.0.0.1]")
                    ] = None,
    port: Annotated[int | None, typer.Option(help="port [default: 8800]")] = None,
    model: Annotated[str | None, typer.Option(help="default chat model")] = None,
    single_user: Annotated[bool, typer.Option(
        "--single-user", help="no login; you act as the local admin (loopback only)")] = False,
    graceful_timeout: Annotated[float, typer.Option(
        help="seconds streams in flight may run on after a stop signal")] = 10.0,
    workers: Annotated[int, typer.Option(
        min=1, max=64, help="processes serving the same port (each an instance of its own)")
                       ] = 1,
) -> None:
    """Serve the web chat app at / and the OpenAI-compatible API at /v1 (docs at /docs)."""
    import uvicorn

    from openwen.server.application import create_app
    from openwen.server.auth import check_bind, keys_required

    overrides = {"host": host, "port": port, "model": model,
                 "single_user": True if single_user else None}
    settings = settings_or_exit(**overrides)
    from openwen.server.webapp import check_single_user

    with fail_on_errors():
        check_bind(settings)
        check_single_user(settings)
        if workers > 1:
            _serve_workers(settings, overrides, workers, graceful_timeout)
            return
        app = create_app(settings, preload=True)
    # X-Forwarded-For/-Proto are trusted only from the proxies named in forwarded_allow_ips
    # (uvicorn's own default trusts 127.0.0.1, so any local client could pick its address)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                            timeout_graceful_shutdown=int(graceful_timeout + BACKSTOP_SECONDS),
                            proxy_headers=bool(settings.forwarded_allow_ips.strip()),
                            forwarded_allow_ips=settings.forwarded_allow_ips.strip() or [])
    server = graceful_server(config, gate=app.state.shutdown, grace=graceful_timeout)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    auth = "API key required" if keys_required(settings) else "no API key needed"
    base = f"http://{shown}:{settings.port}"
    typer.echo(f"openwen: open {base}/ in your browser "
               f"({'single-user, no login' if settings.single_user else 'sign in or sign up'})")
    docs = f"; docs at {base}/docs" if settings.api_docs else ""
    typer.echo(f"OpenAI-compatible API at {base}/v1 with model {settings.model} ({auth}{docs})")
    from openwen.models.fit import first_run_notice

    notice = first_run_notice(settings)
    if notice:
        typer.echo(notice)
    server.run()


def _serve_workers(settings: Settings, overrides: dict[str, Any], workers: int,
                   graceful_timeout: float) -> None:
    """``workers`` processes on one port (uvicorn's supervisor restarts a worker that dies).
    Each builds its app from the same settings: the command line's overrides travel to them as
    ``OPENWEN_*`` environment variables."""
    import os

    import uvicorn

    for name, value in overrides.items():
        if value is not None:
            os.environ[f"OPENWEN_{name.upper()}"] = str(value).lower() if isinstance(
                value, bool) else str(value)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    typer.echo(f"openwen: {workers} workers at http://{shown}:{settings.port}/")
    uvicorn.run("openwen.server.application:app_from_environment", factory=True,
                host=settings.host, port=settings.port, workers=workers, log_level="info",
                timeout_graceful_shutdown=int(graceful_timeout + BACKSTOP_SECONDS),
                proxy_headers=bool(settings.forwarded_allow_ips.strip()),
                forwarded_allow_ips=settings.forwarded_allow_ips.strip() or [])


def graceful_server(config: uvicorn.Config, *, gate: ShutdownGate, grace: float
                    ) -> uvicorn.Server:
    """A uvicorn server that starts the graceful shutdown on SIGINT/SIGTERM: new requests get
    503, streams in flight get ``grace`` seconds to finish, then end with an error event."""
    import uvicorn

    class GracefulServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            gate.begin(0 if sig == signal.SIGINT and self.should_exit else grace)
            super().handle_exit(sig, frame)

    return GracefulServer(config)


# -- keys ---------------------------------------------------------------------------------------


def _database() -> Database:
    from openwen.server.auth import open_database

    return open_database(settings_or_exit())


def _owner(db: Database, username: str | None) -> UserRecord:
    """The named user, else the local admin (created when there is none)."""
    from openwen.storage.users import UserRepo

    users = UserRepo(db)
    if username:
        found = users.get_by_name(username)
        if found is None:
            raise NotFoundError(f"no user named '{username}'", param="user")
        return found
    admins = [u for u in users.list_all() if u.is_admin and not u.disabled]
    if admins:
        return admins[0]
    existing = users.get_by_name(ADMIN_USERNAME)
    if existing is not None:
        return existing
    return users.create(ADMIN_USERNAME, None, is_admin=True)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="a label for the key")] = "default",
    user: Annotated[str | None, typer.Option(help="owner [default: the local admin]")] = None,
    scope: Annotated[list[str] | None, typer.Option(
        help="what the key may do: inference (the API), tools (server-side tools, when "
             "api_server_tools is on); repeat or comma-separate [default: inference]")] = None,
) -> None:
    """Create an API key and print it (it is shown only this once)."""
    from openwen.storage.credentials import DEFAULT_SCOPES, ApiKeyRepo, normal_scopes

    with fail_on_errors():
        scopes = normal_scopes(",".join(scope)) if scope else DEFAULT_SCOPES
        db = _database()
        owner = _owner(db, user)
        new = ApiKeyRepo(db).create(owner.id, name, scopes)
    typer.echo(new.secret)
    typer.echo(f"created key {new.key.id} '{new.key.name}' for user '{owner.username}' with "
               f"scopes {', '.join(new.key.scopes)}; store it now: it cannot be shown again",
               err=True)


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """List API keys (never the secrets: only their first characters)."""
    from rich.console import Console
    from rich.table import Table

    from openwen.storage.credentials import ApiKeyRepo
    from openwen.storage.users import UserRepo

    with fail_on_errors():
        db = _database()
        rows = [(user, key) for user in UserRepo(db).list_all()
                for key in ApiKeyRepo(db).list_for(user.id)]
    records = [{
        "id": key.id, "name": key.name, "user": user.username, "prefix": key.prefix,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked": key.revoked_at is not None, "scopes": list(key.scopes),
    } for user, key in sorted(rows, key=lambda r: r[1].id)]
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    if not records:
        typer.echo("no API keys; create one with `openwen keys create`")
        return
    table = Table(title="API keys")
    for column in ("id", "name", "user", "key", "scopes", "created", "last used", "status"):
        table.add_column(column)
    for r in records:
        table.add_row(str(r["id"]), str(r["name"]), str(r["user"]), f"{r['prefix']}…",
                      ",".join(r["scopes"]),  # type: ignore[arg-type]
                      str(r["created_at"])[:19], str(r["last_used_at"] or "never")[:19],
                      "revoked" if r["revoked"] else "active")
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="the key's id (see `keys list`)")]
                ) -> None:
    """Revoke an API key: requests using it get 401 from now on."""
    from openwen.storage.credentials import ApiKeyRepo
    from openwen.storage.users import UserRepo

    with fail_on_errors():
        db = _database()
        keys = ApiKeyRepo(db)
        for user in UserRepo(db).list_all():
            if any(k.id == key_id for k in keys.list_for(user.id)):
                keys.revoke(user.id, key_id)
                typer.echo(f"revoked key {key_id}")
                return
        raise NotFoundError(f"no API key with id {key_id}", param="key_id")
