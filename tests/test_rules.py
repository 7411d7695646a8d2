"""The claim-rule engine: selectors, policies, rule sets and loading them from data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from asgi_oidc.errors import ConfigError
from asgi_oidc.principal import Principal
from asgi_oidc.rules import (
    Claim,
    Email,
    EmailDomain,
    Everyone,
    Group,
    Policy,
    RuleSet,
    Selector,
    claim,
    email,
    email_domain,
    email_domain_allowed,
    everyone,
    group,
    load_rules,
)


def person(
    sub: str = "alice",
    email: str | None = "alice@corp.com",
    groups: tuple[str, ...] = (),
    claims: dict[str, Any] | None = None,
    **all_claims: Any,
) -> Principal:
    asserted: dict[str, Any] = {"sub": sub, "iss": "https://idp.example.com", **all_claims}
    if email is not None:
        asserted.setdefault("email", email)
    return Principal(
        sub=sub,
        issuer="https://idp.example.com",
        email=email,
        groups=groups,
        claims=claims or {},
        all_claims=asserted,
    )


DESIGN_DOC = {
    "rules": [
        {"path": "/admin/*", "require": [{"group": "admins"}]},
        {
            "path": "/finance/*",
            "include": [{"email_domain": ["corp.com", "corp.io"]}],
            "require": [{"claim": {"department": ["finance", "exec"]}}],
            "exclude": [{"email": "mallory@corp.com"}],
        },
        {"path": "/lobby", "include": [{"everyone": True}]},
    ]
}

DESIGN_OBJECTS = RuleSet(
    [
        Policy("/admin/*", require=[group("admins")]),
        Policy(
            "/finance/*",
            include=[email_domain("corp.com", "corp.io")],
            require=[claim("department", "finance", "exec")],
            exclude=[email("mallory@corp.com")],
        ),
        Policy("/lobby", include=[everyone()]),
    ]
)

DESIGN_TOML = """
[[rules]]
path = "/admin/*"
require = [{group = "admins"}]

[[rules]]
path = "/finance/*"
include = [{email_domain = ["corp.com", "corp.io"]}]
require = [{claim = {department = ["finance", "exec"]}}]
exclude = [{email = "mallory@corp.com"}]

[[rules]]
path = "/lobby"
include = [{everyone = true}]
"""


# -- selectors -----------------------------------------------------------------


def test_everyone_matches_any_principal() -> None:
    assert everyone().matches(person())
    assert everyone() == Everyone()


def test_email_is_case_insensitive() -> None:
    selector = email("Alice@Corp.com")
    assert selector.matches(person(email="alice@corp.com"))
    assert selector.matches(person(email="ALICE@CORP.COM"))
    assert not selector.matches(person(email="bob@corp.com"))
    assert not selector.matches(person(email=None))


def test_email_accepts_varargs_or_a_list() -> None:
    assert email("a@x.io", "b@x.io") == email(["b@x.io", "a@x.io"])
    assert isinstance(email("a@x.io"), Email)


def test_unverified_email_never_matches() -> None:
    for flag in (False, "false", "FALSE"):
        who = person(email="ceo@corp.com", email_verified=flag)
        assert not email("ceo@corp.com").matches(who)
        assert not email_domain("corp.com").matches(who)
    assert email("ceo@corp.com").matches(person(email="ceo@corp.com", email_verified=True))


def test_email_domain_is_exact_not_suffix() -> None:
    selector = email_domain("corp.com")
    assert selector.matches(person(email="a@corp.com"))
    assert selector.matches(person(email="a@CORP.COM"))
    assert not selector.matches(person(email="a@eu.corp.com"))
    assert not selector.matches(person(email="a@notcorp.com"))
    assert not selector.matches(person(email="a@corp.com.evil.io"))
    assert not selector.matches(person(email=None))


def test_email_domain_uses_the_last_at() -> None:
    assert email_domain("corp.com").matches(person(email='"x@evil.io"@corp.com'))
    assert not email_domain("evil.io").matches(person(email='"x@evil.io"@corp.com'))
    assert not email_domain("corp.com").matches(person(email="corp.com"))


def test_email_domain_leading_at_is_dropped() -> None:
    assert email_domain("@Corp.com") == email_domain("corp.com")
    assert isinstance(email_domain("corp.com"), EmailDomain)


def test_group_is_exact() -> None:
    selector = group("admins", "ops")
    assert selector.matches(person(groups=("users", "ops")))
    assert not selector.matches(person(groups=("Admins",)))
    assert not selector.matches(person(groups=()))
    assert group(["admins", "ops"]) == selector
    assert isinstance(selector, Group)


def test_claim_compares_exactly() -> None:
    who = person(department="finance", level=3, active=True, code="1")
    assert claim("department", "finance").matches(who)
    assert not claim("department", "Finance").matches(who)
    assert claim("level", 3).matches(who)
    assert claim("level", 3.0).matches(who)
    assert not claim("level", "3").matches(who)
    assert claim("active", True).matches(who)
    assert not claim("active", 1).matches(who)
    assert not claim("code", 1).matches(who)
    assert claim("code", "1").matches(who)


def test_claim_true_is_not_one() -> None:
    assert claim("x", True) != claim("x", 1)
    assert not claim("x", 1).matches(person(x=True))
    assert not claim("x", True).matches(person(x=1))


def test_claim_list_valued_matches_any_element() -> None:
    who = person(roles=["viewer", "finance"])
    assert claim("roles", "finance", "exec").matches(who)
    assert not claim("roles", "exec").matches(who)
    assert not claim("roles", "viewer finance").matches(who)


def test_claim_missing_never_matches() -> None:
    assert not claim("department", "finance").matches(person())
    assert not claim("department", "finance").matches(person(department=None))
    assert not claim("department", "finance").matches(person(department={"finance": 1}))


def test_claim_dotted_path_into_nested_claims() -> None:
    who = person(realm_access={"roles": ["admin", "user"]})
    assert claim("realm_access.roles", "admin").matches(who)
    assert not claim("realm_access.roles", "root").matches(who)
    assert not claim("realm_access.missing", "admin").matches(who)


def test_claim_literal_dotted_name_wins() -> None:
    who = Principal(sub="a", issuer="i", all_claims={"https://corp.com/role": "boss"})
    assert claim("https://corp.com/role", "boss").matches(who)


def test_claim_falls_back_to_carried_claims() -> None:
    who = Principal(sub="a", issuer="i", claims={"tier": "gold"}, all_claims={})
    assert claim("tier", "gold").matches(who)


def test_claim_list_and_varargs_are_equal() -> None:
    assert claim("d", "a", "b") == claim("d", ["b", "a"])
    assert claim("d", "a", "a") == claim("d", "a")
    assert hash(claim("d", "a", "b")) == hash(claim("d", ["b", "a"]))
    assert isinstance(claim("d", "a"), Claim)
    assert claim("d", "a", "b").values == ("a", "b")


def test_selector_base_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        Selector().matches(person())


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: group(), "group"),
        (lambda: group(""), "group"),
        (lambda: group(5), "group"),  # type: ignore[arg-type]
        (lambda: email("admins"), "email"),
        (lambda: email("@corp.com"), "email"),
        (lambda: email(), "email"),
        (lambda: email_domain("a@corp.com"), "email_domain"),
        (lambda: email_domain("*"), "email_domain"),
        (lambda: email_domain("@"), "email_domain"),
        (lambda: claim("", "x"), "claim"),
        (lambda: claim("d"), "claim.d"),
        (lambda: claim("d", None), "claim.d"),  # type: ignore[arg-type]
        (lambda: claim("d", float("nan")), "claim.d"),
        (lambda: claim("d", {"a": 1}), "claim.d"),  # type: ignore[arg-type]
    ],
)
def test_bad_selector_arguments_are_config_errors(build: Any, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.field == field


# -- policies ---------------------------------------------------------------------


def test_policy_include_any_require_all_exclude_none() -> None:
    policy = Policy(
        "/finance/*",
        include=[email_domain("corp.com"), email_domain("corp.io")],
        require=[claim("department", "finance"), group("staff")],
        exclude=[email("mallory@corp.com")],
    )
    ok = person(email="a@corp.io", groups=("staff",), department="finance")
    assert policy.allows(ok)
    assert not policy.allows(person(email="a@other.com", groups=("staff",), department="finance"))
    assert not policy.allows(person(email="a@corp.com", groups=(), department="finance"))
    assert not policy.allows(person(email="a@corp.com", groups=("staff",), department="hr"))
    mallory = person(email="mallory@corp.com", groups=("staff",), department="finance")
    assert not policy.allows(mallory)


def test_policy_without_include_needs_only_require() -> None:
    policy = Policy("/admin/*", require=[group("admins")])
    assert policy.allows(person(groups=("admins",)))
    assert not policy.allows(person())


def test_exclude_only_policy_allows_everyone_else() -> None:
    policy = Policy("/x", exclude=[email("mallory@corp.com")])
    assert policy.allows(person())
    assert not policy.allows(person(email="mallory@corp.com"))


def test_exclude_everyone_denies_all() -> None:
    assert not Policy("/x", include=[everyone()], exclude=[everyone()]).allows(person())


def test_empty_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        Policy("/admin/*")
    assert info.value.field == "rules[/admin/*]"
    assert "everyone" in info.value.problem


def test_policy_takes_lists_and_stores_tuples() -> None:
    policy = Policy("/x", include=[everyone()])
    assert policy.include == (everyone(),)
    assert policy == Policy("/x", include=(everyone(),))
    assert hash(policy) == hash(Policy("/x", include=(everyone(),)))
    assert Policy("/x", include=everyone()).include == (everyone(),)  # type: ignore[arg-type]


def test_policy_rejects_non_selectors() -> None:
    with pytest.raises(ConfigError) as info:
        Policy("/x", require=[group("a"), "admins"])  # type: ignore[list-item]
    assert info.value.field == "rules[/x].require[1]"
    with pytest.raises(ConfigError) as info:
        Policy("/x", require="admins")  # type: ignore[arg-type]
    assert info.value.field == "rules[/x].require"
    with pytest.raises(ConfigError):
        Policy("", include=[everyone()])


# -- rule sets -------------------------------------------------------------------


def test_design_document_loads_to_the_python_objects() -> None:
    assert load_rules(DESIGN_DOC) == DESIGN_OBJECTS


def test_most_specific_pattern_wins() -> None:
    exact = Policy("/admin/settings", require=[group("root")])
    long = Policy("/admin/reports/*", require=[group("auditors")])
    short = Policy("/admin/*", require=[group("admins")])
    root = Policy("/*", include=[everyone()])
    rules = RuleSet([root, short, exact, long])
    assert rules.policy_for("/admin/settings") is exact
    assert rules.policy_for("/admin/settings/x") is short
    assert rules.policy_for("/admin/reports/q1") is long
    assert rules.policy_for("/admin/reports") is long
    assert rules.policy_for("/admin") is short
    assert rules.policy_for("/elsewhere") is root
    assert rules.policy_for("/") is root


def test_order_written_never_matters() -> None:
    policies = [
        Policy("/a/*", require=[group("a")]),
        Policy("/a/b/*", require=[group("ab")]),
        Policy("/a/b", require=[group("exact")]),
    ]
    forward, backward = RuleSet(policies), RuleSet(list(reversed(policies)))
    for path in ("/a", "/a/b", "/a/b/c", "/a/x"):
        assert forward.policy_for(path) is backward.policy_for(path)
    assert forward == backward


def test_unmatched_path_has_no_policy() -> None:
    assert DESIGN_OBJECTS.policy_for("/elsewhere") is None
    assert DESIGN_OBJECTS.policy_for("/lobby/inner") is None


def test_exact_pattern_ignores_trailing_slash() -> None:
    assert DESIGN_OBJECTS.policy_for("/lobby/") is DESIGN_OBJECTS.policies[2]


def test_refused_path_raises() -> None:
    with pytest.raises(ValueError):
        DESIGN_OBJECTS.policy_for("/admin/../lobby")


def test_rule_set_len_iter_repr() -> None:
    assert len(DESIGN_OBJECTS) == 3
    assert [p.path for p in DESIGN_OBJECTS] == ["/admin/*", "/finance/*", "/lobby"]
    assert "RuleSet([Policy(path='/admin/*'" in repr(DESIGN_OBJECTS)
    assert RuleSet() != RuleSet(case_sensitive=False)
    assert RuleSet() != "rules"


def test_duplicate_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        RuleSet([Policy("/admin", include=[everyone()]), Policy("/admin/", include=[everyone()])])
    assert info.value.field == "rules[/admin/]"
    assert "rules[/admin]" in info.value.problem


def test_duplicate_pattern_after_case_folding() -> None:
    policies = [Policy("/A/*", include=[everyone()]), Policy("/a/*", include=[everyone()])]
    assert len(RuleSet(policies)) == 2
    with pytest.raises(ConfigError) as info:
        RuleSet(policies, case_sensitive=False)
    assert info.value.field == "rules[/a/*]"


def test_invalid_pattern_in_rule_set() -> None:
    with pytest.raises(ConfigError) as info:
        RuleSet([Policy("/api/*/admin", include=[everyone()])])
    assert info.value.field == "rules[/api/*/admin].path"


def test_rule_set_rejects_non_policies() -> None:
    with pytest.raises(ConfigError) as info:
        RuleSet([{"path": "/x"}])  # type: ignore[list-item]
    assert info.value.field == "rules[0]"
    with pytest.raises(ConfigError):
        RuleSet("/x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        RuleSet(case_sensitive="no")  # type: ignore[arg-type]


# -- load_rules ------------------------------------------------------------------


def test_load_rules_returns_a_rule_set_as_is() -> None:
    assert load_rules(DESIGN_OBJECTS) is DESIGN_OBJECTS


def test_load_rules_takes_a_list_of_policies() -> None:
    assert load_rules(list(DESIGN_OBJECTS)) == DESIGN_OBJECTS
    assert load_rules(DESIGN_DOC["rules"]) == DESIGN_OBJECTS


def test_load_rules_case_sensitive_key() -> None:
    rules = load_rules(
        {"case_sensitive": False, "rules": [{"path": "/A", "include": [{"everyone": True}]}]}
    )
    assert not rules.case_sensitive
    assert rules.policy_for("/a") is not None


def test_load_rules_accepts_selector_objects_inside_data() -> None:
    rules = load_rules({"rules": [{"path": "/x", "require": [group("a")]}]})
    assert rules == RuleSet([Policy("/x", require=[group("a")])])


def test_single_values_and_lists_are_the_same() -> None:
    one = load_rules({"rules": [{"path": "/x", "require": [{"group": "a"}, {"claim": {"n": 1}}]}]})
    many = load_rules(
        {"rules": [{"path": "/x", "require": [{"group": ["a"]}, {"claim": {"n": [1]}}]}]}
    )
    assert one == many


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(DESIGN_DOC), encoding="utf-8")
    assert load_rules(path) == DESIGN_OBJECTS
    assert load_rules(str(path)) == DESIGN_OBJECTS


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(DESIGN_TOML, encoding="utf-8")
    assert load_rules(path) == DESIGN_OBJECTS


def test_json_and_toml_files_give_equal_rules(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps(DESIGN_DOC), encoding="utf-8")
    (tmp_path / "r.TOML").write_text(DESIGN_TOML, encoding="utf-8")
    assert load_rules(tmp_path / "r.json") == load_rules(tmp_path / "r.TOML")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_rules(tmp_path / "nope.json")
    assert info.value.field == "rules"
    assert "nope.json" in info.value.problem


def test_unparsable_json_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text('{"rules": [', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert info.value.field == "rules"
    assert "not valid JSON" in info.value.problem


def test_unparsable_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("[[rules]\npath = ", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert info.value.field == "rules"
    assert "not valid TOML" in info.value.problem


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_bytes(b'{"rules": ["\xff"]}')
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert info.value.field == "rules"


def test_duplicate_json_key_is_refused(tmp_path: Path) -> None:
    # Plain json.loads would keep the second "require" and drop the first.
    path = tmp_path / "rules.json"
    path.write_text(
        '{"rules": [{"path": "/a", "require": [{"group": "admins"}], "require": []}]}',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert "'require' appears twice" in info.value.problem


def test_file_with_wrong_suffix(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules: []", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert ".json or .toml" in info.value.problem


def test_file_holding_a_list(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert info.value.field == "rules"


def test_error_inside_a_file_names_rule_and_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\npath = "/admin/*"\nrequire = [{groups = "admins"}]\n')
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert info.value.field == "rules[/admin/*].require[0].groups"
    assert "rules.toml" in info.value.problem


def test_load_rules_rejects_other_types() -> None:
    with pytest.raises(ConfigError) as info:
        load_rules(42)
    assert info.value.field == "rules"


def _doc(rule: dict[str, Any]) -> dict[str, Any]:
    return {"rules": [rule]}


def _admin(**selectors: Any) -> dict[str, Any]:
    return _doc({"path": "/admin/*", **selectors})


# (document, the field the error must name, the key the message must name)
BAD_RULES: list[tuple[str, Any, str, str]] = [
    ("unknown_rule_key", _admin(requires=[{"group": "a"}]), "rules[/admin/*].requires", "requires"),
    ("include_not_a_list", _admin(include={"group": "a"}), "rules[/admin/*].include", "include"),
    ("require_a_string", _admin(require="admins"), "rules[/admin/*].require", "require"),
    ("selector_not_object", _admin(require=["admins"]), "rules[/admin/*].require[0]", "require"),
    ("empty_selector", _admin(require=[{}]), "rules[/admin/*].require[0]", "require"),
    (
        "two_selectors",
        _admin(require=[{"group": "a", "email": "b@c.d"}]),
        "rules[/admin/*].require[0]",
        "require",
    ),
    (
        "unknown_selector",
        _admin(require=[{"groups": "a"}]),
        "rules[/admin/*].require[0].groups",
        "groups",
    ),
    (
        "group_wrong_type",
        _admin(require=[{"group": 5}]),
        "rules[/admin/*].require[0].group",
        "group",
    ),
    (
        "group_empty_list",
        _admin(require=[{"group": []}]),
        "rules[/admin/*].require[0].group",
        "group",
    ),
    (
        "group_empty_string",
        _admin(require=[{"group": ""}]),
        "rules[/admin/*].require[0].group",
        "group",
    ),
    (
        "group_list_of_non_strings",
        _admin(require=[{"group": ["a", 1]}]),
        "rules[/admin/*].require[0].group",
        "group",
    ),
    (
        "email_not_an_address",
        _admin(include=[{"email": "bob"}]),
        "rules[/admin/*].include[0].email",
        "email",
    ),
    (
        "email_domain_with_at",
        _admin(include=[{"email_domain": "a@corp.com"}]),
        "rules[/admin/*].include[0].email_domain",
        "email_domain",
    ),
    (
        "email_domain_empty_list",
        _admin(include=[{"email_domain": []}]),
        "rules[/admin/*].include[0].email_domain",
        "email_domain",
    ),
    (
        "everyone_false",
        _admin(include=[{"everyone": False}]),
        "rules[/admin/*].include[0].everyone",
        "everyone",
    ),
    (
        "everyone_string",
        _admin(include=[{"everyone": "yes"}]),
        "rules[/admin/*].include[0].everyone",
        "everyone",
    ),
    (
        "claim_not_object",
        _admin(require=[{"claim": "department"}]),
        "rules[/admin/*].require[0].claim",
        "claim",
    ),
    (
        "claim_empty_object",
        _admin(require=[{"claim": {}}]),
        "rules[/admin/*].require[0].claim",
        "claim",
    ),
    (
        "claim_two_names",
        _admin(require=[{"claim": {"a": "1", "b": "2"}}]),
        "rules[/admin/*].require[0].claim",
        "claim",
    ),
    (
        "claim_value_null",
        _admin(require=[{"claim": {"department": None}}]),
        "rules[/admin/*].require[0].claim.department",
        "department",
    ),
    (
        "claim_empty_values",
        _admin(require=[{"claim": {"department": []}}]),
        "rules[/admin/*].require[0].claim.department",
        "department",
    ),
    (
        "claim_nested_list",
        _admin(require=[{"claim": {"department": ["a", ["b"]]}}]),
        "rules[/admin/*].require[0].claim.department",
        "department",
    ),
    (
        "claim_object_value",
        _admin(require=[{"claim": {"department": {"x": 1}}}]),
        "rules[/admin/*].require[0].claim.department",
        "department",
    ),
    (
        "exclude_bad_selector",
        _admin(exclude=[{"emial": "x@y.z"}]),
        "rules[/admin/*].exclude[0].emial",
        "emial",
    ),
    ("empty_policy", _admin(), "rules[/admin/*]", "everyone"),
    ("empty_lists_policy", _admin(include=[], require=[]), "rules[/admin/*]", "everyone"),
    (
        "second_selector_bad",
        _admin(require=[{"group": "a"}, {"group": 1}]),
        "rules[/admin/*].require[1].group",
        "group",
    ),
    (
        "invalid_wildcard",
        _doc({"path": "/admin/*/x", "include": [{"everyone": True}]}),
        "rules[/admin/*/x].path",
        "path",
    ),
    (
        "dot_segment_path",
        _doc({"path": "/public/../admin", "include": [{"everyone": True}]}),
        "rules[/public/../admin].path",
        "path",
    ),
    (
        "duplicate_path",
        {
            "rules": [
                {"path": "/admin/*", "include": [{"everyone": True}]},
                {"path": "/admin/*", "require": [{"group": "a"}]},
            ]
        },
        "rules[/admin/*]",
        "twice",
    ),
]


@pytest.mark.parametrize(
    ("document", "field", "key"),
    [pytest.param(doc, field, key, id=name) for name, doc, field, key in BAD_RULES],
)
def test_bad_rule_names_the_rule_and_the_key(document: Any, field: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_rules(document)
    assert info.value.field == field
    message = str(info.value)
    assert "rules[/admin/" in message or "rules[/public/" in message
    assert key in message


@pytest.mark.parametrize(
    ("document", "field", "needle"),
    [
        pytest.param({"rules": [], "version": 2}, "rules", "version", id="unknown_top_level_key"),
        pytest.param({}, "rules", "'rules'", id="missing_rules"),
        pytest.param({"rules": {"path": "/x"}}, "rules", "list", id="rules_not_a_list"),
        pytest.param({"rules": ["/x"]}, "rules[0]", "path", id="rule_not_object"),
        pytest.param({"rules": [{"include": []}]}, "rules[0].path", "required", id="missing_path"),
        pytest.param({"rules": [{"path": 5}]}, "rules[0].path", "'/'", id="path_not_string"),
        pytest.param({"rules": [{"path": "admin"}]}, "rules[0].path", "'/'", id="path_no_slash"),
        pytest.param(
            {"rules": [], "case_sensitive": "no"},
            "rules.case_sensitive",
            "true",
            id="bad_case_flag",
        ),
    ],
)
def test_bad_document_shape(document: Any, field: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_rules(document)
    assert info.value.field == field
    assert needle in str(info.value)


def test_empty_rules_list_is_fine() -> None:
    assert len(load_rules({"rules": []})) == 0


# -- email_domains ---------------------------------------------------------------


def test_email_domain_allowed() -> None:
    alice = person(email="alice@Corp.com")
    assert email_domain_allowed(alice, ())
    assert email_domain_allowed(alice, ("*",))
    assert email_domain_allowed(alice, ("corp.com",))
    assert email_domain_allowed(alice, ("other.io", "@CORP.COM"))
    assert not email_domain_allowed(alice, ("other.io",))
    assert not email_domain_allowed(alice, ("orp.com",))
    assert not email_domain_allowed(person(email="a@eu.corp.com"), ("corp.com",))
    assert not email_domain_allowed(person(email=None), ("corp.com",))
    assert email_domain_allowed(person(email=None), ("*",))


def test_email_domain_allowed_refuses_unverified_email() -> None:
    who = person(email="a@corp.com", email_verified=False)
    assert not email_domain_allowed(who, ("corp.com",))
    assert email_domain_allowed(person(email="a@corp.com", email_verified=True), ("corp.com",))
