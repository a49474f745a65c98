"""The Anthropic Messages API (``/v1/messages``, ``/v1/messages/count_tokens``): Claude Code's
and every Anthropic SDK app's dialect. A thin folder over the answer path: ``protocol``,
``translate``, ``render``, ``routes``."""
