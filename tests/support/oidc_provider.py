"""A real OpenID Provider for the interop tests: panva's oidc-provider under node.

``run_oidc_provider(clients=[...])`` starts ``tests/oidc_provider/provider.mjs`` on a
free loopback port and yields an :class:`OidcProviderProcess` (``.issuer``, ``.port``,
``.stop()``). ``drive_login`` walks an authorization request through the provider's
development login and consent pages with httpx, the way a browser would, and returns
the redirect back to the relying party without following it. ``drive_logout`` does
the same for RP-initiated logout's confirmation page.

Prerequisites: ``node`` on PATH and ``npm ci`` run in ``tests/oidc_provider``. When
they are missing the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

PROVIDER_DIR = Path(__file__).resolve().parent.parent / "oidc_provider"
PROVIDER_SCRIPT = PROVIDER_DIR / "provider.mjs"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

#: The claims each scope releases (the provider's default; pass ``claims=`` to change).
DEFAULT_SCOPE_CLAIMS: Mapping[str, Sequence[str]] = {
    "openid": ["sub"],
    "email": ["email", "email_verified"],
    "profile": ["name"],
    "groups": ["groups"],
    "department": ["department"],
    "roles": ["roles"],
}


class OidcProviderError(RuntimeError):
    """The provider did not start, or a page it served was not what we expected."""


def _missing(reason: str) -> NoReturn:
    """Fail under CI (the prerequisites are part of the test run there), else skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"{reason}: install node/npm and run scripts/test (npm ci in tests/oidc_provider)",
            pytrace=False,
        )
    pytest.skip(f"{reason} (install node and run `npm ci` in tests/oidc_provider to enable these)")


def check_prerequisites() -> str:
    """Return the path of ``node``; skip (or fail under CI) when anything is missing."""
    node = shutil.which("node")
    if node is None:
        _missing("node is not on PATH")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        _missing(f"oidc-provider is not installed in {PROVIDER_DIR / 'node_modules'}")
    return node


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class OidcProviderProcess:
    """One running ``node provider.mjs``; build it with :func:`run_oidc_provider`."""

    config: dict[str, Any]
    log_path: Path
    node: str = "node"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    issuer: str = ""
    startup_seconds: float = 0.0

    @property
    def port(self) -> int:
        port: int = self.config["port"]
        return port

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/auth"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def userinfo_endpoint(self) -> str:
        return f"{self.issuer}/me"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def end_session_endpoint(self) -> str:
        return f"{self.issuer}/session/end"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Launch the provider and wait for its ``READY <issuer>`` line."""
        began = time.perf_counter()
        env = dict(os.environ, OP_CONFIG=json.dumps(self.config), NODE_ENV="test")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.node, str(PROVIDER_SCRIPT)],
                cwd=PROVIDER_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        assert self.process.stdout is not None
        stdout = self.process.stdout
        deadline = began + timeout
        seen = b""
        while b"\n" not in seen:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                self.stop()
                raise OidcProviderError(
                    f"oidc-provider did not print READY within {timeout:.0f} s;"
                    f" stdout so far {seen!r}; log {self.log_path}:\n{self.log_tail()}"
                )
            ready, _, _ = select.select([stdout], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(stdout.fileno(), 4096)
            if not chunk:  # EOF: it exited
                code = self.process.wait(timeout=STOP_TIMEOUT)
                self.process = None
                stdout.close()
                raise OidcProviderError(
                    f"oidc-provider exited with status {code} before READY;"
                    f" log {self.log_path}:\n{self.log_tail()}"
                )
            seen += chunk
        line = seen.split(b"\n", 1)[0].decode(errors="replace").strip()
        if not line.startswith("READY "):
            self.stop()
            raise OidcProviderError(
                f"unexpected first line from oidc-provider: {line!r};"
                f" log {self.log_path}:\n{self.log_tail()}"
            )
        self.issuer = line.removeprefix("READY ").strip()
        self.startup_seconds = time.perf_counter() - began

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if it hangs. Idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def client_metadata(
    client_id: str,
    client_secret: str,
    redirect_uris: Sequence[str],
    *,
    post_logout_redirect_uris: Sequence[str] = (),
    token_endpoint_auth_method: str = "client_secret_basic",  # noqa: S107 - a method name
    backchannel_logout_uri: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Client metadata in the shape ``run_oidc_provider(clients=...)`` takes."""
    client: dict[str, Any] = {
        "client_id": client_id,
        "client_secret": client_secret,
        "redirect_uris": list(redirect_uris),
        "post_logout_redirect_uris": list(post_logout_redirect_uris),
        "token_endpoint_auth_method": token_endpoint_auth_method,
        **extra,
    }
    if backchannel_logout_uri is not None:
        client["backchannel_logout_uri"] = backchannel_logout_uri
    return client


@contextlib.contextmanager
def run_oidc_provider(
    *,
    clients: Sequence[Mapping[str, Any]],
    conform_id_token_claims: bool = True,
    access_token_ttl: int | None = None,
    id_token_ttl: int | None = None,
    accounts: Mapping[str, Mapping[str, Any]] | None = None,
    claims: Mapping[str, Sequence[str]] | None = None,
    rotate_refresh_token: bool | None = None,
    userinfo_subjects: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    start_timeout: float = START_TIMEOUT,
) -> Iterator[OidcProviderProcess]:
    """Run oidc-provider on a free port of 127.0.0.1 for the duration of the block.

    ``clients``: client metadata (see :func:`client_metadata`); ``grant_types``
    defaults to authorization_code + refresh_token. ``accounts``: login name → claims
    (unknown logins get only ``email: <login>@example.com``). ``claims``: scope → claim
    names (default :data:`DEFAULT_SCOPE_CLAIMS`). ``conform_id_token_claims=False``
    puts the scopes' claims in the ID token too. TTLs are in seconds.
    ``rotate_refresh_token=True``: every refresh answers a new refresh token and
    consumes the old one (oidc-provider revokes the grant when a consumed one is
    used again); ``None`` keeps oidc-provider's rule. ``userinfo_subjects``: login
    name → the ``sub`` UserInfo answers instead (the ID token keeps the login), to
    play a provider whose UserInfo names someone else.
    """
    node = check_prerequisites()
    config: dict[str, Any] = {
        "clients": [dict(c) for c in clients],
        "conformIdTokenClaims": conform_id_token_claims,
        "accounts": {name: dict(c) for name, c in (accounts or {}).items()},
    }
    if access_token_ttl is not None:
        config["accessTokenTtl"] = access_token_ttl
    if id_token_ttl is not None:
        config["idTokenTtl"] = id_token_ttl
    if claims is not None:
        config["claims"] = {scope: list(names) for scope, names in claims.items()}
    if rotate_refresh_token is not None:
        config["rotateRefreshToken"] = rotate_refresh_token
    if userinfo_subjects is not None:
        config["userinfoSubjects"] = dict(userinfo_subjects)

    with contextlib.ExitStack() as stack:
        if log_dir is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="oidc-op-")))
        provider: OidcProviderProcess | None = None
        for attempt in range(3):  # another process may grab the port we picked
            port = free_port()
            provider = OidcProviderProcess(
                config={**config, "port": port},
                log_path=log_dir / f"oidc-provider-{port}.log",
                node=node,
            )
            try:
                provider.start(timeout=start_timeout)
                break
            except OidcProviderError:
                if attempt == 2 or "cannot listen" not in provider.log_tail():
                    raise
        assert provider is not None
        try:
            yield provider
        finally:
            provider.stop()


# --- driving the development interaction pages ------------------------------------


@dataclass
class HtmlForm:
    action: str
    method: str
    id: str | None
    fields: dict[str, str] = field(default_factory=dict)


class _PageParser(HTMLParser):
    """Collects forms (action, method, hidden and pre-filled inputs) and links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[HtmlForm] = []
        self.links: list[str] = []
        self._current: HtmlForm | None = None
        self._orphans: list[tuple[str, str, str]] = []  # (form id, name, value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v if v is not None else "" for k, v in attrs}
        if tag == "form":
            form = HtmlForm(
                action=a.get("action", ""),
                method=a.get("method", "get").lower(),
                id=a.get("id"),
            )
            self.forms.append(form)
            self._current = form
        elif tag == "input":
            name = a.get("name")
            if not name or a.get("type", "text").lower() in {"submit", "button", "image"}:
                return
            value = a.get("value", "")
            if "form" in a:
                self._orphans.append((a["form"], name, value))
            elif self._current is not None:
                self._current.fields[name] = value
        elif tag == "a" and "href" in a:
            self.links.append(a["href"])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "form":  # pragma: no cover - <form/> is not valid HTML anyway
            self._current = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None

    def close(self) -> None:
        super().close()
        by_id = {f.id: f for f in self.forms if f.id}
        for form_id, name, value in self._orphans:
            if form_id in by_id:
                by_id[form_id].fields[name] = value


def parse_page(html: str) -> tuple[list[HtmlForm], list[str]]:
    """The forms and link targets of an HTML page."""
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser.forms, parser.links


def _origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    parts = urlsplit(str(url))
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _describe(response: httpx.Response) -> str:
    body = response.text
    if len(body) > 1500:
        body = body[:1500] + "…"
    return f"{response.request.method} {response.request.url} → {response.status_code}:\n{body}"


async def _walk(
    client: httpx.AsyncClient,
    response: httpx.Response,
    *,
    login: str | None,
    password: str,
    consent: bool,
    confirm_logout: bool,
    max_steps: int,
) -> httpx.Response:
    provider = _origin(response.request.url)
    for _ in range(max_steps):
        if response.is_redirect:
            target = urljoin(str(response.request.url), response.headers["location"])
            if _origin(target) != provider:
                return response  # back to the relying party: the caller follows it
            response = await client.get(target, follow_redirects=False)
            continue
        if response.status_code != 200 or "html" not in response.headers.get("content-type", ""):
            raise OidcProviderError(f"unexpected response from the provider: {_describe(response)}")
        forms, links = parse_page(response.text)
        base = str(response.request.url)
        form = next(
            (
                f
                for f in forms
                if f.fields.get("prompt") in {"login", "consent"} or "xsrf" in f.fields
            ),
            None,
        )
        if form is None:
            # A page that is not an interaction (e.g. the post-logout "Sign-out
            # Success" page, or an error page): the journey ends here.
            return response
        prompt = form.fields.get("prompt")
        data = dict(form.fields)
        if prompt == "login":
            if login is None:
                raise OidcProviderError(f"the provider asks for a login: {_describe(response)}")
            data.update(login=login, password=password)
        elif prompt == "consent" and not consent:
            abort = next((link for link in links if link.rstrip("/").endswith("/abort")), None)
            if abort is None:
                raise OidcProviderError(f"no abort link on the consent page: {_describe(response)}")
            response = await client.get(urljoin(base, abort), follow_redirects=False)
            continue
        elif prompt is None and confirm_logout:  # the RP-initiated logout confirmation
            data["logout"] = "yes"
        elif prompt is None:
            data.pop("logout", None)
        action = urljoin(base, form.action or base)
        if form.method == "post":
            response = await client.post(action, data=data, follow_redirects=False)
        else:
            response = await client.get(action, params=data, follow_redirects=False)
    raise OidcProviderError(f"no way out of the provider's pages after {max_steps} steps")


async def drive_login(
    client: httpx.AsyncClient,
    authorize_url: str,
    *,
    login: str,
    consent: bool = True,
    password: str = "any password",  # noqa: S107 - the dev login page takes any
    max_steps: int = 12,
) -> httpx.Response:
    """Walk an authorization request through the provider's dev login/consent pages.

    ``client`` must reach the provider over the network and keep cookies (the
    provider's session cookie is what makes a second login skip the login page).
    Answers the login form with ``login`` (which becomes ``sub``) and the consent
    form with "Continue"; ``consent=False`` presses "Cancel" there instead (the
    callback then carries ``error=access_denied``). Returns the first redirect
    whose Location leaves the provider's origin, i.e. the callback to the relying
    party, unfollowed; :func:`callback_params` reads its query.
    """
    response = await client.get(authorize_url, follow_redirects=False)
    return await _walk(
        client,
        response,
        login=login,
        password=password,
        consent=consent,
        confirm_logout=True,
        max_steps=max_steps,
    )


async def drive_logout(
    client: httpx.AsyncClient,
    end_session_url: str,
    *,
    confirm: bool = True,
    max_steps: int = 8,
) -> httpx.Response:
    """Answer the provider's RP-initiated logout page ("Yes, sign me out" unless
    ``confirm=False``). Returns the redirect to ``post_logout_redirect_uri``
    unfollowed, or, without one, the provider's final page.
    """
    response = await client.get(end_session_url, follow_redirects=False)
    return await _walk(
        client,
        response,
        login=None,
        password="",
        consent=False,
        confirm_logout=confirm,
        max_steps=max_steps,
    )


def callback_params(response: httpx.Response) -> dict[str, str]:
    """The query parameters of a redirect's Location (one value each)."""
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
