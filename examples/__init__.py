"""Runnable examples, each a small app to copy: ``examples.fastapi``,
``examples.starlette``, ``examples.quart``; ``examples.demo`` runs one of them
behind the development OpenID Provider (``scripts/demo``).

Run them from the repository root (``uvicorn examples.starlette.app:app``):
started from inside ``examples/``, the folders ``fastapi``, ``starlette`` and
``quart`` would hide the real packages of those names.
"""
