"""The fastapi example: see README.md next to this file."""
