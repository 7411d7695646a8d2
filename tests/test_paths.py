"""Path normalization and pattern tables: one named test per path-confusion trick.

Rules used throughout: ``/admin/*`` needs the ``admins`` group, ``/public/*``
is public. Each trick must either land on the admin rule or be refused
(``normalize_path`` gives ``None`` and the middleware answers 400); it must
never reach ``/admin`` content judged by another rule.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_oidc._paths import (
    DuplicatePattern,
    PathPatterns,
    PathTable,
    normalize_path,
    parse_pattern,
)
from asgi_oidc.errors import ConfigError
from asgi_oidc.rules import Policy, RuleSet, everyone, group

ADMIN = Policy("/admin/*", require=[group("admins")])
PUBLIC = Policy("/public/*", include=[everyone()])
RULES = RuleSet([ADMIN, PUBLIC])
RULES_NOCASE = RuleSet([ADMIN, PUBLIC], case_sensitive=False)
PUBLIC_PATHS = PathPatterns(["/public/*"])


def rule_for(path: str, rules: RuleSet = RULES) -> Policy | None:
    normalized = normalize_path(path)
    assert normalized is not None, f"{path!r} was refused"
    return rules.policy_for(normalized)


def assert_refused(path: str) -> None:
    assert normalize_path(path) is None
    assert not PUBLIC_PATHS.matches(path)
    with pytest.raises(ValueError):
        RULES.policy_for(path)


# -- the named path-confusion cases ------------------------------------------


def test_dot_dot_back_into_admin_is_refused() -> None:
    assert_refused("/admin/../admin/x")


def test_public_dot_dot_admin_is_refused() -> None:
    # Resolved, it would be /admin; literal, a router may serve it from
    # /public/{rest:path}. Refusing is the only answer right for both.
    assert_refused("/public/../admin")
    assert_refused("/public/../admin/x")


def test_admin_dot_dot_public_is_refused_not_made_public() -> None:
    # Starlette routes /admin/../public/x to a /admin/{rest:path} endpoint;
    # resolving the dots would have judged it by the public rule.
    assert_refused("/admin/../public/x")


def test_single_dot_segment_is_refused() -> None:
    assert_refused("/./admin/x")
    assert_refused("/admin/./x")
    assert_refused("/admin/.")


def test_trailing_dot_dot_is_refused() -> None:
    assert_refused("/admin/x/..")


def test_double_slash_prefix_is_collapsed_onto_admin() -> None:
    assert rule_for("//admin/x") is ADMIN
    assert rule_for("/admin//x") is ADMIN
    assert normalize_path("///admin///x//") == "/admin/x"


def test_uppercase_admin_is_another_path_when_case_sensitive() -> None:
    # Starlette's router is case-sensitive too: /ADMIN/x never reaches /admin.
    assert rule_for("/ADMIN/x") is None
    assert rule_for("/Admin/x") is None


def test_uppercase_admin_is_admin_when_case_insensitive() -> None:
    assert rule_for("/ADMIN/x", RULES_NOCASE) is ADMIN
    assert rule_for("/aDmIn", RULES_NOCASE) is ADMIN


def test_case_insensitive_patterns_are_folded_too() -> None:
    rules = RuleSet([Policy("/Admin/*", require=[group("admins")])], case_sensitive=False)
    assert rules.policy_for("/admin/x") is not None
    assert rules.policy_for("/ADMIN") is not None


def test_encoded_dot_dot_is_refused() -> None:
    # scope["path"] holding %2e%2e means the client sent %252e%252e, or a
    # server did not decode: a backend that decodes again would climb.
    assert_refused("/public/%2e%2e/admin")
    assert_refused("/public/%2E%2E/admin")
    assert_refused("/public/.%2e/admin")


def test_encoded_slash_is_a_separator() -> None:
    assert rule_for("/admin%2fx") is ADMIN
    assert rule_for("/admin%2Fsecret%2Fpage") is ADMIN


def test_encoded_slash_with_dots_is_refused() -> None:
    assert_refused("/public%2f..%2fadmin")


def test_double_encoded_slash_is_a_separator() -> None:
    assert rule_for("/admin%252fx") is ADMIN


def test_double_encoded_dot_dot_is_refused() -> None:
    assert_refused("/public/%252e%252e/admin")
    assert_refused("/public/%25252e%25252e/admin")


def test_many_encoding_layers_are_refused() -> None:
    assert normalize_path("/a%25252525252e") is None


def test_encoded_percent_that_decodes_to_nothing_is_stable() -> None:
    assert normalize_path("/search/100%") == "/search/100%"
    assert normalize_path("/search/100%zz") == "/search/100%zz"


def test_backslash_is_a_separator() -> None:
    assert rule_for("/admin\\x") is ADMIN
    assert rule_for("/admin%5cx") is ADMIN


def test_backslash_dot_dot_is_refused() -> None:
    assert_refused("/public\\..\\admin")
    assert_refused("/public%5c..%5cadmin")


def test_trailing_dot_on_a_segment_is_refused() -> None:
    # Windows file systems and IIS read "admin." as "admin".
    assert_refused("/admin./x")
    assert_refused("/admin.")
    assert_refused("/admin%2e/x")
    assert_refused("/admin.../x")


def test_trailing_space_on_a_segment_is_refused() -> None:
    assert_refused("/admin%20/x")
    assert_refused("/admin /x")


def test_servlet_dot_dot_semicolon_is_refused() -> None:
    # Tomcat reads "..;" as "..": /public/..;/admin is /admin to a Java backend.
    assert_refused("/public/..;/admin")
    assert_refused("/admin..;/x")


def test_path_parameters_are_stripped() -> None:
    assert rule_for("/admin;jsessionid=1/x") is ADMIN
    assert rule_for("/admin;/x") is ADMIN
    assert rule_for("/admin%3bx=1/x") is ADMIN
    assert normalize_path("/a;b=c/d;e") == "/a/d"


def test_nul_and_control_characters_are_refused() -> None:
    assert_refused("/admin%00/x")
    assert_refused("/admin\x00")
    assert_refused("/admin%0a")
    assert_refused("/admin%09/x")
    assert_refused("/admin%7f")
    assert_refused("/admin%c2%85")  # NEL, a C1 control


def test_invalid_utf8_is_refused() -> None:
    assert_refused("/admin%ff")
    assert_refused("/admin%c0%ae%c0%ae")  # overlong "..", refused as invalid UTF-8


def test_lone_surrogate_is_refused() -> None:
    assert normalize_path("/admin/\ud800") is None


def test_path_must_start_with_slash() -> None:
    for path in ("", "admin/x", "*", "http://example.com/admin", "\\admin\\x", "%2fadmin"):
        assert normalize_path(path) is None


def test_prefix_does_not_match_a_longer_name() -> None:
    assert rule_for("/administrator") is None
    assert rule_for("/admin-panel/x") is None


def test_prefix_matches_itself_with_and_without_slash() -> None:
    assert rule_for("/admin") is ADMIN
    assert rule_for("/admin/") is ADMIN


def test_non_ascii_paths_pass_through() -> None:
    assert normalize_path("/café/menü") == "/café/menü"
    assert normalize_path("/caf%C3%A9") == "/café"


def test_leading_dot_segment_names_are_fine() -> None:
    assert normalize_path("/.well-known/openid-configuration") == (
        "/.well-known/openid-configuration"
    )


def test_root() -> None:
    assert normalize_path("/") == "/"
    assert normalize_path("//") == "/"


def test_non_string_is_refused() -> None:
    assert normalize_path(b"/admin") is None  # type: ignore[arg-type]


# -- properties ------------------------------------------------------------------

_PATH_CHARS = st.sampled_from(
    ["/", "\\", ".", "..", "%", "%2e", "%2f", "%25", ";", "a", "admin", "A", " ", "é", "x"]
)
_PATHS = st.lists(_PATH_CHARS, max_size=12).map(lambda parts: "/" + "".join(parts))


@given(_PATHS)
def test_normalize_is_idempotent(path: str) -> None:
    once = normalize_path(path)
    if once is not None:
        assert normalize_path(once) == once


@given(_PATHS)
def test_normalized_paths_are_canonical(path: str) -> None:
    result = normalize_path(path)
    if result is None:
        return
    assert result.startswith("/")
    assert "//" not in result
    assert "\\" not in result
    assert ";" not in result
    assert result == "/" or not result.endswith("/")
    for segment in result.split("/")[1:]:
        assert segment not in (".", "..")
        assert not segment.endswith(".")


@given(st.text(alphabet=string.printable + "\x00\u0085\ud7ff", max_size=30))
def test_normalize_never_fails(path: str) -> None:
    result = normalize_path(path)
    assert result is None or result.startswith("/")


# -- patterns and the table ------------------------------------------------------


def test_parse_pattern() -> None:
    assert parse_pattern("/admin/*") == (True, "/admin")
    assert parse_pattern("/*") == (True, "/")
    assert parse_pattern("/admin") == (False, "/admin")
    assert parse_pattern("/admin/") == (False, "/admin")
    for bad in ("admin", "/api/*/x", "/admin*", "*", "/a/../b", "/a%00", ""):
        with pytest.raises(ValueError):
            parse_pattern(bad)


def test_table_exact_beats_prefix_and_longer_prefix_beats_shorter() -> None:
    table: PathTable[str] = PathTable()
    table.add("/*", "root")
    table.add("/a/*", "a")
    table.add("/a/b/*", "ab")
    table.add("/a/b/c", "exact")
    assert table.lookup("/a/b/c") == "exact"
    assert table.lookup("/a/b/c/d") == "ab"
    assert table.lookup("/a/b") == "ab"
    assert table.lookup("/a/x") == "a"
    assert table.lookup("/z") == "root"
    assert table.lookup("/") == "root"
    assert len(table) == 4


def test_table_without_root_prefix_misses() -> None:
    table: PathTable[str] = PathTable()
    table.add("/a", "a")
    assert table.lookup("/") is None
    assert table.lookup("/a/b") is None


def test_table_duplicates_are_refused() -> None:
    table: PathTable[str] = PathTable()
    table.add("/a", "one")
    with pytest.raises(DuplicatePattern):
        table.add("/a/", "two")
    nocase: PathTable[str] = PathTable(case_sensitive=False)
    nocase.add("/A/*", "one")
    with pytest.raises(DuplicatePattern):
        nocase.add("/a/*", "two")


class _CountingDict(dict[str, str]):
    probes = 0

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        type(self).probes += 1
        return super().get(key, default)


def test_lookup_cost_follows_path_depth_not_rule_count() -> None:
    table: PathTable[str] = PathTable()
    for i in range(5000):
        table.add(f"/team{i}/*", f"t{i}")
        table.add(f"/team{i}/page", f"p{i}")
    counting = _CountingDict(table._prefix)
    table._prefix = counting
    _CountingDict.probes = 0
    assert table.lookup("/x/y/z/w") is None
    # One probe per ancestor (/x/y/z/w, /x/y/z, /x/y, /x) and one for "/".
    assert _CountingDict.probes <= 5


def test_path_patterns() -> None:
    public = PathPatterns(["/health", "/static/*", "/static/*"])
    assert public.patterns == ("/health", "/static/*")
    assert len(public) == 2 and public
    assert public.matches("/health")
    assert public.matches("/health/")
    assert public.matches("/static")
    assert public.matches("/static/app.css")
    assert public.matches("//static//app.css")
    assert not public.matches("/healthz")
    assert not public.matches("/static/../admin")
    assert not public.matches("/Static/app.css")
    assert "PathPatterns" in repr(public)
    assert not PathPatterns([])


def test_path_patterns_single_string_and_case() -> None:
    assert PathPatterns("/health").matches("/health")
    assert PathPatterns(["/Static/*"], case_sensitive=False).matches("/STATIC/x")


def test_path_patterns_invalid_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        PathPatterns(["/ok", "/api/*/x"])
    assert info.value.field == "public_paths"
    assert "/api/*/x" in str(info.value)
