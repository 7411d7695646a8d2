"""The public face: ``asgi_oidc.__all__`` lists exactly the public names."""

from __future__ import annotations

import asgi_oidc


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in dir(asgi_oidc) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(asgi_oidc, name)).__name__ == "module"}
    assert asgi_oidc.__all__ == sorted(asgi_oidc.__all__)
    assert set(asgi_oidc.__all__) == (public - modules) | {"rules"}


def test_every_public_name_has_a_docstring() -> None:
    for name in asgi_oidc.__all__:
        assert getattr(asgi_oidc, name).__doc__, name
