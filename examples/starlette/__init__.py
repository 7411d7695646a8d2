"""The starlette example: see README.md next to this file."""
