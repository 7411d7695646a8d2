"""Every way the flow can fail, as types.

Each exception carries a fixed, public ``message`` (safe to show to a client)
and an HTTP ``status_code``; details that may hold attacker-supplied text or
secrets live in attributes and are logged, never sent. ``asgi_oidc.responses``
is the one place that turns an exception into a response.

The tree::

    OIDCError
    ├── ConfigError                      bad configuration, at construction
    ├── AuthenticationRequired           401: no valid session or bearer token
    │   └── SessionEnded                 401: refresh refused, the session is gone
    ├── AccessDenied                     403: a rule denied the principal
    ├── InvalidPath                      400: a path that cannot be matched safely
    ├── StoreUnavailable                 503: Redis (or the store) unreachable
    ├── ProviderError                    502/503: the identity provider failed
    │   ├── ProviderUnavailable          503: unreachable or timed out
    │   ├── DiscoveryError               502: metadata unusable
    │   │   └── IssuerMismatch           502: metadata names another issuer
    │   ├── KeySetError                  502: JWKS unusable
    │   ├── TokenEndpointError           502: token endpoint refused or garbled
    │   └── UserInfoError                502: UserInfo unusable
    ├── CallbackError                    400: a callback that cannot be accepted
    │   ├── ProviderReturnedError        400/403: the provider sent ``error=``
    │   ├── StateMissing                 400: no ``state`` parameter
    │   ├── StateUnknown                 400: unknown, expired or replayed
    │   ├── StateBrowserMismatch         400: began in another browser
    │   ├── IssuerParameterMismatch      400: RFC 9207 ``iss`` is wrong/missing
    │   └── CodeMissing                  400: no ``code`` parameter
    ├── TokenValidationError             401: a JWT failed validation
    │   ├── InvalidSignature
    │   ├── DisallowedAlgorithm
    │   ├── UnknownKey
    │   ├── InvalidIssuer
    │   ├── InvalidAudience
    │   ├── UntrustedAudience
    │   ├── InvalidAuthorizedParty
    │   ├── TokenExpired
    │   ├── TokenNotYetValid
    │   ├── MissingClaim                 ``.claim`` names it
    │   ├── InvalidNonce
    │   ├── SubjectMismatch              UserInfo/refresh ``sub`` differs
    │   └── MalformedToken
    ├── LogoutTokenError                 400: back-channel logout token refused
    │   └── LogoutTokenReplayed
    ├── RefreshRefused                   the provider refused a refresh
    └── MiddlewareMissing                a guard used without OIDCMiddleware
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AuthenticationRequired",
    "CallbackError",
    "CodeMissing",
    "ConfigError",
    "DisallowedAlgorithm",
    "DiscoveryError",
    "InvalidAudience",
    "InvalidAuthorizedParty",
    "InvalidIssuer",
    "InvalidNonce",
    "InvalidPath",
    "InvalidSignature",
    "IssuerMismatch",
    "IssuerParameterMismatch",
    "KeySetError",
    "LogoutTokenError",
    "LogoutTokenReplayed",
    "MalformedToken",
    "MiddlewareMissing",
    "MissingClaim",
    "OIDCError",
    "ProviderError",
    "ProviderReturnedError",
    "ProviderUnavailable",
    "RefreshRefused",
    "SessionEnded",
    "StateBrowserMismatch",
    "StateMissing",
    "StateUnknown",
    "StoreUnavailable",
    "SubjectMismatch",
    "TokenEndpointError",
    "TokenExpired",
    "TokenNotYetValid",
    "TokenValidationError",
    "UnknownKey",
    "UntrustedAudience",
    "UserInfoError",
]


class OIDCError(Exception):
    """Base of every asgi_oidc error.

    ``message`` is fixed per class and safe to show; ``detail`` is for logs
    only and may hold text an attacker chose.
    """

    status_code: int = 500
    error: str = "server_error"
    message: str = "The sign-in service failed."

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.message)
        self.detail = detail


class ConfigError(OIDCError, ValueError):
    """A configuration value is missing or wrong; ``field`` names it."""

    error = "config_error"
    message = "The middleware is misconfigured."

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class AuthenticationRequired(OIDCError):
    """The request has no valid session and no valid bearer token."""

    status_code = 401
    error = "unauthorized"
    message = "Sign-in is required."


class SessionEnded(AuthenticationRequired):
    """The session existed but ended (refresh refused, revoked)."""

    error = "session_ended"
    message = "Your session has ended; please sign in again."


class AccessDenied(OIDCError):
    """A claim rule denied the signed-in principal."""

    status_code = 403
    error = "forbidden"
    message = "You do not have access to this page."

    def __init__(self, detail: str = "", *, rule_path: str = "") -> None:
        super().__init__(detail)
        self.rule_path = rule_path


class InvalidPath(OIDCError):
    """The request path holds control characters or cannot be normalised,
    so no rule could be matched against it safely."""

    status_code = 400
    error = "invalid_path"
    message = "The requested address is not valid."


class StoreUnavailable(OIDCError):
    """The session store (Redis) cannot be reached."""

    status_code = 503
    error = "store_unavailable"
    message = "The session service is unavailable; please try again shortly."


class ProviderError(OIDCError):
    """The identity provider failed or answered something unusable."""

    status_code = 502
    error = "provider_error"
    message = "The identity provider gave an unusable answer."


class ProviderUnavailable(ProviderError):
    """The identity provider cannot be reached or timed out."""

    status_code = 503
    error = "provider_unavailable"
    message = "The identity provider is unavailable; please try again shortly."


class DiscoveryError(ProviderError):
    """The provider metadata cannot be used."""

    error = "discovery_error"
    message = "The identity provider's metadata is unusable."


class IssuerMismatch(DiscoveryError):
    """Discovery metadata names an issuer other than the configured one."""

    error = "issuer_mismatch"
    message = "The identity provider's metadata names a different issuer."


class KeySetError(ProviderError):
    """The provider's JSON Web Key Set cannot be used."""

    error = "jwks_error"
    message = "The identity provider's signing keys are unusable."


class TokenEndpointError(ProviderError):
    """The token endpoint failed or answered something unusable."""

    error = "token_endpoint_error"
    message = "The identity provider did not issue tokens."


class UserInfoError(ProviderError):
    """The UserInfo endpoint failed or answered something unusable."""

    error = "userinfo_error"
    message = "The identity provider's user information is unusable."


class CallbackError(OIDCError):
    """A redirect back from the provider that cannot be accepted."""

    status_code = 400
    error = "invalid_callback"
    message = "The sign-in response could not be accepted. Please start again."


class ProviderReturnedError(CallbackError):
    """The provider redirected back with an ``error`` parameter."""

    error = "provider_returned_error"
    message = "The identity provider did not sign you in."

    def __init__(self, provider_error: str, description: str = "") -> None:
        super().__init__(f"provider error {provider_error!r}: {description!r}")
        self.provider_error = provider_error
        self.description = description
        if provider_error == "access_denied":
            self.status_code = 403


class StateMissing(CallbackError):
    """The callback has no ``state`` parameter."""

    error = "state_missing"


class StateUnknown(CallbackError):
    """The state is unknown, expired or was already used."""

    error = "state_unknown"
    message = "This sign-in link has expired or was already used. Please start again."


class StateBrowserMismatch(CallbackError):
    """The state was issued to another browser."""

    error = "state_browser_mismatch"
    message = "This sign-in was started in another browser. Please start again."


class IssuerParameterMismatch(CallbackError):
    """The RFC 9207 ``iss`` parameter is wrong, or missing when required."""

    error = "issuer_parameter_mismatch"


class CodeMissing(CallbackError):
    """The callback has neither ``code`` nor ``error``."""

    error = "code_missing"


class TokenValidationError(OIDCError):
    """A JWT (ID token, bearer token) failed validation."""

    status_code = 401
    error = "invalid_token"
    message = "The token could not be validated."


class InvalidSignature(TokenValidationError):
    """The signature does not verify against the key set."""


class DisallowedAlgorithm(TokenValidationError):
    """The token is signed with an algorithm outside the allowlist."""


class UnknownKey(TokenValidationError):
    """No key in the key set matches the token's ``kid``."""


class InvalidIssuer(TokenValidationError):
    """``iss`` is not the configured issuer."""


class InvalidAudience(TokenValidationError):
    """``aud`` does not contain the client (or the configured audience)."""


class UntrustedAudience(TokenValidationError):
    """``aud`` holds an audience that is not trusted."""


class InvalidAuthorizedParty(TokenValidationError):
    """``azp`` is present and is not the client."""


class TokenExpired(TokenValidationError):
    """``exp`` is in the past."""

    error = "token_expired"


class TokenNotYetValid(TokenValidationError):
    """``iat`` or ``nbf`` is in the future."""


class MissingClaim(TokenValidationError):
    """A required claim is absent; ``claim`` names it."""

    def __init__(self, claim: str) -> None:
        super().__init__(f"missing claim {claim!r}")
        self.claim = claim


class InvalidNonce(TokenValidationError):
    """``nonce`` does not match the one sent with the authorization request."""


class SubjectMismatch(TokenValidationError):
    """A later answer (UserInfo, refresh) names another subject or issuer."""


class MalformedToken(TokenValidationError):
    """The token is not a well-formed JWT."""


class LogoutTokenError(OIDCError):
    """A back-channel logout token was refused."""

    status_code = 400
    error = "invalid_request"
    message = "The logout token was refused."


class LogoutTokenReplayed(LogoutTokenError):
    """A logout token with an already-seen ``jti``."""


class RefreshRefused(OIDCError):
    """The provider refused to refresh the tokens (``invalid_grant``)."""

    status_code = 401
    error = "refresh_refused"
    message = "Your session has ended; please sign in again."


class MiddlewareMissing(OIDCError, RuntimeError):
    """A per-route guard ran on a request that OIDCMiddleware did not see."""

    error = "middleware_missing"
    message = "OIDCMiddleware is not installed in front of this route."
