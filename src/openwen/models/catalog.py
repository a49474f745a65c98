"""Friendly model names (``qwen3:0.6b``) mapped to published GGUF repositories and files.

The data lives in ``catalog.toml`` next to this module. Lookups ignore case.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from openwen.errors import ConfigError


@dataclass(frozen=True)
class CatalogEntry:
    """One friendly name: where to pull it from and which file."""

    name: str
    repo: str
    file: str
    quant: str | None = None
    size: int | None = None
    description: str = ""
    thinking: bool | None = None  # the model can think (Qwen3's hybrid modes)
    context: int | None = None  # the context the profile uses by default
    family: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "repo": self.repo,
            "file": self.file,
            "quant": self.quant,
            "size": self.size,
            "description": self.description,
            "thinking": self.thinking,
            "context": self.context,
            "family": self.family,
        }


def _entry(name: str, data: dict[str, Any]) -> CatalogEntry:
    try:
        return CatalogEntry(
            name=name,
            repo=str(data["repo"]),
            file=str(data["file"]),
            quant=data.get("quant"),
            size=data.get("size"),
            description=str(data.get("description", "")),
            thinking=data.get("thinking") if isinstance(data.get("thinking"), bool) else None,
            context=data.get("context") if isinstance(data.get("context"), int) else None,
            family=str(data.get("family", name.split(":")[0])),
        )
    except KeyError as exc:
        raise ConfigError(f"model catalog entry '{name}' lacks {exc.args[0]!r}") from None


@functools.cache
def catalog() -> dict[str, CatalogEntry]:
    """Every catalog entry by name, in file order."""
    text = resources.files("openwen.models").joinpath("catalog.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return {name: _entry(name, value) for name, value in data.get("models", {}).items()}


def names() -> list[str]:
    return list(catalog())


def lookup(name: str) -> CatalogEntry | None:
    """The entry called ``name`` (case-insensitive), or None."""
    entries = catalog()
    if name in entries:
        return entries[name]
    lowered = name.strip().lower()
    return next((e for n, e in entries.items() if n.lower() == lowered), None)


def find_by_file(repo: str, file: str) -> CatalogEntry | None:
    """The entry whose repository and file are ``repo`` and ``file`` (case-insensitive)."""
    repo_l, file_l = repo.lower(), file.lower()
    return next(
        (e for e in catalog().values() if e.repo.lower() == repo_l and e.file.lower() == file_l),
        None,
    )
