"""What the web app's routes share: settings, the store, the persistent chat, login limits."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from openwen.chat.conversations import ConversationChat
from openwen.chat.service import ChatService
from openwen.config import Settings
from openwen.server.app.ratelimit import LoginLimiter
from openwen.storage import Storage, UserRecord

log = logging.getLogger(__name__)

LOCAL_USERNAME = "local"


@dataclass
class WebState:
    """The web app's shared state, kept on ``app.state.webapp``. The store opens (and migrates)
    on first use or at startup, whichever comes first."""

    settings: Settings
    service: ChatService
    save_interval: float = 0.5
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    signup_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _storage: Storage | None = None
    _chat: ConversationChat | None = None
    _local_user: UserRecord | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def storage(self) -> Storage:
        with self._lock:
            if self._storage is None:
                self._storage = Storage.open(self.settings.database)
            return self._storage

    @property
    def chat(self) -> ConversationChat:
        storage = self.storage
        with self._lock:
            if self._chat is None:
                self._chat = ConversationChat(
                    storage, self.service, save_interval=self.save_interval
                )
            return self._chat

    def local_user(self) -> UserRecord:
        """Single-user mode's account: the oldest admin, or a new admin called ``local``."""
        if self._local_user is not None:
            return self._local_user
        users = self.storage.users
        admins = sorted((u for u in users.list_all() if u.is_admin), key=lambda u: u.id)
        user = admins[0] if admins else users.get_by_name(LOCAL_USERNAME)
        if user is None:
            user = users.create(LOCAL_USERNAME, None, is_admin=True)
        self._local_user = user
        return user

    def startup(self) -> None:
        """Open the store and mark answers a killed process left ``streaming`` incomplete."""
        self.chat.recover_interrupted()
        if self.settings.single_user:
            self.local_user()
        self.storage.sessions.purge_expired()

    async def stop_answers(self) -> None:
        """Stop answers in flight (they are saved as incomplete)."""
        if self._chat is not None:
            await self._chat.aclose()

    def close(self) -> None:
        if self._storage is not None:
            self._storage.close()


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.webapp
    return state


State = Annotated[WebState, Depends(web_state)]
