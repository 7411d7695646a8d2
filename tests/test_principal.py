"""Principal: built once from claims; Starlette-compatible; secrets kept out of repr."""

from __future__ import annotations

from asgi_oidc import ANONYMOUS, Principal
from asgi_oidc.principal import claim_at, principal_from_claims

CLAIMS = {
    "iss": "https://idp.example.com",
    "sub": "u-1",
    "upn": "ada@corp.com",
    "name": "Ada",
    "groups": "admins",
    "roles": ["a", "b"],
    "realm_access": {"roles": ["realm-admin"]},
    "https://example.com/claims.tenant": "t1",
}


def build(**kwargs: object) -> Principal:
    settings: dict[str, object] = {
        "email_claim": "upn",
        "groups_claim": "groups",
        "custom_claims": ("roles", "realm_access.roles", "https://example.com/claims.tenant"),
    }
    settings.update(kwargs)
    return principal_from_claims(CLAIMS, **settings)  # type: ignore[arg-type]


def test_email_from_a_configured_claim() -> None:
    assert build().email == "ada@corp.com"


def test_a_single_group_string_becomes_a_tuple() -> None:
    assert build().groups == ("admins",)


def test_custom_claims_keep_lists_and_follow_dotted_paths() -> None:
    claims = build().claims
    assert claims["roles"] == ["a", "b"]
    assert claims["realm_access.roles"] == ["realm-admin"]
    assert claims["https://example.com/claims.tenant"] == "t1"


def test_missing_claims_are_absent_not_none() -> None:
    principal = build(custom_claims=("nope",), groups_claim="nope", email_claim="nope")
    assert principal.claims == {}
    assert principal.groups == ()
    assert principal.email is None


def test_starlette_user_protocol() -> None:
    principal = build()
    assert principal.is_authenticated is True
    assert principal.display_name == "Ada"
    assert principal.identity == "u-1"
    assert ANONYMOUS.is_authenticated is False
    assert ANONYMOUS.display_name == ""


def test_access_token_and_session_id_not_in_repr() -> None:
    principal = build(access_token="eyJ.secret.token", session_id="sid-secret")
    assert "secret" not in repr(principal)


def test_claim_at_prefers_a_literal_dotted_name() -> None:
    assert claim_at({"a.b": 1, "a": {"b": 2}}, "a.b") == 1
    assert claim_at({"a": {"b": 2}}, "a.b") == 2
    assert claim_at({"a": [1]}, "a.b") is None
