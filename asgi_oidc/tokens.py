"""JWT validation: ID tokens (OpenID Connect Core 3.1.3.7), bearer access
tokens, and back-channel logout tokens, all through PyJWT.

Every PyJWT failure becomes one of the typed errors in ``asgi_oidc.errors``;
PyJWT's own messages (which can carry attacker-chosen text) are never shown.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import jwt

from .config import OIDCConfig
from .discovery import KeySet
from .errors import (
    DisallowedAlgorithm,
    InvalidAudience,
    InvalidAuthorizedParty,
    InvalidIssuer,
    InvalidNonce,
    InvalidSignature,
    LogoutTokenError,
    MalformedToken,
    MissingClaim,
    TokenExpired,
    TokenNotYetValid,
    TokenValidationError,
    UnknownKey,
    UntrustedAudience,
)

__all__ = ["BACKCHANNEL_LOGOUT_EVENT", "TokenValidator"]

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
_REQUIRED = ("iss", "sub", "aud", "exp", "iat")
_SYMMETRIC_PREFIX = "HS"
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
# Claims only ID tokens or logout tokens carry.
_NOT_ACCESS_TOKEN = frozenset({"nonce", "at_hash", "c_hash", "events"})

JwksUri = Callable[[], Awaitable[str]]


class TokenValidator:
    """Validates the JWTs a provider issues, against its key set."""

    def __init__(self, config: OIDCConfig, keys: KeySet, jwks_uri: JwksUri) -> None:
        self._issuer = config.issuer
        self._client_id = config.client_id
        self._secret = (config.client_secret or "").encode()
        self._algorithms = tuple(config.id_token_algorithms)
        self._trusted = frozenset(config.trusted_audiences) | {config.client_id}
        self._api_audiences = tuple(config.audience) or (config.client_id,)
        self._leeway = config.leeway
        self._keys = keys
        self._jwks_uri = jwks_uri

    async def validate_id_token(self, token: str, *, nonce: str | None) -> dict[str, Any]:
        """Validate an ID token; ``nonce`` is the one sent at login (``None``
        for a refreshed ID token, which carries none or the original)."""
        claims = await self._decode(token, require=_REQUIRED)
        self._check_client_audience(claims)
        if nonce is not None:
            sent = claims.get("nonce")
            if not isinstance(sent, str) or not hmac.compare_digest(sent, nonce):
                raise InvalidNonce("nonce differs")
        return claims

    async def validate_access_token(self, token: str) -> dict[str, Any]:
        """Validate a JWT access token presented as ``Authorization: Bearer``.

        A token typed ``at+jwt`` (RFC 9068) is accepted for any configured
        audience. An untyped one only for a configured ``audience`` other than
        the client id: an ID token's audience is the client, so without that
        an ID token (or a logout token) would pass as an API credential.
        """
        claims = await self._decode(token, require=_REQUIRED)
        audiences = _audiences(claims)
        if not any(a in audiences for a in self._api_audiences):
            raise InvalidAudience("the token is not for this API")
        typ = jwt.get_unverified_header(token).get("typ")
        typed = isinstance(typ, str) and typ.lower() in _ACCESS_TOKEN_TYPES
        api_only = any(a in audiences and a != self._client_id for a in self._api_audiences)
        if not typed and (_NOT_ACCESS_TOKEN & claims.keys() or not api_only):
            raise MalformedToken("not an access token")
        return claims

    async def validate_logout_token(self, token: str) -> dict[str, Any]:
        """Validate a Back-Channel Logout 1.0 token (section 2.6)."""
        try:
            claims = await self._decode(token, require=("iss", "aud", "iat", "jti"))
        except TokenValidationError as exc:
            raise LogoutTokenError(f"logout token: {type(exc).__name__}") from None
        try:
            self._check_client_audience(claims)
        except TokenValidationError as exc:
            raise LogoutTokenError(f"logout token: {type(exc).__name__}") from None
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(
            events.get(BACKCHANNEL_LOGOUT_EVENT), dict
        ):
            raise LogoutTokenError("logout token: no back-channel logout event")
        if "nonce" in claims:
            raise LogoutTokenError("logout token: nonce present")
        sub, sid = claims.get("sub"), claims.get("sid")
        if not (isinstance(sub, str) and sub) and not (isinstance(sid, str) and sid):
            raise LogoutTokenError("logout token: neither sub nor sid")
        if not isinstance(claims.get("jti"), str):
            raise LogoutTokenError("logout token: jti is not a string")
        return claims

    def _check_client_audience(self, claims: dict[str, Any]) -> None:
        audiences = _audiences(claims)
        if self._client_id not in audiences:
            raise InvalidAudience("the client is not an audience")
        if any(a not in self._trusted for a in audiences):
            raise UntrustedAudience("an audience is not trusted")
        azp = claims.get("azp")
        if azp is not None and azp != self._client_id:
            raise InvalidAuthorizedParty("azp is not the client")
        if len(audiences) > 1 and azp is None:
            # Core 3.1.3.7 (4): several audiences call for an azp.
            raise InvalidAuthorizedParty("several audiences and no azp")

    async def _decode(self, token: str, *, require: Sequence[str]) -> dict[str, Any]:
        if not isinstance(token, str) or token.count(".") != 2 or len(token) > 16_384:
            raise MalformedToken("not a compact JWS")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.exceptions.PyJWTError:
            raise MalformedToken("unreadable header") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise DisallowedAlgorithm("algorithm not allowed")
        key: jwt.PyJWK | bytes
        if alg.startswith(_SYMMETRIC_PREFIX):
            # Symmetric ID tokens are keyed with the client secret (Core 10.1),
            # never with anything from the key set.
            key = self._secret
        else:
            kid = header.get("kid")
            if kid is not None and not isinstance(kid, str):
                raise UnknownKey("kid is not a string")
            key = await self._keys.key_for(await self._jwks_uri(), kid, alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": list(require), "verify_aud": False, "verify_sub": False},
            )
        except jwt.exceptions.ExpiredSignatureError:
            raise TokenExpired("exp is past") from None
        except jwt.exceptions.ImmatureSignatureError:
            raise TokenNotYetValid("iat or nbf in the future") from None
        except jwt.exceptions.MissingRequiredClaimError as exc:
            raise MissingClaim(exc.claim) from None
        except jwt.exceptions.InvalidIssuerError:
            raise InvalidIssuer("iss differs") from None
        except jwt.exceptions.InvalidSignatureError:
            raise InvalidSignature("signature does not verify") from None
        except (jwt.exceptions.InvalidAlgorithmError, jwt.exceptions.InvalidKeyError):
            raise DisallowedAlgorithm("algorithm does not fit the key") from None
        except jwt.exceptions.PyJWTError as exc:
            raise MalformedToken(type(exc).__name__) from None
        if "sub" in require and not (isinstance(claims.get("sub"), str) and claims["sub"]):
            raise MissingClaim("sub")
        return claims


def _audiences(claims: dict[str, Any]) -> tuple[str, ...]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return tuple(aud)
    raise InvalidAudience("aud is not a string or list of strings")
