"""Shared CLI helpers: settings loading and turning openwen errors into one clean line."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import typer

from openwen.config import Settings, load_settings
from openwen.errors import OpenwenError


@contextlib.contextmanager
def fail_on_errors() -> Iterator[None]:
    """Print an openwen error as one line on stderr and exit 1 (no traceback)."""
    try:
        yield
    except OpenwenError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


def settings_or_exit(**overrides: Any) -> Settings:
    with fail_on_errors():
        return load_settings(**{k: v for k, v in overrides.items() if v is not None}).settings


def stdin_text() -> str:
    """Text piped on stdin, or empty when stdin is a terminal."""
    if sys.stdin is None or sys.stdin.isatty():
        return ""
    return sys.stdin.read()
