"""Which prefix-cache partition a request belongs to (``ChatRequest.cache_salt``).

The embedded engines reuse the KV cache of any earlier prompt that shares a prefix, and report the
reused tokens as ``cached_tokens``; shared across users, both that figure and the faster first
token would let one user probe another's prompts. Every interface therefore salts its requests
with :func:`cache_salt_for` of the signed-in user (the web app) or the API key's user (the API):
a user's own conversations keep hitting, nobody else's prefix ever serves them. Everything is
salted, system prompts included (a server-configured system prompt could be shared safely, but
one user's copy cannot be told apart from a forged one cheaply, so it is not).
"""

from __future__ import annotations


def cache_salt_for(user_id: int | None) -> str | None:
    """The salt for a user's requests; ``None`` (no user: local use, open API) is one shared
    partition of its own."""
    return None if user_id is None else f"user-{user_id}"
