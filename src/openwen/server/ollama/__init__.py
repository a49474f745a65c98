"""The Ollama API (``/api/chat``, ``/api/generate``, ``/api/tags``, ...): the dialect of the many
editors, note apps and chat front ends that only know Ollama. A thin folder over the answer path:
``protocol`` (request models), ``translate`` (into :class:`~openwen.requests.ChatRequest`),
``render`` (events out as Ollama's NDJSON objects) and ``routes``."""
