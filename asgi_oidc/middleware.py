"""``OIDCMiddleware``: OpenID Connect login in front of any ASGI app."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast
from urllib.parse import quote

import httpx
from asgiref.compatibility import guarantee_single_callable
from asgiref.typing import (
    ASGI3Application,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    WebSocketScope,
)

from .backchannel import BackchannelLogout
from .client import ProviderClient
from .config import OIDCConfig
from .cookies import cookie_value, parse_cookies
from .errors import (
    AccessDenied,
    AuthenticationRequired,
    CallbackError,
    ConfigError,
    InvalidPath,
    OIDCError,
    SessionEnded,
)
from .flow import Flow, FlowError, query_params
from .principal import (
    ANONYMOUS,
    AnonymousUser,
    AuthCredentials,
    Principal,
    principal_from_claims,
)
from .refresh import Refresher
from .responses import Response, error_response, wants_html, websocket_close_code
from .rules import PathPatterns, Policy, RuleSet, email_domain_allowed, normalize_path
from .sessions import Session, SessionManager
from .stores.base import Store

__all__ = ["OIDCMiddleware"]

logger = logging.getLogger("asgi_oidc")

_NAVIGATION_METHODS = frozenset({"GET", "HEAD"})

#: Entries in each per-process memo (paths, Cookie headers); a full memo is cleared.
_MEMO_SIZE = 4096
#: Longer paths and Cookie headers are not memoized (their work is just redone).
_MEMO_PATH_MAX = 512
_MEMO_COOKIE_MAX = 2048

#: What the memo of paths holds: the normalized path, its policy, whether it is public.
Route = tuple[str, "Policy | None", bool]

# The loose signature every framework's typing accepts (Starlette's, httpx's).
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class OIDCMiddleware:
    """Wraps an ASGI app so that every guarded request has a signed-in user.

    ``OIDCMiddleware(app, config)`` or ``OIDCMiddleware(app, **settings)``
    where settings are :class:`OIDCConfig` fields. Everything is validated
    and built here, once; no network call is made until the first request
    that needs the provider.
    """

    def __init__(
        self,
        app: Any,
        /,
        config: OIDCConfig | None = None,
        *,
        http_transport: httpx.AsyncBaseTransport | None = None,
        **settings: Any,
    ) -> None:
        if config is None:
            config = OIDCConfig.from_mapping(settings)
        elif settings:
            raise ConfigError(next(iter(settings)), "pass either config or settings, not both")
        self.app: ASGI3Application = guarantee_single_callable(app)  # type: ignore[no-untyped-call]
        self.config = config
        self.store: Store = _build_store(config)
        self._owns_store = config.store is None
        self.provider = ProviderClient(config, transport=http_transport)
        self.sessions = SessionManager(config, self.store)
        self.flow = Flow(config, self.store, self.provider, self.sessions)
        self.refresher = Refresher(config, self.store, self.provider, self.sessions)
        self.backchannel = BackchannelLogout(config, self.store, self.provider, self.sessions)
        self.rules: RuleSet | None = config.rules
        public = list(config.public_paths)
        if self.flow.post_logout_path:
            public.append(self.flow.post_logout_path)
        self._public = PathPatterns(public)
        self._cookie_name = config.session_cookie_name
        self._callback_path = config.callback_path
        self._logout_path = config.logout_path
        self._login_path = config.login_path
        self._backchannel_path = config.backchannel_logout_path
        self._post_logout_path = self.flow.post_logout_path
        self._own_paths = frozenset(
            path
            for path in (
                self._callback_path,
                self._logout_path,
                self._login_path,
                self._backchannel_path,
                self._post_logout_path,
            )
            if path
        )
        # Pure functions of a request's text and of settings fixed here, so
        # memoized for the paths and Cookie headers seen most (bounded):
        # raw path -> Route, and Cookie header -> the session cookie's value.
        self._routes: dict[str, Route] = {}
        self._session_cookies: dict[bytes, str] = {}
        self._context = {"middleware": self}
        self._started = False

    # -- public API ---------------------------------------------------------

    async def revoke(
        self, *, sub: str | None = None, session_id: str | None = None, issuer: str | None = None
    ) -> int:
        """End sessions on every instance: all of a user's (``sub``, e.g. when
        they are deprovisioned) or one (``session_id``). Returns how many."""
        if (sub is None) == (session_id is None):
            raise TypeError("pass exactly one of sub or session_id")
        if session_id is not None:
            return int(await self.sessions.end_by_id(session_id))
        return await self.sessions.end_subject(issuer or self.config.issuer, str(sub))

    async def aclose(self) -> None:
        """Close the HTTP client, and the store if the middleware built it
        (a store passed in belongs to the caller)."""
        await self.provider.aclose()
        if self._owns_store:
            await self.store.close()

    # -- ASGI ----------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        kind = scope["type"]
        if kind == "http":
            # Most requests in one frame: a session the in-process cache holds,
            # on a path seen before, that its rule allows.
            session = self._cached_session(scope)
            if session is not None:
                scope["user"] = session.principal
                scope["auth"] = session.auth
                scope["asgi_oidc"] = self._context
                await self.app(scope, receive, send)  # type: ignore[arg-type]
                return
        asgi_receive = cast(ASGIReceiveCallable, receive)
        asgi_send = cast(ASGISendCallable, send)
        if kind == "http":
            await self._http(cast(HTTPScope, scope), asgi_receive, asgi_send)
        elif kind == "websocket":
            await self._websocket(cast(WebSocketScope, scope), asgi_receive, asgi_send)
        elif kind == "lifespan":
            await self._lifespan(scope, asgi_receive, asgi_send)
        else:
            await self.app(cast(Any, scope), asgi_receive, asgi_send)

    async def _lifespan(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        async def receive_and_close() -> Any:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.aclose()
            return message

        await self.app(cast(Any, scope), receive_and_close, send)

    async def _start(self) -> None:
        if not self._started:
            self._started = True
            await self.sessions.start()

    def _cached_session(self, scope: Scope) -> Session | None:
        """The session of a request that needs nothing but in-process lookups:
        a known path, a session cookie the cache holds (no bearer token, no
        refresh due) and a rule that allows it. ``None``: take the full path."""
        route = self._routes.get(scope["path"])
        if route is None:
            return None
        cookie_header, authorization = _credentials(scope)
        if cookie_header is None or authorization is not None:
            return None
        cookie = self._session_cookies.get(cookie_header)
        if not cookie:
            return None
        session = self.sessions.cached(cookie)
        if session is None or self.refresher.due(session.record):
            return None
        _path, policy, public = route
        if policy is not None and not public and not policy.allows(session.principal):
            return None
        return session

    async def _http(
        self, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        try:
            response = await self._guard_http(scope, receive)
        except FlowError as exc:
            response = error_response(exc.error, html_wanted=wants_html(scope), cookies=exc.cookies)
        except OIDCError as exc:
            response = error_response(exc, html_wanted=wants_html(scope))
        except Exception:
            # A bug of ours must still fail closed, with no detail to the client.
            logger.exception("asgi_oidc: unexpected error while guarding a request")
            response = error_response(OIDCError("unexpected error"), html_wanted=wants_html(scope))
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response.send(send)

    async def _guard_http(self, scope: HTTPScope, receive: ASGIReceiveCallable) -> Response | None:
        """A response of the middleware's own, or ``None`` to call the app."""
        if not self._started:
            await self._start()
        raw_path = scope["path"]
        if raw_path == self._callback_path:
            cookies = _cookies(scope)
            old = cookies.get(self._cookie_name)
            old_sid = self.sessions.sid_from_cookie(old) if old else None
            return await self.flow.callback(scope["query_string"], cookies, old_sid)
        if raw_path == self._logout_path:
            # Signing out needs no fresh tokens, nor a provider that is up.
            value = _cookies(scope).get(self._cookie_name)
            session = await self._session_for(value, refresh=False) if value else None
            return await self.flow.logout(session.record if session else None, wants_html(scope))
        if raw_path == self._backchannel_path:
            return await self.backchannel.handle(scope, receive)
        if raw_path == self._login_path:
            return await self.flow.start_login(_query_value(scope, "rd"))
        if raw_path == self._post_logout_path:
            await self.flow.check_post_logout(scope["query_string"])
        if await self._admit(scope):
            return None
        if _is_navigation(scope, wants_html(scope)):
            return await self.flow.start_login(_return_path(scope))
        raise AuthenticationRequired("no session")

    async def _websocket(
        self, scope: WebSocketScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        try:
            await self._guard_websocket(scope)
        except Exception as exc:
            if isinstance(exc, OIDCError):
                error = exc
                error_response(exc, html_wanted=False)  # logs it, in the one place
            else:
                logger.exception("asgi_oidc: unexpected error while guarding a websocket")
                error = OIDCError("unexpected error")
            message = await receive()
            if message["type"] == "websocket.connect":
                # Closing before accept: the server answers the handshake with 403.
                await send(
                    {"type": "websocket.close", "code": websocket_close_code(error), "reason": ""}
                )
            return
        await self.app(scope, receive, send)

    async def _guard_websocket(self, scope: WebSocketScope) -> None:
        if not self._started:
            await self._start()
        if not await self._admit(scope):
            raise AuthenticationRequired("no session")

    # -- authentication and authorization ------------------------------------

    async def _admit(self, scope: HTTPScope | WebSocketScope) -> bool:
        """Put the user (or the anonymous one, on a public path) into scope;
        ``False`` when a login is needed. Raises when a rule denies the user."""
        route = self._route(scope["path"])
        principal, auth = await self._authenticate(scope)
        user: Principal | AnonymousUser
        if principal is None:
            if not route[2]:
                return False
            user = ANONYMOUS
        else:
            self._authorize(principal, route)
            user = principal
        scope["user"] = user  # type: ignore[typeddict-unknown-key]
        scope["auth"] = auth  # type: ignore[typeddict-unknown-key]
        scope["asgi_oidc"] = self._context  # type: ignore[typeddict-unknown-key]
        return True

    def _route(self, raw_path: str) -> Route:
        """Normalize a path, find its policy and whether it is public; remember it."""
        route = self._routes.get(raw_path)
        if route is not None:
            return route
        path = normalize_path(raw_path)
        if path is None:
            raise InvalidPath("unacceptable path")
        policy = self.rules.policy_for_normalized(path) if self.rules is not None else None
        route = (path, policy, self._public.matches_normalized(path))
        # The middleware's own paths are never answered from the memo.
        if len(raw_path) <= _MEMO_PATH_MAX and raw_path not in self._own_paths:
            if len(self._routes) >= _MEMO_SIZE:
                self._routes.clear()
            self._routes[raw_path] = route
        return route

    def _session_cookie(self, header: bytes) -> str:
        """The session cookie's value in a Cookie header ("" when absent); remembered."""
        value = self._session_cookies.get(header)
        if value is None:
            value = cookie_value(header, self._cookie_name) or ""
            if len(header) <= _MEMO_COOKIE_MAX:
                if len(self._session_cookies) >= _MEMO_SIZE:
                    self._session_cookies.clear()
                self._session_cookies[header] = value
        return value

    async def _authenticate(
        self, scope: HTTPScope | WebSocketScope
    ) -> tuple[Principal | None, AuthCredentials]:
        cookie_header, authorization = _credentials(scope)
        bearer = _bearer_value(authorization) if authorization and self.config.bearer else None
        if bearer is not None:
            principal = await self._bearer_principal(bearer)
            return principal, AuthCredentials(principal.groups)
        cookie = self._session_cookie(cookie_header) if cookie_header is not None else ""
        session = await self._session_for(cookie) if cookie else None
        if session is None:
            return None, AuthCredentials()
        return session.principal, session.auth

    async def _session_for(self, value: str, *, refresh: bool = True) -> Session | None:
        session = await self.sessions.load(value)
        if refresh and session is not None and self.refresher.due(session.record):
            try:
                session = await self.refresher.refresh(session)
            except SessionEnded:
                # Refused: no session, so a navigation logs in again (API: 401).
                return None
        return session

    async def _bearer_principal(self, token: str) -> Principal:
        claims = await self.provider.validator.validate_access_token(token)
        principal = principal_from_claims(
            claims,
            email_claim=self.config.email_claim,
            groups_claim=self.config.groups_claim,
            custom_claims=self.config.claims,
            access_token=token if self.config.pass_access_token else None,
        )
        if self.config.email_domains and not email_domain_allowed(
            principal, self.config.email_domains
        ):
            raise AccessDenied("email domain not allowed", rule_path="email_domains")
        return principal

    def _authorize(self, principal: Principal, route: Route) -> None:
        _path, policy, public = route
        if policy is not None and not public and not policy.allows(principal):
            logger.info("asgi_oidc: denied sub=%s by rule %s", principal.sub[:64], policy.path)
            raise AccessDenied("denied by rule", rule_path=policy.path)


def _build_store(config: OIDCConfig) -> Store:
    if config.store is not None:
        return config.store
    if config.redis_url is not None:
        from .stores.redis import RedisStore

        return RedisStore(config.redis_url)
    from .stores.memory import MemoryStore

    return MemoryStore()


def _credentials(scope: Scope | HTTPScope | WebSocketScope) -> tuple[bytes | None, bytes | None]:
    """The first Cookie and Authorization headers, in one pass."""
    cookie_header: bytes | None = None
    authorization: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"cookie":
            if cookie_header is None:
                cookie_header = value
        elif name == b"authorization" and authorization is None:
            authorization = value
    return cookie_header, authorization


def _cookies(scope: HTTPScope | WebSocketScope) -> dict[str, str]:
    for name, value in scope["headers"]:
        if name == b"cookie":
            return parse_cookies(value)
    return {}


def _bearer_value(value: bytes) -> str | None:
    scheme, _, token = value.decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _is_navigation(scope: HTTPScope, html_wanted: bool) -> bool:
    if scope["method"] not in _NAVIGATION_METHODS or not html_wanted:
        return False
    for name, value in scope["headers"]:
        if name == b"x-requested-with" and value.lower() == b"xmlhttprequest":
            return False
        if name == b"sec-fetch-mode" and value not in (b"navigate", b"nested-navigate"):
            return False
    return True


def _return_path(scope: HTTPScope) -> str:
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(scope["path"])
    query = scope["query_string"]
    return f"{path}?{query.decode('latin-1')}" if query else path


def _query_value(scope: HTTPScope, name: str) -> str | None:
    try:
        return query_params(scope["query_string"]).get(name)
    except CallbackError:
        return None
