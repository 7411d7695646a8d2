"""Run the development provider: ``python -m asgi_oidc.testing --port 9000 …``.

Serves a :class:`~asgi_oidc.testing.DevProvider` with uvicorn until Ctrl-C.
For development only: anyone who can reach the port can log in as anyone.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .provider import DevClient, DevProvider, DevUser
from .server import _import_uvicorn

__all__ = ["build_parser", "build_provider", "main", "parse_user"]

_DEFAULT_USERS = (
    DevUser("alice", email="alice@example.com", name="Alice", groups=("admins",)),
    DevUser("bob", email="bob@example.com", name="Bob"),
)


def parse_user(spec: str) -> DevUser:
    """``alice@corp.com:admins,staff`` → a user with sub ``alice``, that email and groups.

    Without ``@`` the part before ``:`` is the sub and there is no email.
    """
    identity, _, groups = spec.partition(":")
    identity = identity.strip()
    if not identity:
        raise argparse.ArgumentTypeError(f"user {spec!r} has no name")
    sub, at, _domain = identity.partition("@")
    if at and not sub:
        raise argparse.ArgumentTypeError(f"user {spec!r} has no local part")
    return DevUser(
        sub,
        email=identity if at else None,
        name=sub.capitalize(),
        groups=tuple(group.strip() for group in groups.split(",") if group.strip()),
    )


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``python -m asgi_oidc.testing``."""
    parser = argparse.ArgumentParser(
        prog="python -m asgi_oidc.testing",
        description="A development OpenID Provider. Never expose it: it lets anyone log in.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port (default 9000)")
    parser.add_argument("--issuer", help="issuer URL (default http://HOST:PORT)")
    parser.add_argument("--client-id", default="demo", help="the client's id (default demo)")
    parser.add_argument(
        "--client-secret", help="the client's secret (default: none, a public client)"
    )
    parser.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        help="a registered redirect URI (repeatable; default "
        "http://127.0.0.1:8000/oauth2/callback)",
    )
    parser.add_argument(
        "--post-logout-redirect-uri",
        action="append",
        default=[],
        help="a registered post-logout redirect URI (repeatable)",
    )
    parser.add_argument(
        "--user",
        action="append",
        type=parse_user,
        default=[],
        metavar="EMAIL[:GROUP,…]",
        help="a user who can log in (repeatable; default alice (admins) and bob)",
    )
    parser.add_argument("--auto-login", metavar="SUB", help="log this user in without a page")
    parser.add_argument(
        "--claims-in-userinfo-only",
        action="store_true",
        help="keep email, groups and custom claims out of the ID token",
    )
    return parser


def build_provider(args: argparse.Namespace) -> DevProvider:
    """The provider the parsed command line describes."""
    host: str = args.host
    issuer = args.issuer or (
        f"http://[{host}]:{args.port}" if ":" in host else f"http://{host}:{args.port}"
    )
    client = DevClient(
        args.client_id,
        args.client_secret,
        redirect_uris=tuple(args.redirect_uri) or ("http://127.0.0.1:8000/oauth2/callback",),
        post_logout_redirect_uris=tuple(args.post_logout_redirect_uri),
    )
    return DevProvider(
        issuer=issuer,
        clients=[client],
        users=args.user or _DEFAULT_USERS,
        auto_login=args.auto_login,
        claims_in_id_token=not args.claims_in_userinfo_only,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, then serve until interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        provider = build_provider(args)
    except ValueError as exc:
        parser.error(str(exc))
    uvicorn = _import_uvicorn()
    print(f"Development OpenID Provider at {provider.issuer} (Ctrl-C stops it)")
    for user in provider.users.values():
        print(f"  user {user.sub}: {user.email or '-'} groups={','.join(user.groups) or '-'}")
    uvicorn.run(provider, host=args.host, port=args.port, lifespan="off", log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
