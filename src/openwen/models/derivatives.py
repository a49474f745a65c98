"""Derivatives: LoRA adapters trained by ``openwen tune``, listed as models of their own.

A derivative lives in ``<home>/derivatives/<name>/`` (``adapter.gguf`` plus ``derivative.json``,
which names the base model and its file). Only complete folders are there: the trainer publishes
one by renaming it into place. A derivative is served by its base's weights plus its adapter.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from openwen.models.gguf_meta import BaseModel, GGUFMetadata, read_metadata_cached


@dataclasses.dataclass(frozen=True)
class Derivative:
    name: str
    adapter: Path
    base: str
    base_path: Path
    info: dict[str, Any]


def derivatives_folder(home: Path) -> Path:
    return home / "derivatives"


def list_derivatives(home: Path) -> list[Derivative]:
    root = derivatives_folder(home)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir()):
        info_path, adapter = folder / "derivative.json", folder / "adapter.gguf"
        if folder.name.startswith(".") or not (info_path.is_file() and adapter.is_file()):
            continue
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            found.append(Derivative(name=folder.name, adapter=adapter, base=str(info["base"]),
                                    base_path=Path(info["base_path"]), info=info))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def derivative_metadata(d: Derivative) -> tuple[GGUFMetadata | None, str | None]:
    """The base's metadata with the derivative's name and lineage, or a problem."""
    from openwen.errors import ModelFileError

    try:
        meta = read_metadata_cached(d.base_path)
    except ModelFileError as exc:
        return None, f"its base model '{d.base}' cannot be read: {exc.message}"
    org = d.info.get("base_organization")
    return dataclasses.replace(meta, name=d.name, finetune=d.name,
                               base_models=(BaseModel(name=d.base, organization=org),)), None
