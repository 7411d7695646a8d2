"""The signed-in user as the app sees it: ``scope["user"]``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ANONYMOUS",
    "AnonymousUser",
    "AuthCredentials",
    "Principal",
    "claim_at",
    "principal_from_claims",
]


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """Return the claim at ``path``; a dotted path walks nested objects.

    A name that exists as a literal key wins over the dotted walk, since some
    providers use URLs with dots as claim names.
    """
    if path in claims:
        return claims[path]
    if "." not in path:
        return None
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _as_groups(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        # A single group arrives as a string from some providers.
        return (value,) if value else ()
    if isinstance(value, Sequence):
        return tuple(str(item) for item in value if isinstance(item, (str, int)))
    return ()


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in user: what the ID token (and UserInfo) said about them.

    Works as Starlette's ``request.user`` (``is_authenticated``,
    ``display_name``). ``access_token`` is set only with
    ``pass_access_token`` and never appears in ``repr``.
    """

    sub: str
    issuer: str
    email: str | None = None
    groups: tuple[str, ...] = ()
    claims: Mapping[str, Any] = field(default_factory=dict)
    session_id: str | None = field(default=None, repr=False, compare=False)
    access_token: str | None = field(default=None, repr=False, compare=False)
    #: Every claim the provider asserted, for rules on claims not carried over.
    all_claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_authenticated(self) -> bool:
        """Always ``True``: a Principal exists only for a valid session or token."""
        return True

    @property
    def display_name(self) -> str:
        """The ``name`` claim, else the email, else the subject."""
        name = self.all_claims.get("name")
        if isinstance(name, str) and name:
            return name
        return self.email or self.sub

    @property
    def identity(self) -> str:
        """The subject: Starlette's ``BaseUser.identity``."""
        return self.sub


@dataclass(frozen=True, slots=True)
class AnonymousUser:
    """``scope["user"]`` on a public path when nobody is signed in."""

    @property
    def is_authenticated(self) -> bool:
        """Always ``False``."""
        return False

    @property
    def display_name(self) -> str:
        """Always empty."""
        return ""

    @property
    def identity(self) -> str:
        """Always empty."""
        return ""


#: The one anonymous user.
ANONYMOUS = AnonymousUser()


@dataclass(frozen=True, slots=True)
class AuthCredentials:
    """``scope["auth"]``: the principal's groups as Starlette scopes."""

    scopes: tuple[str, ...] = ()


def principal_from_claims(
    claims: Mapping[str, Any],
    *,
    email_claim: str,
    groups_claim: str,
    custom_claims: Sequence[str],
    session_id: str | None = None,
    access_token: str | None = None,
) -> Principal:
    """Build a :class:`Principal` from validated claims."""
    email = claim_at(claims, email_claim)
    carried: dict[str, Any] = {}
    for name in custom_claims:
        value = claim_at(claims, name)
        if value is not None:
            carried[name] = list(value) if isinstance(value, (list, tuple)) else value
    return Principal(
        sub=str(claims["sub"]),
        issuer=str(claims.get("iss", "")),
        email=email if isinstance(email, str) else None,
        groups=_as_groups(claim_at(claims, groups_claim)),
        claims=carried,
        session_id=session_id,
        access_token=access_token,
        all_claims=dict(claims),
    )
