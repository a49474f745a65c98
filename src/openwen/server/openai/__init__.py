"""The OpenAI dialect: Chat Completions, legacy Completions, models and embeddings.

One folder per API dialect under ``openwen.server``; this one is laid out as every dialect is:

- ``protocol.py``: pydantic request and response models, field order as in OpenAI's reference,
  each extension marked; ``base.py`` holds the lenient base model (unknown fields ignored and
  logged) and turns validation errors into a 400 naming the ``param``;
- translation in: each request model's ``to_chat_request()`` builds the shared
  :class:`~openwen.requests.ChatRequest` (in one place);
- ``render.py``: the answer path's events out, as stream chunks and whole response objects;
- routes: ``chat.py``, ``completions.py``, ``models.py``, ``embeddings.py`` (and
  ``server_tools.py``, the opt-in extension that lets the server run its own tools), each a thin
  call of :func:`openwen.server.generating.generate`.

Generation, tool calling, grammars, errors and streaming are not re-implemented here: see
``docs/answer-path.md``.
"""
