"""What the web app's routes share: settings, the store, the persistent chat, login limits, the
tools, and the knowledge base (documents and memory)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from openwen.chat.conversations import ConversationChat
from openwen.chat.service import ChatService
from openwen.config import Settings
from openwen.errors import OverloadedError
from openwen.models.downloads import Downloads
from openwen.models.profiles import Capabilities, Profile, profile_for
from openwen.server.app.liveness import Liveness
from openwen.server.app.ratelimit import HashGate, LoginLimiter
from openwen.storage import Storage, UserRecord
from openwen.tools.registry import ToolRegistry
from openwen.tools.shared import SharedTools, workspace_name
from openwen.tools.workspaces import delete_workspace, migrate_named_workspaces

if TYPE_CHECKING:
    from openwen.knowledge import KnowledgeBase, TextEmbedder
    from openwen.knowledge.embeddings import EmbeddingService

log = logging.getLogger(__name__)

LOCAL_USERNAME = "local"


@dataclass
class WebState:
    """The web app's shared state, kept on ``app.state.webapp``. The store opens (and migrates)
    on first use or at startup, whichever comes first."""

    settings: Settings
    service: ChatService
    save_interval: float = 0.5
    limiter: LoginLimiter | None = None  # None: counted in the store, shared by instances
    instance_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    liveness: Liveness | None = None
    signup_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    hashing: HashGate = field(default_factory=HashGate)  # argon2 work at once
    tools: SharedTools | None = None  # None: answers never use tools
    own_tools: bool = False  # started and closed by the web app (no app-wide tools)
    embedder: TextEmbedder | None = None  # given: used for documents and memory as it is
    knowledge: KnowledgeBase | None = None  # made at startup
    _own_embeddings: EmbeddingService | None = None
    _storage: Storage | None = None
    _chat: ConversationChat | None = None
    _local_user: UserRecord | None = None
    _downloads: Downloads | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def storage(self) -> Storage:
        with self._lock:
            if self._storage is None:
                self._storage = Storage.open(self.settings.database)
                self._storage.instance_id = self.instance_id
            return self._storage

    @property
    def chat(self) -> ConversationChat:
        storage = self.storage
        with self._lock:
            if self._chat is None:
                self._chat = ConversationChat(
                    storage,
                    self.service,
                    save_interval=self.save_interval,
                    tools=self.user_tools if self.tools is not None else None,
                    knowledge=self.knowledge,
                    profiles=self.profile_for,
                )
            return self._chat

    def user_tools(self, user_id: int) -> ToolRegistry:
        """The tools of one user's answers (blocking: reads the user)."""
        assert self.tools is not None
        user = self.storage.users.get(user_id)
        return self.tools.registry(workspace_name(user.username, user.id), user)

    def profile_for(self, user_id: int, model: str) -> tuple[Profile, Capabilities]:
        """A model's profile for one user: built-in, the admin's edits, the user's overrides
        (blocking: reads the store)."""
        server, user = profile_layers(self.storage, user_id)
        return profile_for(model, self.settings, server=server, user=user)

    @property
    def downloads(self) -> Downloads:
        with self._lock:
            if self._downloads is None:
                self._downloads = Downloads(self.settings)
            return self._downloads

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

    def login_limiter(self) -> LoginLimiter:
        """Login limits, counted in the store so every instance sees the same counts."""
        if self.limiter is None:
            self.limiter = LoginLimiter(store=self.storage.rate_limits, clock=time.time)
        return self.limiter

    def startup(self) -> None:
        """Open the store, register this instance and mark ``incomplete`` the answers that
        instances which are gone left ``streaming`` (see :mod:`openwen.server.app.liveness`), and
        move workspaces of the old name-keyed layout to id-keyed folders (once)."""
        chat, lease = self.chat, self.settings.instance_lease
        self.liveness = Liveness(self.storage, self.instance_id, lease,
                                 lambda: chat.recover_interrupted(lease))
        self.liveness.register()
        if self.settings.single_user:
            self.local_user()
        self.storage.sessions.purge_expired()
        try:
            migrate_named_workspaces(self.settings, ((u.id, u.username)
                                                     for u in self.storage.users.list_all()))
        except OSError:
            log.exception("workspaces of the old layout could not be moved")

    def delete_user(self, user_id: int) -> None:
        """Delete an account: by cascade its keys, sessions, settings, conversations,
        documents and memories; then its workspace folder (blocking)."""
        self.storage.users.delete(user_id)
        if self.knowledge is not None:
            self.knowledge.cache.clear()  # ids may be reused (SQLite): no stale matrices
        delete_workspace(self.settings, user_id)

    async def start_services(self, app_state: Any) -> None:
        """Start the MCP servers (unless the app did) and make the knowledge base over the
        app's embedding service (or the embedder given)."""
        if self.liveness is not None:
            self.liveness.start()
        if self.tools is not None and self.own_tools:
            await self.tools.start()
        if self.knowledge is None:
            self.knowledge = self._make_knowledge(app_state)
        self.chat.knowledge = self.knowledge

    def _make_knowledge(self, app_state: Any) -> KnowledgeBase:
        from openwen.knowledge import KnowledgeBase, KnowledgeSettings, ServiceEmbedder

        embedder = self.embedder
        if embedder is None:
            service = getattr(app_state, "embeddings", None)
            if service is None:
                from openwen.knowledge.embeddings import EmbeddingService

                service = self._own_embeddings = EmbeddingService(self.settings)
            embedder = ServiceEmbedder(service, asyncio.get_running_loop())
        settings = KnowledgeSettings.from_settings(self.settings)
        return KnowledgeBase(self.storage.db, embedder, settings)

    async def stop_services(self) -> None:
        if self.tools is not None and self.own_tools:
            await self.tools.aclose()
        own, self._own_embeddings = self._own_embeddings, None
        if own is not None:
            await own.aclose()

    def knowledge_base(self) -> KnowledgeBase:
        if self.knowledge is None:
            raise OverloadedError("documents and memory are not ready yet; retry shortly")
        return self.knowledge

    async def stop_answers(self) -> None:
        """Stop answers in flight (they are saved as incomplete) and downloads."""
        if self._downloads is not None:
            self._downloads.cancel_all()
        if self._chat is not None:
            await self._chat.aclose()

    async def stop_liveness(self) -> None:
        """After the answers are saved: stop the heartbeat and remove this instance."""
        if self.liveness is not None:
            await self.liveness.aclose()

    def close(self) -> None:
        if self._storage is not None:
            self._storage.close()


SERVER_PROFILES = "model_profiles"  # instance setting: the admin's edits, by model name
USER_PROFILES = "models.profiles"  # user setting: the user's overrides, by model name


def profile_layers(storage: Storage, user_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The admin's and the user's stored profile layers (blocking)."""
    from openwen.storage.instance import InstanceSettingsRepo

    server = InstanceSettingsRepo(storage.db).get(SERVER_PROFILES)
    user = storage.settings.get(user_id, USER_PROFILES, None)
    return (server if isinstance(server, dict) else {}), (user if isinstance(user, dict) else {})


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.webapp
    return state


State = Annotated[WebState, Depends(web_state)]
