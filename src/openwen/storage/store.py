"""``Storage``: one object holding the database and every repository."""

from __future__ import annotations

from sqlalchemy.engine import URL

from openwen.storage.cluster import InstanceRepo
from openwen.storage.confirmations import ConfirmationRepo
from openwen.storage.conversations import ConversationRepo
from openwen.storage.credentials import ApiKeyRepo, LoginSessionRepo
from openwen.storage.db import Database
from openwen.storage.feedback import FeedbackRepo
from openwen.storage.messages import MessageRepo
from openwen.storage.ratelimits import RateLimitRepo
from openwen.storage.responses import ResponseRepo
from openwen.storage.search import SearchRepo
from openwen.storage.transfer import TransferRepo
from openwen.storage.users import UserRepo, UserSettingsRepo


class Storage:
    """The repositories over one database. Each repository method is its own transaction.

    ``Storage.open(url)`` also applies pending migrations, which is what an app wants at start.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.users = UserRepo(db)
        self.settings = UserSettingsRepo(db)
        self.api_keys = ApiKeyRepo(db)
        self.sessions = LoginSessionRepo(db)
        self.conversations = ConversationRepo(db)
        self.messages = MessageRepo(db)
        self.search = SearchRepo(db)
        self.transfer = TransferRepo(db)
        self.instances = InstanceRepo(db)
        self.rate_limits = RateLimitRepo(db)
        self.responses = ResponseRepo(db)
        self.confirmations = ConfirmationRepo(db)
        self.feedback = FeedbackRepo(db)

    @property
    def instance_id(self) -> str | None:
        """The running instance that owns the answers this store starts (None: none)."""
        return self.messages.instance_id

    @instance_id.setter
    def instance_id(self, value: str | None) -> None:
        self.messages.instance_id = value

    @classmethod
    def open(cls, url: str | URL, *, upgrade: bool = True) -> Storage:
        db = Database(url)
        if upgrade:
            db.upgrade()
        return cls(db)

    def close(self) -> None:
        self.db.dispose()
