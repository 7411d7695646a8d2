"""Properties of the rule engine, checked with hypothesis.

Rules are drawn as small specifications from which both the data shape (what
a JSON or TOML file holds) and the Python objects are built, so the two can
be compared; decisions are compared with a brute-force reference model.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from asgi_oidc.principal import Principal
from asgi_oidc.rules import (
    Policy,
    RuleSet,
    Selector,
    claim,
    email,
    email_domain,
    everyone,
    group,
    load_rules,
)

# -- strategies ------------------------------------------------------------------

LOCALS = ["alice", "bob", "Mallory"]
DOMAINS = ["corp.com", "CORP.io", "other.org"]
GROUPS = ["admins", "staff", "Admins"]
DEPARTMENTS = ["finance", "exec", "hr"]

addresses = st.builds(
    lambda local, domain: f"{local}@{domain}", st.sampled_from(LOCALS), st.sampled_from(DOMAINS)
)
claim_values = st.one_of(st.sampled_from(DEPARTMENTS), st.integers(0, 2), st.booleans())


@st.composite
def principals(draw: st.DrawFn) -> Principal:
    address = draw(st.none() | addresses)
    claims: dict[str, Any] = {"sub": "s", "iss": "https://idp"}
    if address is not None:
        claims["email"] = address
    if draw(st.booleans()):
        claims["department"] = draw(claim_values | st.lists(claim_values, max_size=3))
    if draw(st.booleans()):
        claims["email_verified"] = draw(st.booleans())
    return Principal(
        sub="s",
        issuer="https://idp",
        email=address,
        groups=tuple(draw(st.lists(st.sampled_from(GROUPS), max_size=3, unique=True))),
        all_claims=claims,
    )


# A selector spec: (data, object).
SelectorSpec = tuple[dict[str, Any], Selector]


def _one_or_list(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


selector_specs: st.SearchStrategy[SelectorSpec] = st.one_of(
    st.just(({"everyone": True}, everyone())),
    st.lists(addresses, min_size=1, max_size=3).map(
        lambda v: ({"email": _one_or_list(v)}, email(*v))
    ),
    st.lists(st.sampled_from(DOMAINS), min_size=1, max_size=3).map(
        lambda v: ({"email_domain": _one_or_list(v)}, email_domain(*v))
    ),
    st.lists(st.sampled_from(GROUPS), min_size=1, max_size=3).map(
        lambda v: ({"group": _one_or_list(v)}, group(*v))
    ),
    st.lists(claim_values, min_size=1, max_size=3).map(
        lambda v: ({"claim": {"department": _one_or_list(v)}}, claim("department", v))
    ),
)

SEGMENTS = ["a", "b", "admin", "Admin"]
paths = st.lists(st.sampled_from(SEGMENTS), max_size=4).map(lambda s: "/" + "/".join(s))
patterns = st.one_of(paths, paths.map(lambda p: "/*" if p == "/" else p + "/*"))

PolicySpec = tuple[dict[str, Any], Policy]


@st.composite
def policy_specs(draw: st.DrawFn, path: str | None = None) -> PolicySpec:
    pattern = draw(patterns) if path is None else path
    parts: dict[str, list[SelectorSpec]] = {
        name: draw(st.lists(selector_specs, max_size=2))
        for name in ("include", "require", "exclude")
    }
    if not any(parts.values()):
        parts["include"] = [draw(selector_specs)]
    data: dict[str, Any] = {"path": pattern}
    data.update({name: [d for d, _ in specs] for name, specs in parts.items() if specs})
    policy = Policy(pattern, **{name: [o for _, o in specs] for name, specs in parts.items()})
    return data, policy


@st.composite
def rule_set_specs(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[Policy]]:
    chosen = draw(st.lists(patterns, max_size=6, unique=True))
    specs = [draw(policy_specs(path=p)) for p in chosen]
    return [d for d, _ in specs], [o for _, o in specs]


# -- the reference model ---------------------------------------------------------


def ref_matches(pattern: str, path: str) -> bool:
    if pattern.endswith("*"):
        base = pattern[:-2] or "/"
        return base == "/" or path == base or path.startswith(base + "/")
    return path == pattern


def ref_policy_for(policies: list[Policy], path: str) -> Policy | None:
    """Scan everything: exact first, else the longest matching prefix."""
    for policy in policies:
        if not policy.path.endswith("*") and ref_matches(policy.path, path):
            return policy
    best: Policy | None = None
    for policy in policies:
        if (
            policy.path.endswith("*")
            and ref_matches(policy.path, path)
            and (best is None or len(policy.path) > len(best.path))
        ):
            best = policy
    return best


def ref_allows(policy: Policy, who: Principal) -> bool:
    include_ok = not policy.include or any(s.matches(who) for s in policy.include)
    return (
        include_ok
        and all(s.matches(who) for s in policy.require)
        and not any(s.matches(who) for s in policy.exclude)
    )


# -- properties ------------------------------------------------------------------


@given(rule_set_specs(), st.lists(st.tuples(paths, principals()), max_size=5))
def test_data_shape_and_python_objects_agree(
    spec: tuple[list[dict[str, Any]], list[Policy]], probes: list[tuple[str, Principal]]
) -> None:
    data, objects = spec
    from_data, from_objects = load_rules({"rules": data}), RuleSet(objects)
    assert from_data == from_objects
    for path, who in probes:
        a, b = from_data.policy_for(path), from_objects.policy_for(path)
        assert a == b
        if a is not None and b is not None:
            assert a.allows(who) == b.allows(who)


@given(policy_specs(), principals())
def test_allows_follows_the_definition(spec: PolicySpec, who: Principal) -> None:
    _, policy = spec
    assert policy.allows(who) == ref_allows(policy, who)


@given(policy_specs(), principals())
def test_exclude_always_wins(spec: PolicySpec, who: Principal) -> None:
    _, policy = spec
    if any(s.matches(who) for s in policy.exclude):
        assert not policy.allows(who)
    widened = Policy(
        policy.path,
        include=[*policy.include, everyone()],
        require=[],
        exclude=[*policy.exclude, everyone()],
    )
    assert not widened.allows(who)


@given(policy_specs(), principals())
def test_no_matching_include_or_require_never_allows(spec: PolicySpec, who: Principal) -> None:
    _, policy = spec
    selectors = [*policy.include, *policy.require]
    if selectors and not any(s.matches(who) for s in selectors):
        assert not policy.allows(who)


@given(rule_set_specs(), paths)
def test_lookup_agrees_with_a_full_scan(
    spec: tuple[list[dict[str, Any]], list[Policy]], path: str
) -> None:
    _, policies = spec
    assert RuleSet(policies).policy_for(path) == ref_policy_for(policies, path)


@given(rule_set_specs(), st.randoms(use_true_random=False), paths)
def test_order_never_matters(
    spec: tuple[list[dict[str, Any]], list[Policy]], rnd: Any, path: str
) -> None:
    _, policies = spec
    shuffled = list(policies)
    rnd.shuffle(shuffled)
    assert RuleSet(policies).policy_for(path) == RuleSet(shuffled).policy_for(path)


@given(rule_set_specs(), policy_specs(), st.lists(paths, min_size=1, max_size=8))
def test_adding_a_rule_leaves_other_paths_alone(
    spec: tuple[list[dict[str, Any]], list[Policy]], extra: PolicySpec, probes: list[str]
) -> None:
    _, policies = spec
    _, added = extra
    if any(p.path == added.path for p in policies):
        return
    before, after = RuleSet(policies), RuleSet([*policies, added])
    for path in probes:
        if not ref_matches(added.path, path):
            assert after.policy_for(path) == before.policy_for(path)
        else:
            # Where it does match, the new rule decides or a more specific one does.
            chosen = after.policy_for(path)
            assert chosen is not None


def _fold_unique(policies: list[Policy]) -> list[Policy]:
    seen: set[str] = set()
    kept = []
    for policy in policies:
        if policy.path.lower() not in seen:
            seen.add(policy.path.lower())
            kept.append(policy)
    return kept


@given(rule_set_specs(), paths)
def test_case_insensitive_ignores_case(
    spec: tuple[list[dict[str, Any]], list[Policy]], path: str
) -> None:
    _, policies = spec
    nocase = RuleSet(_fold_unique(policies), case_sensitive=False)
    assert nocase.policy_for(path.upper()) == nocase.policy_for(path.lower())
