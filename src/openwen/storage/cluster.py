"""Several openwen instances over one database: instance liveness, answer ownership, cancels.

Each running instance (a process) has a row in ``instances`` with a random id, its host name and
process id, and a heartbeat it refreshes every few seconds. Every answer being written
(``messages.status = 'streaming'``) has a row in ``answer_owners`` naming the instance writing it
(added in the same transaction as the message, see :class:`~openwen.storage.messages.MessageRepo`).

:meth:`InstanceRepo.sweep` marks ``incomplete`` only answers whose writer is gone: its instance's
heartbeat is older than the lease, or its instance row was removed, or (answers written before
this table existed) the answer has no owner and was not saved within the lease. An instance on the
same host whose process no longer exists counts as gone at once, so restarting a single server
recovers its answers immediately. Answers of live instances are never touched.

A stop pressed on one instance for an answer another instance writes sets
``answer_owners.cancel_requested_at``; the writer polls it while it saves (see
:meth:`InstanceRepo.cancel_requested`).

Clocks: heartbeats and cut-offs use each instance's own UTC clock, so hosts must keep their
clocks in step (NTP) to well within the lease.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Integer, String, and_, delete, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from openwen.storage.base import Repository, rowcount, utcnow
from openwen.storage.models import Base, Message

DEFAULT_LEASE_SECONDS = 20.0
PROCESS_STARTED = utcnow()  # (about) when this process started: rows with our pid from before


class Instance(Base):
    """A running openwen process and its heartbeat."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class AnswerOwner(Base):
    """The instance that writes (or wrote) an answer, and a stop requested from elsewhere."""

    __tablename__ = "answer_owners"

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    cancel_requested_at: Mapped[datetime | None]


def this_host() -> str:
    return socket.gethostname()[:255]


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (ours counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class InstanceRepo(Repository):
    """Instance rows, heartbeats, the sweep of dead instances' answers, and cancel flags."""

    def register(self, instance_id: str, *, host: str | None = None, pid: int | None = None
                 ) -> None:
        now = utcnow()
        with self.db.write() as s:
            s.merge(Instance(id=instance_id, host=host or this_host(),
                             pid=os.getpid() if pid is None else pid,
                             started_at=now, heartbeat_at=now))

    def heartbeat(self, instance_id: str) -> bool:
        """Refresh the heartbeat; False (and the row made again) when it had been removed,
        i.e. others took this instance for dead."""
        with self.db.write() as s:
            result = s.execute(update(Instance).where(Instance.id == instance_id)
                               .values(heartbeat_at=utcnow()))
            if rowcount(result):
                return True
        self.register(instance_id)
        return False

    def remove(self, instance_id: str) -> None:
        with self.db.write() as s:
            s.execute(delete(Instance).where(Instance.id == instance_id))

    def live(self, lease: float = DEFAULT_LEASE_SECONDS) -> list[str]:
        """Ids of instances whose heartbeat is within the lease."""
        cutoff = utcnow() - timedelta(seconds=lease)
        with self.db.read() as s:
            return list(s.scalars(select(Instance.id).where(Instance.heartbeat_at >= cutoff)
                                  .order_by(Instance.started_at)))

    def sweep(self, lease: float = DEFAULT_LEASE_SECONDS, *, me: str | None = None) -> int:
        """Mark ``incomplete`` the answers whose writer is gone; returns how many.

        Gone: the owner's heartbeat is older than ``lease`` seconds, its row is missing, or it
        ran on this host under a process id that no longer exists (or is ours, registered
        before this process started: a restarted container). Instance rows long past their
        lease are removed."""
        now = utcnow()
        cutoff = now - timedelta(seconds=lease)
        self._forget_dead_local(me)
        owners = select(AnswerOwner.message_id)
        live = select(Instance.id).where(Instance.heartbeat_at >= cutoff)
        dead_owned = select(AnswerOwner.message_id).where(AnswerOwner.instance_id.not_in(live))
        with self.db.write() as s:
            result = s.execute(
                update(Message)
                .where(Message.status == "streaming",
                       or_(Message.id.in_(dead_owned),
                           and_(Message.id.not_in(owners), Message.updated_at < cutoff)))
                .values(status="incomplete", updated_at=now)
                .execution_options(synchronize_session=False)
            )
            s.execute(delete(Instance).where(Instance.heartbeat_at < now - 10 * timedelta(
                seconds=lease)))
            return rowcount(result)

    def _forget_dead_local(self, me: str | None) -> None:
        host, mine = this_host(), os.getpid()
        with self.db.read() as s:
            rows = s.execute(select(Instance.id, Instance.pid, Instance.started_at)
                             .where(Instance.host == host)).all()
        dead = [i for i, pid, started in rows if i != me and (
            (pid == mine and started < PROCESS_STARTED) or (pid != mine and not pid_alive(pid)))]
        if dead:
            with self.db.write() as s:
                s.execute(delete(Instance).where(Instance.id.in_(dead)))

    # -- answers ---------------------------------------------------------------------------

    def owner(self, message_id: int) -> str | None:
        with self.db.read() as s:
            return s.scalar(select(AnswerOwner.instance_id)
                            .where(AnswerOwner.message_id == message_id))

    def request_cancel(self, message_id: int) -> bool:
        """Ask the instance writing answer ``message_id`` to stop it; False when it has no
        owner row (an answer from before instances were recorded)."""
        with self.db.write() as s:
            result = s.execute(update(AnswerOwner).where(AnswerOwner.message_id == message_id)
                               .values(cancel_requested_at=utcnow()))
            return bool(rowcount(result))

    def cancel_requested(self, message_ids: Iterable[int]) -> bool:
        """Whether a stop was requested for any of these answers."""
        ids = list(message_ids)
        if not ids:
            return False
        with self.db.read() as s:
            found = s.scalar(select(AnswerOwner.message_id).where(
                AnswerOwner.message_id.in_(ids), AnswerOwner.cancel_requested_at.is_not(None)
            ).limit(1))
            return found is not None
