"""The OpenAI Responses API dialect (``/v1/responses``): stateful, stored in the database.

- ``protocol.py``: request models (lenient: unknown fields ignored and logged);
- ``translate.py``: input items (and the ``previous_response_id`` chain) -> ``ChatRequest``;
- ``render.py``: the answer path's events -> output items, streaming events, the Response;
- ``runs.py``: a response generating in its own task (background mode, cancel);
- ``state.py``: the store (migration ``0200_responses``), runs in progress, retention;
- ``routes.py``: the endpoints.
"""
