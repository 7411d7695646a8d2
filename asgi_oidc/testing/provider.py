"""A development OpenID Provider: a pure ASGI app that issues real signed tokens.

It speaks enough of OpenID Connect to drive a relying party end to end
(discovery, JWKS, authorization code with PKCE, refresh, UserInfo,
RP-initiated logout) and exposes knobs that make it misbehave on purpose, so
tests can check that the relying party refuses what it must refuse.

It keeps everything in memory and trusts anyone who can reach it: it is for
development and tests only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import copy
import dataclasses
import enum
import hashlib
import hmac
import html
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, RSAAlgorithm

__all__ = ["REMOVE", "DevClient", "DevProvider", "DevUser"]

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]


class _Remove(enum.Enum):
    REMOVE = "REMOVE"

    def __repr__(self) -> str:
        return "REMOVE"


REMOVE: Final = _Remove.REMOVE
"""Sentinel for the override dicts and ``**extra`` claims: delete this key."""

_BACKCHANNEL_EVENT: Final = "http://schemas.openid.net/event/backchannel-logout"
_RSA_ALGS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGS: Final = ("ES256",)
_HMAC_ALGS: Final = ("HS256", "HS384", "HS512")
_CODE_TTL: Final = 60
_LOGOUT_TOKEN_TTL: Final = 120
_MAX_BODY: Final = 64 * 1024
# RFC 7636 §4.1 and §4.2: 43-128 unreserved characters; an S256 challenge is 43.
_VERIFIER_RE: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_CHALLENGE_RE: Final = re.compile(r"[A-Za-z0-9\-_]{43}")


def _monotonic() -> float:
    # A module-level hook, so tests can age authorization codes without patching ``time``.
    return time.monotonic()


class _DefaultEvents(enum.Enum):
    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "<backchannel-logout event>"


_DEFAULT_EVENTS: Final = _DefaultEvents.DEFAULT


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if value is REMOVE:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


class _PermissiveHMAC(HMACAlgorithm):
    """HMAC that accepts any bytes as its secret, a PEM public key included.

    PyJWT rightly refuses to sign HS* with an asymmetric key; the provider
    needs exactly that to forge algorithm-confusion tokens for tests.
    """

    def prepare_key(self, key: str | bytes) -> bytes:
        return key.encode() if isinstance(key, str) else bytes(key)

    def check_key_length(self, key: bytes) -> str | None:
        # Forged tokens use whatever key the test chose; a short one is intended.
        return None


# A private JWS instance, so the permissive HMAC never reaches PyJWT's global
# registry, which verifiers in the same process use.
_FORGING_JWS: Final = jwt.PyJWS(algorithms=[])
_FORGING_JWS.register_algorithm("HS256", _PermissiveHMAC(HMACAlgorithm.SHA256))
_FORGING_JWS.register_algorithm("HS384", _PermissiveHMAC(HMACAlgorithm.SHA384))
_FORGING_JWS.register_algorithm("HS512", _PermissiveHMAC(HMACAlgorithm.SHA512))


@dataclass(frozen=True)
class DevUser:
    """A user who can log in at the development provider.

    ``claims`` are extra claims (nested dicts and lists allowed) added to the
    ID token (when the provider puts claims there), the UserInfo answer and
    access tokens; they win over ``email``, ``name`` and ``groups``.
    """

    sub: str
    email: str | None = None
    name: str | None = None
    groups: tuple[str, ...] = ()
    claims: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.sub, str) or not self.sub:
            raise ValueError("DevUser.sub must be a non-empty string")
        # Accept any iterable of groups, but a bare string is a mistake, not a list of letters.
        if isinstance(self.groups, str):
            raise TypeError("DevUser.groups must be a sequence of strings, not a string")
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "claims", copy.deepcopy(dict(self.claims)))


@dataclass(frozen=True)
class DevClient:
    """A relying party registered at the development provider.

    ``client_secret=None`` makes it a public client (token endpoint auth
    method ``none``). Redirect URIs are matched exactly.
    """

    client_id: str
    client_secret: str | None = None
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.client_id, str) or not self.client_id:
            raise ValueError("DevClient.client_id must be a non-empty string")
        for name in ("redirect_uris", "post_logout_redirect_uris"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"DevClient.{name} must be a sequence of URIs, not a string")
            object.__setattr__(self, name, tuple(value))

    def __repr__(self) -> str:
        secret = None if self.client_secret is None else "***"
        return (
            f"DevClient(client_id={self.client_id!r}, client_secret={secret!r}, "
            f"redirect_uris={self.redirect_uris!r}, "
            f"post_logout_redirect_uris={self.post_logout_redirect_uris!r})"
        )


@dataclass(frozen=True)
class _Login:
    """What a login established: carried from the code to every refresh."""

    client_id: str
    sub: str
    scope: str
    sid: str
    auth_time: int


@dataclass(frozen=True)
class _Code:
    login: _Login
    redirect_uri: str
    nonce: str | None
    code_challenge: str | None
    expires_at: float


class _OAuthError(Exception):
    """An RFC 6749 §5.2 error answer of the token endpoint."""

    def __init__(
        self, status: int, error: str, description: str, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = list(headers)


class _BadRequest(Exception):
    """Input that cannot even be parsed; the message is fixed text plus escaped names."""


class _InvalidToken(Exception):
    pass


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    async def send(self, send: _Send) -> None:
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers]
        headers.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    receive: _Receive

    async def form(self) -> dict[str, str]:
        content_type = self.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise _BadRequest("the body must be application/x-www-form-urlencoded")
        body = bytearray()
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > _MAX_BODY:
                raise _BadRequest("the body is too large")
            if not message.get("more_body", False):
                break
        try:
            return _parse_params(bytes(body).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise _BadRequest("the body is not UTF-8") from exc


def _parse_params(raw: str) -> dict[str, str]:
    # RFC 6749 §3.1: empty parameters count as omitted, repeated ones are an error.
    try:
        pairs = parse_qsl(raw, encoding="utf-8", errors="strict", max_num_fields=200)
    except ValueError as exc:
        raise _BadRequest("malformed parameters") from exc
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise _BadRequest(f"parameter {key!r} is repeated")
        params[key] = value
    return params


def _json(
    status: int, document: Any, headers: Sequence[tuple[str, str]] = (), *, no_store: bool = False
) -> _Response:
    all_headers = [("content-type", "application/json"), *headers]
    if no_store:
        all_headers += [("cache-control", "no-store"), ("pragma", "no-cache")]
    return _Response(status, json.dumps(document).encode(), all_headers)


def _page(status: int, title: str, body_html: str) -> _Response:
    """An HTML page; ``body_html`` must already be escaped."""
    document = (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head>\n"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body_html}\n</body></html>\n"
    )
    return _Response(
        status,
        document.encode(),
        [
            ("content-type", "text/html; charset=utf-8"),
            ("cache-control", "no-store"),
            ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
        ],
    )


def _error_page(status: int, title: str, message: str) -> _Response:
    return _page(status, title, f"<p>{html.escape(message)}</p>")


def _redirect(location: str) -> _Response:
    return _Response(302, b"", [("location", location), ("cache-control", "no-store")])


def _with_query(uri: str, params: Mapping[str, str]) -> str:
    """``uri`` with ``params`` appended, keeping any query it already has."""
    base, _, fragment = uri.partition("#")
    if not params:
        return uri
    separator = "&" if urlsplit(base).query else ("" if base.endswith("?") else "?")
    result = f"{base}{separator}{urlencode(params)}"
    return f"{result}#{fragment}" if fragment else result


def _half_hash(value: str, alg: str) -> str:
    """OpenID Connect Core 3.1.3.6 ``at_hash``: the left half of the alg's hash, base64url."""
    digest = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}[alg[-3:]]
    half = digest(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(half[: len(half) // 2]).rstrip(b"=").decode("ascii")


def _new_kid(kind: str) -> str:
    return f"dev-{kind}-{secrets.token_hex(6)}"


class DevProvider:
    """A development OpenID Provider as an ASGI app: ``await provider(scope, receive, send)``.

    Endpoints, relative to ``issuer`` (which may have a path):
    ``/.well-known/openid-configuration``, ``/jwks``, ``/authorize``, ``/token``,
    ``/userinfo``, ``/logout``.

    Who logs in at ``/authorize``: the ``login_hint`` parameter (a configured
    user's ``sub`` or email; the non-interactive way for tests), else ``auto_login``, else an
    HTML page listing the users. ``prompt=none`` with neither answers
    ``error=login_required``.

    The test knobs are plain attributes:

    - ``id_token_overrides``: merged into the claims of ID tokens the token
      endpoint issues (a :data:`REMOVE` value deletes a claim);
    - ``id_token_signer``: when set, turns those claims into the whole ID token
      (alg none, HS256 keyed with the public key, a foreign key, …);
    - ``userinfo_overrides``, ``discovery_overrides``, ``callback_overrides``
      (the callback's query; applied to error redirects too): merged likewise;
    - ``refresh_refused``: the refresh grant answers 400 ``invalid_grant``;
    - ``down``: every endpoint answers 503;
    - ``token_delay``: seconds the token endpoint sleeps before answering;
    - counters ``grant_counts`` (token calls by ``grant_type``),
      ``jwks_fetches`` and ``userinfo_calls``.

    :meth:`reset` restores them, the constructor's settings (``auto_login``,
    ``require_pkce``, ``send_iss``, ``claims_in_id_token``, the TTLs,
    ``rotate_refresh_tokens``, ``signing_alg``) and the counters, and forgets
    issued codes, refresh tokens and session ids. Keys, users and clients
    (with URIs added by :meth:`add_redirect_uri`) are kept.

    ``keys`` (an RSA 2048+ and an EC P-256 private key) starts the provider
    with existing key material under new kids; test suites share one pair
    across many providers to skip RSA key generation (~0.1 s each).
    """

    issuer: str
    users: dict[str, DevUser]
    clients: dict[str, DevClient]
    auto_login: str | None
    require_pkce: bool
    send_iss: bool
    claims_in_id_token: bool
    access_token_ttl: int
    id_token_ttl: int
    rotate_refresh_tokens: bool
    signing_alg: str
    id_token_overrides: dict[str, Any]
    id_token_signer: Callable[[dict[str, Any]], str] | None
    userinfo_overrides: dict[str, Any]
    discovery_overrides: dict[str, Any]
    callback_overrides: dict[str, Any]
    refresh_refused: bool
    down: bool
    token_delay: float
    grant_counts: collections.Counter[str]
    jwks_fetches: int
    userinfo_calls: int

    def __init__(
        self,
        *,
        issuer: str,
        clients: Sequence[DevClient],
        users: Sequence[DevUser],
        auto_login: str | None = None,
        require_pkce: bool = True,
        send_iss: bool = True,
        claims_in_id_token: bool = True,
        access_token_ttl: int = 300,
        id_token_ttl: int = 300,
        rotate_refresh_tokens: bool = True,
        signing_alg: str = "RS256",
        keys: tuple[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey] | None = None,
    ) -> None:
        parts = urlsplit(issuer)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"issuer must be an http(s) URL, got {issuer!r}")
        if parts.query or parts.fragment:
            raise ValueError("issuer must not have a query or fragment")
        if signing_alg not in _RSA_ALGS + _EC_ALGS:
            raise ValueError(f"signing_alg must be one of {_RSA_ALGS + _EC_ALGS}")
        self.issuer = issuer
        self._base_path = parts.path.rstrip("/")
        self.clients = {}
        for client in clients:
            if client.client_id in self.clients:
                raise ValueError(f"client {client.client_id!r} is configured twice")
            self.clients[client.client_id] = client
        self.users = {}
        for user in users:
            if user.sub in self.users:
                raise ValueError(f"user {user.sub!r} is configured twice")
            self.users[user.sub] = user
        if auto_login is not None and auto_login not in self.users:
            raise ValueError(f"auto_login {auto_login!r} is not a configured user")
        self._settings: dict[str, Any] = {
            "auto_login": auto_login,
            "require_pkce": require_pkce,
            "send_iss": send_iss,
            "claims_in_id_token": claims_in_id_token,
            "access_token_ttl": access_token_ttl,
            "id_token_ttl": id_token_ttl,
            "rotate_refresh_tokens": rotate_refresh_tokens,
            "signing_alg": signing_alg,
        }
        self._routes: dict[str, tuple[tuple[str, ...], Callable[[_Request], Awaitable[_Response]]]]
        self._routes = {
            "/.well-known/openid-configuration": (("GET",), self._discovery_endpoint),
            "/jwks": (("GET",), self._jwks_endpoint),
            "/authorize": (("GET", "POST"), self._authorize_endpoint),
            "/token": (("POST",), self._token_endpoint),
            "/userinfo": (("GET", "POST"), self._userinfo_endpoint),
            "/logout": (("GET", "POST"), self._logout_endpoint),
        }
        self._codes: dict[str, _Code] = {}
        self._refresh_tokens: dict[str, _Login] = {}
        self._sessions: dict[str, list[str]] = {}
        if keys is None:
            self.rotate_keys()
        else:
            rsa_key, ec_key = keys
            if not isinstance(rsa_key, rsa.RSAPrivateKey) or rsa_key.key_size < 2048:
                raise ValueError("keys[0] must be an RSA private key of 2048 bits or more")
            if not isinstance(ec_key, ec.EllipticCurvePrivateKey) or not isinstance(
                ec_key.curve, ec.SECP256R1
            ):
                raise ValueError("keys[1] must be an EC P-256 private key")
            self._set_keys(rsa_key, ec_key)
        self.reset()

    def __repr__(self) -> str:
        return f"DevProvider(issuer={self.issuer!r})"

    # -- test controls ------------------------------------------------------

    def reset(self) -> None:
        """Put knobs, settings and counters back to their defaults; keys, users and clients stay."""
        for name, value in self._settings.items():
            setattr(self, name, value)
        self.id_token_overrides = {}
        self.id_token_signer = None
        self.userinfo_overrides = {}
        self.discovery_overrides = {}
        self.callback_overrides = {}
        self.refresh_refused = False
        self.down = False
        self.token_delay = 0.0
        self.grant_counts = collections.Counter()
        self.jwks_fetches = 0
        self.userinfo_calls = 0
        self._codes.clear()
        self._refresh_tokens.clear()
        self._sessions.clear()

    def rotate_keys(self) -> None:
        """Replace both signing keys with new ones under new kids; the old ones leave the JWKS."""
        self._set_keys(
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            ec.generate_private_key(ec.SECP256R1()),
        )

    def _set_keys(self, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> None:
        # Fresh kids even for reused key material, so each provider's JWKS is its own.
        self._rsa_key = rsa_key
        self._rsa_kid = _new_kid("rsa")
        self._ec_key = ec_key
        self._ec_kid = _new_kid("ec")

    def add_redirect_uri(self, client_id: str, uri: str) -> None:
        """Register one more redirect URI for a client (kept across :meth:`reset`)."""
        client = self.clients[client_id]
        if uri not in client.redirect_uris:
            self.clients[client_id] = dataclasses.replace(
                client, redirect_uris=(*client.redirect_uris, uri)
            )

    def add_post_logout_redirect_uri(self, client_id: str, uri: str) -> None:
        """Register one more post-logout redirect URI for a client (kept across :meth:`reset`)."""
        client = self.clients[client_id]
        if uri not in client.post_logout_redirect_uris:
            self.clients[client_id] = dataclasses.replace(
                client, post_logout_redirect_uris=(*client.post_logout_redirect_uris, uri)
            )

    def session_ids(self, sub: str) -> list[str]:
        """The ``sid`` values issued to ``sub`` so far, oldest first."""
        return list(self._sessions.get(sub, ()))

    # -- keys and tokens ----------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document: one RSA and one EC P-256 key."""
        rsa_alg = self.signing_alg if self.signing_alg in _RSA_ALGS else "RS256"
        rsa_jwk = dict(RSAAlgorithm.to_jwk(self._rsa_key.public_key(), as_dict=True))
        ec_jwk = dict(ECAlgorithm.to_jwk(self._ec_key.public_key(), as_dict=True))
        keys = []
        for jwk_dict, kid, alg in (
            (rsa_jwk, self._rsa_kid, rsa_alg),
            (ec_jwk, self._ec_kid, "ES256"),
        ):
            # RFC 7517 §4.3: "use" and "key_ops" should not appear together; "use" is what
            # relying parties look at.
            jwk_dict.pop("key_ops", None)
            keys.append({**jwk_dict, "kid": kid, "use": "sig", "alg": alg})
        return {"keys": keys}

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        alg: str = "RS256",
        kid: str | None = None,
        headers: Mapping[str, Any] | None = None,
        key: Any = None,
    ) -> str:
        """Sign ``claims`` as a JWT, valid or deliberately not.

        RS*/PS* use the provider's RSA key, ES256 its EC P-256 key; ``kid``
        defaults to that key's kid. ``key`` replaces the key (a foreign private
        key, still under the provider's kid unless ``kid`` says otherwise).
        ``alg="none"`` gives an unsigned token. HS256/384/512 sign with ``key``
        (any bytes or str) or, by default, the provider's RSA public key in PEM:
        the algorithm-confusion attack, under the RSA kid. ``headers`` are
        merged into the JOSE header; a :data:`REMOVE` value deletes one
        (``{"kid": REMOVE}``, ``{"typ": REMOVE}``).
        """
        default_kid = self._ec_kid if alg in _EC_ALGS else self._rsa_kid
        header = _merge({"typ": "JWT", "kid": default_kid if kid is None else kid}, headers or {})
        # PyJWT adds typ unless it is present and falsy.
        header.setdefault("typ", None)
        payload = dict(claims)
        if alg in _HMAC_ALGS:
            secret = self._rsa_public_pem() if key is None else key
            body = json.dumps(payload, separators=(",", ":")).encode()
            return _FORGING_JWS.encode(body, secret, algorithm=alg, headers=header)
        if alg == "none":
            return jwt.encode(payload, "", algorithm="none", headers=header)
        if alg in _RSA_ALGS:
            signing_key = self._rsa_key if key is None else key
        elif alg in _EC_ALGS:
            signing_key = self._ec_key if key is None else key
        else:
            raise ValueError(f"unsupported alg {alg!r}")
        return jwt.encode(payload, signing_key, algorithm=alg, headers=header)

    def id_token(self, sub: str, *, audience: str, nonce: str | None = None, **extra: Any) -> str:
        """A valid ID token for configured user ``sub``, signed with ``signing_alg``.

        It holds iss, sub, aud, exp, iat, auth_time, sid (a new one, recorded for
        :meth:`session_ids`, unless ``sid=`` is given), nonce when given, and the
        user's claims when ``claims_in_id_token``. ``extra`` claims are merged
        last (:data:`REMOVE` deletes one). The ``id_token_overrides`` and
        ``id_token_signer`` knobs apply to the token endpoint only.
        """
        user = self._user(sub)
        sid = extra.get("sid")
        if not isinstance(sid, str):
            sid = self._new_session(sub)
        elif sid not in self._sessions.get(sub, ()):
            self._sessions.setdefault(sub, []).append(sid)
        now = int(time.time())
        login = _Login(client_id=audience, sub=sub, scope="openid", sid=sid, auth_time=now)
        claims = _merge(self._id_token_claims(user, login, nonce=nonce, now=now), extra)
        return self.sign(claims, alg=self.signing_alg)

    def access_token(
        self,
        sub: str,
        *,
        audience: str,
        scope: str = "openid",
        ttl: int | None = None,
        **extra: Any,
    ) -> str:
        """A JWT access token in the RFC 9068 shape (header ``typ: at+jwt``).

        Claims: iss, sub, aud, exp, iat, jti, client_id (``audience``) and scope,
        plus the user's email, name, groups and claims when ``sub`` is a
        configured user (so bearer requests can build the same principal).
        ``extra`` claims are merged last (:data:`REMOVE` deletes one).
        """
        now = int(time.time())
        user = self.users.get(sub)
        claims = self._user_claims(user) if user is not None else {}
        claims.update(
            iss=self.issuer,
            sub=sub,
            aud=audience,
            exp=now + (self.access_token_ttl if ttl is None else ttl),
            iat=now,
            jti=secrets.token_urlsafe(16),
            client_id=audience,
            scope=scope,
        )
        claims = _merge(claims, extra)
        return self.sign(claims, alg=self.signing_alg, headers={"typ": "at+jwt"})

    def logout_token(
        self,
        *,
        audience: str,
        sub: str | None = None,
        sid: str | None = None,
        jti: str | None = None,
        events: Any = _DEFAULT_EVENTS,
        alg: str = "RS256",
        **extra: Any,
    ) -> str:
        """An OpenID Connect Back-Channel Logout 1.0 logout token (header ``typ: logout+jwt``).

        Claims: iss, aud, iat, exp, jti (random unless given), events (the
        back-channel-logout event unless given; ``events=None`` omits it),
        sub and sid when given, never a nonce. A valid token names ``sub`` or
        ``sid``; neither is allowed here so tests can build invalid ones.
        ``extra`` claims are merged last (:data:`REMOVE` deletes one).
        """
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "exp": now + _LOGOUT_TOKEN_TTL,
            "jti": secrets.token_urlsafe(16) if jti is None else jti,
        }
        if events is _DEFAULT_EVENTS:
            claims["events"] = {_BACKCHANNEL_EVENT: {}}
        elif events is not None:
            claims["events"] = events
        if sub is not None:
            claims["sub"] = sub
        if sid is not None:
            claims["sid"] = sid
        claims = _merge(claims, extra)
        return self.sign(claims, alg=alg, headers={"typ": "logout+jwt"})

    def _rsa_public_pem(self) -> bytes:
        return self._rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def _user(self, sub: str) -> DevUser:
        try:
            return self.users[sub]
        except KeyError:
            raise ValueError(f"{sub!r} is not a configured user") from None

    def _new_session(self, sub: str) -> str:
        sid = secrets.token_urlsafe(16)
        self._sessions.setdefault(sub, []).append(sid)
        return sid

    def _user_claims(self, user: DevUser) -> dict[str, Any]:
        claims: dict[str, Any] = {}
        if user.email is not None:
            claims["email"] = user.email
            claims["email_verified"] = True
        if user.name is not None:
            claims["name"] = user.name
        # Like most providers, an empty group list is an absent claim.
        if user.groups:
            claims["groups"] = list(user.groups)
        claims.update(copy.deepcopy(dict(user.claims)))
        return claims

    def _id_token_claims(
        self,
        user: DevUser,
        login: _Login,
        *,
        nonce: str | None,
        now: int,
        access_token: str | None = None,
    ) -> dict[str, Any]:
        claims = self._user_claims(user) if self.claims_in_id_token else {}
        # The protocol claims come last so a user claim can never shadow them.
        claims.update(
            iss=self.issuer,
            sub=user.sub,
            aud=login.client_id,
            exp=now + self.id_token_ttl,
            iat=now,
            auth_time=login.auth_time,
            sid=login.sid,
        )
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["at_hash"] = _half_hash(access_token, self.signing_alg)
        return claims

    def _verify_own(self, token: str, *, typ: str | None, verify_exp: bool) -> dict[str, Any]:
        """Claims of a token this provider signed with a current key; never HS* or none."""
        try:
            header = jwt.get_unverified_header(token)
            kid = header.get("kid")
            if kid == self._rsa_kid:
                public_key: Any = self._rsa_key.public_key()
                algorithms = list(_RSA_ALGS)
            elif kid == self._ec_kid:
                public_key = self._ec_key.public_key()
                algorithms = list(_EC_ALGS)
            else:
                raise _InvalidToken("unknown kid")
            if typ is not None and header.get("typ") != typ:
                raise _InvalidToken("wrong typ")
            claims: dict[str, Any] = jwt.decode(
                token,
                public_key,
                algorithms=algorithms,
                issuer=self.issuer,
                options={
                    "verify_aud": False,
                    "verify_exp": verify_exp,
                    "require": ["iss", "sub", "aud", "iat"],
                },
            )
        except jwt.PyJWTError as exc:
            raise _InvalidToken("invalid token") from exc
        return claims

    # -- ASGI ---------------------------------------------------------------

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        """Serve one ASGI connection (``http``; ``lifespan`` is acknowledged)."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await receive()
                await send({"type": "websocket.close", "code": 1008})
            return
        response = await self._dispatch(scope, receive)
        await response.send(send)

    async def _lifespan(self, receive: _Receive, send: _Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _dispatch(self, scope: _Scope, receive: _Receive) -> _Response:
        if self.down:
            return _json(503, {"error": "temporarily_unavailable"}, [("retry-after", "1")])
        path: str = scope["path"]
        if self._base_path and not path.startswith(self._base_path + "/"):
            return _error_page(404, "Not found", "No such endpoint.")
        endpoint = path[len(self._base_path) :]
        if endpoint not in self._routes:
            return _error_page(404, "Not found", "No such endpoint.")
        methods, handler = self._routes[endpoint]
        if scope["method"] not in methods:
            response = _error_page(405, "Method not allowed", "Method not allowed.")
            response.headers.append(("allow", ", ".join(methods)))
            return response
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", ()):
            headers[raw_name.decode("latin-1").lower()] = raw_value.decode("latin-1")
        try:
            query = _parse_params(bytes(scope.get("query_string", b"")).decode("utf-8"))
        except (UnicodeDecodeError, _BadRequest):
            return _error_page(400, "Bad request", "The query string is malformed.")
        request = _Request(scope["method"], endpoint, query, headers, receive)
        try:
            return await handler(request)
        except _BadRequest as exc:
            if endpoint == "/token":
                return _json(400, {"error": "invalid_request", "error_description": str(exc)})
            return _error_page(400, "Bad request", str(exc))

    # -- endpoints ----------------------------------------------------------

    def _discovery(self) -> dict[str, Any]:
        base = self.issuer.rstrip("/")
        claims = {"email", "email_verified", "name", "groups"}
        for user in self.users.values():
            claims.update(user.claims)
        document: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks",
            "userinfo_endpoint": f"{base}/userinfo",
            "end_session_endpoint": f"{base}/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self.signing_alg],
            "scopes_supported": ["openid", "email", "profile", "groups", "offline_access"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "sid",
                *sorted(claims),
            ],
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
        }
        if self.send_iss:
            document["authorization_response_iss_parameter_supported"] = True
        return _merge(document, self.discovery_overrides)

    async def _discovery_endpoint(self, request: _Request) -> _Response:
        return _json(200, self._discovery())

    async def _jwks_endpoint(self, request: _Request) -> _Response:
        self.jwks_fetches += 1
        return _json(200, self.jwks())

    async def _authorize_endpoint(self, request: _Request) -> _Response:
        params = request.query if request.method == "GET" else await request.form()
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            return _error_page(400, "Unknown client", "client_id is missing or not registered.")
        redirect_uri = params.get("redirect_uri")
        # Never redirect to an unregistered URI: that would make the provider an open redirect.
        if redirect_uri is None or redirect_uri not in client.redirect_uris:
            return _error_page(
                400,
                "Invalid redirect_uri",
                "redirect_uri is missing or not registered for this client.",
            )
        state = params.get("state")

        def refuse(error: str, description: str) -> _Response:
            answer = {"error": error, "error_description": description}
            if state is not None:
                answer["state"] = state
            return self._authorization_response(redirect_uri, answer)

        if params.get("response_type") != "code":
            return refuse("unsupported_response_type", "response_type must be code")
        scope = params.get("scope", "")
        if "openid" not in scope.split():
            return refuse("invalid_scope", "scope must contain openid")
        if state is None:
            return refuse("invalid_request", "state is required")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if challenge is None:
            if self.require_pkce:
                return refuse("invalid_request", "code_challenge is required")
            if method is not None:
                return refuse("invalid_request", "code_challenge_method without code_challenge")
        elif method != "S256":
            # RFC 7636 §4.3: a missing method means plain, which is not offered.
            return refuse("invalid_request", "code_challenge_method must be S256")
        elif not _CHALLENGE_RE.fullmatch(challenge):
            return refuse("invalid_request", "code_challenge is malformed")
        if "deny" in params:
            return refuse("access_denied", "the user denied the request")

        sub = params.get("login_hint") or self.auto_login
        if sub is None:
            if params.get("prompt") == "none":
                return refuse("login_required", "no user is logged in")
            return self._login_page(client, params)
        # A login_hint may name the user by sub or, as relying parties often do, by email.
        user = self.users.get(sub) or next(
            (u for u in self.users.values() if u.email is not None and u.email == sub), None
        )
        if user is None:
            return _error_page(400, "Unknown user", f"login_hint {sub!r} is not a configured user.")

        login = _Login(
            client_id=client.client_id,
            sub=user.sub,
            scope=scope,
            sid=self._new_session(user.sub),
            auth_time=int(time.time()),
        )
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Code(
            login=login,
            redirect_uri=redirect_uri,
            nonce=params.get("nonce"),
            code_challenge=challenge,
            expires_at=_monotonic() + _CODE_TTL,
        )
        return self._authorization_response(redirect_uri, {"code": code, "state": state})

    def _authorization_response(self, redirect_uri: str, params: Mapping[str, str]) -> _Response:
        answer = dict(params)
        if self.send_iss:
            answer["iss"] = self.issuer
        return _redirect(_with_query(redirect_uri, _merge(answer, self.callback_overrides)))

    def _login_page(self, client: DevClient, params: Mapping[str, str]) -> _Response:
        action = f"{self._base_path}/authorize"
        base_params = {k: v for k, v in params.items() if k not in ("login_hint", "deny")}
        items = []
        for user in self.users.values():
            href = f"{action}?{urlencode({**base_params, 'login_hint': user.sub})}"
            details = ", ".join(
                part
                for part in (user.name, user.email, " ".join(user.groups) or None)
                if part is not None
            )
            items.append(
                f'<li><a href="{html.escape(href)}">{html.escape(user.sub)}</a>'
                f"{' — ' + html.escape(details) if details else ''}</li>"
            )
        deny = f"{action}?{urlencode({**base_params, 'deny': '1'})}"
        body = (
            f"<p>Sign in to <strong>{html.escape(client.client_id)}</strong> as:</p>\n"
            f"<ul>\n{''.join(items)}\n</ul>\n"
            f'<p><a href="{html.escape(deny)}">Deny</a></p>'
        )
        return _page(200, "Development identity provider: sign in", body)

    async def _token_endpoint(self, request: _Request) -> _Response:
        form = await request.form()
        grant_type = form.get("grant_type", "")
        self.grant_counts[grant_type] += 1
        if self.token_delay > 0:
            await asyncio.sleep(self.token_delay)
        try:
            client = self._authenticate_client(request.headers, form)
            if grant_type == "authorization_code":
                document = self._exchange_code(client, form)
            elif grant_type == "refresh_token":
                document = self._refresh(client, form)
            elif not grant_type:
                raise _OAuthError(400, "invalid_request", "grant_type is required")
            else:
                raise _OAuthError(400, "unsupported_grant_type", "grant_type is not supported")
        except _OAuthError as exc:
            return _json(
                exc.status,
                {"error": exc.error, "error_description": exc.description},
                exc.headers,
                no_store=True,
            )
        return _json(200, document, no_store=True)

    def _authenticate_client(
        self, headers: Mapping[str, str], form: Mapping[str, str]
    ) -> DevClient:
        challenge = [("www-authenticate", 'Basic realm="dev-provider"')]
        secret: str | None
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() != "basic":
                raise _OAuthError(401, "invalid_client", "unsupported authentication", challenge)
            if "client_secret" in form:
                raise _OAuthError(
                    400, "invalid_request", "use one client authentication method, not two"
                )
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise _OAuthError(
                    401, "invalid_client", "malformed Basic credentials", challenge
                ) from None
            raw_id, colon, raw_secret = decoded.partition(":")
            if not colon:
                raise _OAuthError(401, "invalid_client", "malformed Basic credentials", challenge)
            # RFC 6749 §2.3.1: both halves are form-urlencoded before base64.
            client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
            if form.get("client_id", client_id) != client_id:
                raise _OAuthError(
                    400, "invalid_request", "client_id differs from Basic credentials"
                )
        else:
            client_id = form.get("client_id", "")
            secret = form.get("client_secret")
        client = self.clients.get(client_id)
        if client is None:
            raise _OAuthError(401, "invalid_client", "unknown client", challenge)
        if client.client_secret is None:
            if secret is not None:
                raise _OAuthError(401, "invalid_client", "public client sent a secret", challenge)
            return client
        if secret is None or not hmac.compare_digest(
            secret.encode("utf-8"), client.client_secret.encode("utf-8")
        ):
            raise _OAuthError(401, "invalid_client", "client authentication failed", challenge)
        return client

    def _exchange_code(self, client: DevClient, form: Mapping[str, str]) -> dict[str, Any]:
        code = form.get("code")
        if code is None:
            raise _OAuthError(400, "invalid_request", "code is required")
        # Popped before any check: a code is spent by its first use, good or bad.
        grant = self._codes.pop(code, None)
        if grant is None or grant.expires_at <= _monotonic():
            raise _OAuthError(400, "invalid_grant", "code is unknown, used or expired")
        if grant.login.client_id != client.client_id:
            raise _OAuthError(400, "invalid_grant", "code was issued to another client")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise _OAuthError(400, "invalid_grant", "redirect_uri differs from the request's")
        verifier = form.get("code_verifier")
        if grant.code_challenge is None:
            if verifier is not None:
                raise _OAuthError(400, "invalid_grant", "code_verifier without code_challenge")
        else:
            if verifier is None:
                raise _OAuthError(400, "invalid_request", "code_verifier is required")
            if not _VERIFIER_RE.fullmatch(verifier):
                raise _OAuthError(400, "invalid_grant", "code_verifier is malformed")
            computed = _s256(verifier)
            if not hmac.compare_digest(computed, grant.code_challenge):
                raise _OAuthError(400, "invalid_grant", "code_verifier does not match")
        if grant.login.sub not in self.users:
            raise _OAuthError(400, "invalid_grant", "the user no longer exists")
        return self._issue(
            grant.login, nonce=grant.nonce, refresh_token=self._new_refresh(grant.login)
        )

    def _refresh(self, client: DevClient, form: Mapping[str, str]) -> dict[str, Any]:
        token = form.get("refresh_token")
        if token is None:
            raise _OAuthError(400, "invalid_request", "refresh_token is required")
        if self.refresh_refused:
            raise _OAuthError(400, "invalid_grant", "refresh refused")
        login = self._refresh_tokens.get(token)
        if login is None or login.client_id != client.client_id:
            raise _OAuthError(400, "invalid_grant", "refresh_token is unknown or revoked")
        if login.sub not in self.users:
            raise _OAuthError(400, "invalid_grant", "the user no longer exists")
        requested = form.get("scope")
        if requested is not None:
            if not set(requested.split()) <= set(login.scope.split()):
                raise _OAuthError(400, "invalid_scope", "scope exceeds the original grant")
            login = dataclasses.replace(login, scope=requested)
        new_token = None
        if self.rotate_refresh_tokens:
            del self._refresh_tokens[token]
            new_token = self._new_refresh(login)
        return self._issue(login, nonce=None, refresh_token=new_token)

    def _new_refresh(self, login: _Login) -> str:
        token = secrets.token_urlsafe(32)
        self._refresh_tokens[token] = login
        return token

    def _issue(
        self, login: _Login, *, nonce: str | None, refresh_token: str | None
    ) -> dict[str, Any]:
        access_token = self.access_token(login.sub, audience=login.client_id, scope=login.scope)
        claims = self._id_token_claims(
            self.users[login.sub],
            login,
            nonce=nonce,
            now=int(time.time()),
            access_token=access_token,
        )
        claims = _merge(claims, self.id_token_overrides)
        if self.id_token_signer is not None:
            id_token = self.id_token_signer(claims)
        else:
            id_token = self.sign(claims, alg=self.signing_alg)
        document: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.access_token_ttl,
            "id_token": id_token,
            "scope": login.scope,
        }
        if refresh_token is not None:
            document["refresh_token"] = refresh_token
        return document

    async def _userinfo_endpoint(self, request: _Request) -> _Response:
        self.userinfo_calls += 1
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _json(401, {"error": "invalid_request"}, [("www-authenticate", "Bearer")])
        try:
            claims = self._verify_own(token.strip(), typ="at+jwt", verify_exp=True)
            user = self.users.get(claims["sub"])
            if user is None:
                raise _InvalidToken("unknown user")
        except _InvalidToken:
            return _json(
                401,
                {"error": "invalid_token"},
                [("www-authenticate", 'Bearer error="invalid_token"')],
            )
        document = {"sub": user.sub}
        document.update((k, v) for k, v in self._user_claims(user).items() if k != "sub")
        return _json(200, _merge(document, self.userinfo_overrides), no_store=True)

    async def _logout_endpoint(self, request: _Request) -> _Response:
        params = request.query if request.method == "GET" else await request.form()
        client_id = params.get("client_id")
        hint = params.get("id_token_hint")
        if hint is not None:
            try:
                # An expired hint is still a fine hint (RP-Initiated Logout 1.0 §2).
                claims = self._verify_own(hint, typ=None, verify_exp=False)
            except _InvalidToken:
                return _error_page(400, "Logout failed", "id_token_hint is not a valid ID token.")
            audience = claims["aud"]
            audiences = [audience] if isinstance(audience, str) else list(audience)
            if client_id is None:
                client_id = str(audiences[0]) if audiences else None
            elif client_id not in audiences:
                return _error_page(400, "Logout failed", "client_id is not the hint's audience.")
        target = params.get("post_logout_redirect_uri")
        if target is not None:
            client = self.clients.get(client_id or "")
            if client is None or target not in client.post_logout_redirect_uris:
                return _error_page(
                    400,
                    "Logout failed",
                    "post_logout_redirect_uri is not registered for this client.",
                )
            state = params.get("state")
            return _redirect(_with_query(target, {"state": state} if state is not None else {}))
        return _page(200, "Signed out", "<p>You are signed out of the development provider.</p>")


def _s256(verifier: str) -> str:
    """RFC 7636 §4.2 S256: base64url(SHA-256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
