"""The web chat app's JSON API (under ``/api``), mounted by :func:`openwen.server.webapp.install`.

- ``accounts``: session state, sign-up, login, logout, password, user administration;
- ``conversations``: list, create, read, rename/pin/settings, delete, search, export, import;
- ``messages``: send / edit / regenerate (answers streamed as server-sent events), stop, switch;
- ``preferences``: the user's ``ui.*`` settings, API keys, the models list;
- ``security``: cookies, CSRF, passwords, single-user mode; ``ratelimit``: login limits;
- ``static``: the page and its assets; ``state``: what the routes share.
"""
