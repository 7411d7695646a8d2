"""Cookie parsing and signing."""

from __future__ import annotations

from asgi_oidc.cookies import CookieSigner, parse_cookies, set_cookie


def test_parse_ignores_malformed_neighbours() -> None:
    header = b'_session=abc; broken; __Host-asgi_oidc=v.sig; x="quoted"; =nothing'
    cookies = parse_cookies(header)
    assert cookies["__Host-asgi_oidc"] == "v.sig"
    assert cookies["x"] == "quoted"
    assert "broken" not in cookies


def test_first_cookie_of_a_name_wins() -> None:
    assert parse_cookies("a=1; a=2")["a"] == "1"


def test_signer_round_trip_and_tamper() -> None:
    signer = CookieSigner("secret-0123456789abcdef", "session")
    signed = signer.sign("abc")
    assert signer.unsign(signed) == "abc"
    assert signer.unsign(signed[:-1] + ("A" if signed[-1] != "A" else "B")) is None
    assert signer.unsign("abc") is None
    assert signer.unsign("x" * 1000) is None


def test_purposes_do_not_mix() -> None:
    session = CookieSigner("secret-0123456789abcdef", "session")
    state = CookieSigner("secret-0123456789abcdef", "state")
    assert state.unsign(session.sign("abc")) is None


def test_set_cookie_attributes() -> None:
    name, value = set_cookie("__Host-x", "v", max_age=60, secure=True)
    text = value.decode()
    assert name == b"set-cookie"
    assert text.startswith("__Host-x=v;")
    for part in ("Path=/", "Max-Age=60", "HttpOnly", "Secure", "SameSite=Lax"):
        assert part in text
    deleted = set_cookie("x", "", max_age=0, secure=False)[1].decode()
    assert "Max-Age=0" in deleted and "Secure" not in deleted
