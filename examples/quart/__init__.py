"""The quart example: see README.md next to this file."""
