"""Open redirects: the 835 payloads mod_auth_openidc replays in its own tests
(tests/data/open-redirect-payloads.txt) never leave the app's origin."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from asgi_oidc.redirects import safe_return_path

APP = "https://app.example.com"
CORPUS = Path(__file__).parent / "data" / "open-redirect-payloads.txt"


def payloads() -> list[str]:
    lines = CORPUS.read_text(encoding="utf-8").split("\n")
    # The first line says where the corpus comes from; the rest are payloads.
    return [line for line in lines[1:] if line]


def browser_host(location: str) -> str | None:
    """The host a browser would go to for this Location, WHATWG-style: tabs and
    newlines dropped, backslashes read as slashes, resolved against the app."""
    cleaned = location.replace("\t", "").replace("\n", "").replace("\r", "").strip(" \x00")
    cleaned = cleaned.replace("\\", "/")
    return urlsplit(urljoin(APP + "/start", cleaned)).hostname


def test_the_corpus_is_all_there() -> None:
    assert len(payloads()) == 835


@pytest.mark.parametrize("payload", payloads())
def test_payload_stays_on_the_app(payload: str) -> None:
    target = safe_return_path(payload)
    assert target.startswith("/")
    assert not target.startswith(("//", "/\\"))
    assert browser_host(target) == "app.example.com"
    assert browser_host(APP + target) == "app.example.com"


@pytest.mark.parametrize(
    "attempt",
    [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "/%2F%2Fevil.example",
        "/%2f/evil.example",
        "/%5Cevil.example",
        "/%252F%252Fevil.example",
        "/%09/evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "",
    ],
)
def test_known_attempts_become_the_root(attempt: str) -> None:
    assert safe_return_path(attempt) == "/"


@pytest.mark.parametrize(
    "path", ["/", "/reports", "/reports?page=2&sort=name", "/a%20b", "/x/y/z#frag"]
)
def test_plain_paths_are_kept(path: str) -> None:
    assert safe_return_path(path) == path
