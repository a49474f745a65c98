"""Persistent storage: SQLAlchemy models, Alembic migrations and per-user repositories.

    storage = Storage.open(settings.database)      # SQLite file or PostgreSQL; migrates
    user = storage.users.create("alice", password_hash)
    chat = storage.conversations.create(user.id, "Trip plans")
    question = storage.messages.add(user.id, chat.id, parent_id=None, role="user", content="Hi")

Every user-facing method takes the acting ``user_id``; another user's ids behave as missing ones.
"""

from openwen.storage import (  # noqa: F401  (tables: instances, rate limits, ...)
    cluster,
    confirmations,
    feedback,  # noqa: F401  (thumbs and edited answers)
    knowledge_models,  # noqa: F401  (documents/memory tables)
    ratelimits,
    response_models,  # noqa: F401  (Responses API table)
)
from openwen.storage.db import Database
from openwen.storage.records import (
    ApiKeyRecord,
    ConversationRecord,
    LoginSessionRecord,
    MessageRecord,
    NewApiKey,
    NewLoginSession,
    SearchHit,
    ThreadEntry,
    UserRecord,
)
from openwen.storage.store import Storage

__all__ = [
    "ApiKeyRecord",
    "ConversationRecord",
    "Database",
    "LoginSessionRecord",
    "MessageRecord",
    "NewApiKey",
    "NewLoginSession",
    "SearchHit",
    "Storage",
    "ThreadEntry",
    "UserRecord",
]
