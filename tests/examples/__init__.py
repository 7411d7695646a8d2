"""The examples under their real servers, and ``scripts/demo``."""
