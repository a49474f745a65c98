"""Which engine serves which model name. Embedded models load lazily on first use."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from openwen.config import Settings
from openwen.engines.base import Engine, ModelInfo
from openwen.errors import ModelNotFoundError

log = logging.getLogger(__name__)


class SharedWeights:
    """Loaded GGUF weights by file, counted: a base and its derivatives load them once."""

    def __init__(self) -> None:
        self._models: dict[Path, tuple[Any, int]] = {}
        self._lock = threading.Lock()

    def acquire(self, path: Path) -> Any:
        from openwen.engines.batch_native import NativeModel

        key = path.resolve()
        with self._lock:
            model, users = self._models.get(key, (None, 0))
            if model is None:
                model = NativeModel(path)
            self._models[key] = (model, users + 1)
            return model

    def release(self, path: Path) -> None:
        key = path.resolve()
        with self._lock:
            model, users = self._models.get(key, (None, 0))
            if model is None:
                return
            if users <= 1:
                del self._models[key]
                model.close()
            else:
                self._models[key] = (model, users - 1)

    def __len__(self) -> int:
        return len(self._models)


class EngineRegistry:
    """Resolves a request's model name to a running engine.

    Embedded models are any model the local store resolves (``smollm2``, pulled models; a .gguf
    path only with ``allow_paths``, as the local CLI does); at most ``max_loaded`` stay loaded,
    least recently used unloaded first. Configured upstreams (``[[engines]]``, or the legacy
    ``remote_*`` settings) serve their own model ids, checked for health
    (:mod:`openwen.engines.upstreams`); with ``local_models`` off only upstreams serve.
    """

    def __init__(self, settings: Settings, *, max_loaded: int = 2, allow_paths: bool = False):
        from openwen.models.store import ModelStore

        self.settings = settings
        self.store = ModelStore(settings)
        self.max_loaded = max_loaded
        # model files named by path: fine from the local CLI, never from the network API
        self.allow_paths = allow_paths
        self._loaded: OrderedDict[str, Engine] = OrderedDict()
        self.weights = SharedWeights()
        self._weights_of: dict[str, Path] = {}  # engine name -> the weights it holds
        self._locks: dict[str, asyncio.Lock] = {}
        from openwen.engines.upstreams import Upstreams

        self.upstreams = Upstreams(settings)

    @property
    def default_model(self) -> str:
        if self.settings.engine == "remote" and self.settings.remote_model:
            return self.settings.remote_model
        if not self.settings.local_models and self.settings.model == "smollm2":
            ids = [i for u in self.upstreams.all for i in u.model_ids()]
            return ids[0] if ids else self.settings.model
        return self.settings.model

    def loaded(self) -> list[Engine]:
        return list(self._loaded.values())

    async def list_models(self) -> list[ModelInfo]:
        infos = []
        if self.settings.local_models:
            local = self.store.cached()  # a few stat calls; the full listing reads every file
            if local is None:
                local = await asyncio.to_thread(self.store.list)
            infos = [
                ModelInfo(
                    id=m.name,
                    context_length=m.metadata.context_length if m.metadata else None,
                    details={"engine": "embedded", "path": str(m.path),
                             **({"base": m.base, "adapter": str(m.adapter)} if m.adapter else {})},
                )
                for m in local
            ]
        if self.upstreams:
            infos.extend(await self.upstreams.list_models())
        return infos

    async def _remote_models(self) -> list[ModelInfo]:
        return await self.upstreams.list_models() if self.upstreams else []

    async def get(self, model: str | None) -> Engine:
        name = model or self.default_model
        if self.upstreams:
            upstream = await self.upstreams.find(name)
            if upstream is not None:
                if not upstream.available:
                    raise upstream.unavailable(name)
                return upstream.engine
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name]
        remote = [m.id for m in await self._remote_models()]
        if not self.settings.local_models:
            raise ModelNotFoundError(name, remote)
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name not in self._loaded:
                self._loaded[name] = await asyncio.to_thread(self._load, name, remote)
                await self._evict()
        return self._loaded[name]

    def _load(self, name: str, remote: list[str]) -> Engine:
        from openwen.engines.llamacpp import LlamaCppEngine

        try:
            local = self.store.resolve(name)
        except ModelNotFoundError as exc:
            raise ModelNotFoundError(name, sorted(set(exc.available) | set(remote))) from None
        if not (self.allow_paths or name == self.settings.model or self._in_store(local.path)):
            # a file elsewhere on disk, named by path: fine from the CLI, never from the network
            raise ModelNotFoundError(name, sorted(set(self.store.names()) | set(remote)))
        log.info("loading %s from %s%s (%s engine)", name, local.path,
                 f" + adapter {local.adapter}" if local.adapter else "",
                 self.settings.embedded_engine)
        s = self.settings
        if s.embedded_engine == "batched":
            from openwen.engines.batched import BatchedEngine

            weights = self.weights.acquire(local.path)
            try:
                engine = BatchedEngine(
                    local.path, name=name, n_ctx=s.n_ctx, n_threads=s.n_threads,
                    n_batch=s.n_batch, n_ubatch=s.n_ubatch, max_queue=s.max_queue,
                    kv_slots=s.kv_slots, kv_cells=s.kv_cells, prefill_chunk=s.prefill_chunk,
                    kv_ram_mb=s.kv_ram_mb,
                    kv_cache_dir=s.home / "kvcache" if s.kv_cache_dir_mb else None,
                    kv_cache_dir_mb=s.kv_cache_dir_mb, model=weights, adapter=local.adapter,
                    adaptive_threads=s.adaptive_threads)
            except BaseException:
                self.weights.release(local.path)
                raise
            self._weights_of[name] = local.path
            return engine
        # the simple engine loads its own weights (a derivative: base weights plus adapter)
        return LlamaCppEngine(local.path, name=name, n_ctx=s.n_ctx, n_threads=s.n_threads,
                              n_batch=s.n_batch, max_queue=s.max_queue, adapter=local.adapter)

    def _in_store(self, path: Path) -> bool:
        from openwen.models.store import find_bundled_model

        resolved = path.resolve()
        if resolved == (find_bundled_model() or Path()).resolve():
            return True
        return resolved.is_relative_to(self.settings.models_path.resolve())

    async def _evict(self) -> None:
        while len(self._loaded) > self.max_loaded:
            name, engine = self._loaded.popitem(last=False)
            log.info("unloading %s", name)
            await self._close(name, engine)

    async def _close(self, name: str, engine: Engine) -> None:
        try:
            await engine.aclose()
        finally:
            if (path := self._weights_of.pop(name, None)) is not None:
                self.weights.release(path)

    async def aclose(self) -> None:
        for name, engine in list(self._loaded.items()):
            await self._close(name, engine)
        self._loaded.clear()
        await self.upstreams.aclose()

