"""Shared fixtures live in ``tests/support``; each module there is a plugin."""

pytest_plugins = [
    "tests.support.redis_fixtures",
    "tests.support.idp_fixtures",
    "tests.support.app_fixtures",
]
