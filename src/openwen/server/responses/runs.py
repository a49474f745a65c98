"""A response being generated, in its own task: it outlives the request in background mode.

The route reads the answer's first event itself (so early failures are HTTP errors), then hands
the rest to a :class:`ResponseRun`. The run folds every event into its
:class:`~openwen.server.responses.render.ResponseBuilder`, passes the streaming events to the
client that streams (if any), and saves the response when it ends (``store``). A client that
goes away stops a foreground run; a background run only stops when it ends, is cancelled
(``POST /v1/responses/{id}/cancel``) or the server shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from openwen.errors import EngineError, OpenwenError
from openwen.messages import Done
from openwen.server.responses.render import Payload, ResponseBuilder

log = logging.getLogger(__name__)


class ResponseRun:
    def __init__(self, builder: ResponseBuilder, first: Any, events: AsyncIterator[Any], *,
                 owner: int | None, background: bool, stream: bool,
                 save: Callable[[ResponseBuilder], Awaitable[None]],
                 on_done: Callable[[Done], None] = lambda done: None):
        self.builder = builder
        self.owner = owner
        self.background = background
        self.queue: asyncio.Queue[Payload | None] | None = asyncio.Queue() if stream else None
        self._first = first
        self._events = events
        self._save = save
        self._on_done = on_done
        self._stop_error: OpenwenError | None = None
        self.task = asyncio.create_task(self._run(), name=f"openwen-response-{builder.id}")

    @property
    def id(self) -> str:
        return self.builder.id

    @property
    def running(self) -> bool:
        return not self.task.done()

    def stop(self, error: OpenwenError | None = None) -> None:
        """Stop generating: cancelled, or failed with ``error`` (the server shuts down)."""
        if self.running:
            self._stop_error = error
            self.task.cancel()

    async def wait(self) -> ResponseBuilder:
        """Wait for the run to end and be saved (waiting can be cancelled; the run goes on)."""
        await asyncio.shield(self.task)
        return self.builder

    def _emit(self, payloads: list[Payload]) -> None:
        if self.queue is not None:
            for payload in payloads:
                self.queue.put_nowait(payload)

    async def _run(self) -> None:
        builder = self.builder
        self._emit(builder.start())
        try:
            event = self._first
            while not isinstance(event, Done):
                self._emit(builder.add(event))
                event = await anext(self._events)
            self._emit(builder.finish(event))
            self._on_done(event)
        except asyncio.CancelledError:
            stop = self._stop_error
            self._emit(builder.fail(stop) if stop is not None else builder.cancel())
        except StopAsyncIteration:
            self._emit(builder.fail(EngineError("the engine ended the answer without finishing")))
        except OpenwenError as exc:
            self._emit(builder.fail(exc))
        except Exception:
            log.exception("response %s failed", builder.id)
            self._emit(builder.fail(EngineError("internal error while generating the answer")))
        finally:
            with contextlib.suppress(Exception):
                await self._events.aclose()  # type: ignore[attr-defined]
            try:
                await asyncio.shield(self._save(builder))
            except asyncio.CancelledError:
                pass  # stopped again while saving: the save itself goes on
            except Exception:
                log.exception("could not save response %s", builder.id)
            finally:
                if self.queue is not None:
                    self.queue.put_nowait(None)
