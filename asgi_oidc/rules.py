"""Declarative claim rules: which signed-in principals may reach which paths.

The model is Cloudflare Access's. A :class:`Policy` has ``include`` (any may
match), ``require`` (all must match) and ``exclude`` (none may match), built
from selectors: :func:`everyone`, :func:`email`, :func:`email_domain`,
:func:`group` and :func:`claim`. A :class:`RuleSet` maps path patterns to
policies; the most specific pattern wins::

    from asgi_oidc.rules import Policy, RuleSet, claim, email, email_domain, group

    rules = RuleSet([
        Policy("/admin/*", require=[group("admins")]),
        Policy("/finance/*", include=[email_domain("corp.com", "corp.io")],
               require=[claim("department", "finance", "exec")],
               exclude=[email("mallory@corp.com")]),
    ])

The same rules as data, for JSON or TOML files and for
``OIDCMiddleware(rules=…)``, go through :func:`load_rules`::

    {"rules": [
      {"path": "/admin/*", "require": [{"group": "admins"}]},
      {"path": "/finance/*", "include": [{"email_domain": ["corp.com", "corp.io"]}],
                             "require": [{"claim": {"department": ["finance", "exec"]}}],
                             "exclude": [{"email": "mallory@corp.com"}]}
    ]}

A document that does not parse raises :class:`~asgi_oidc.errors.ConfigError`
whose ``field`` names the rule and the key, as in
``rules[/admin/*].require[0].group``.

Paths are matched after :func:`normalize_path` (see :mod:`asgi_oidc._paths`).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from ._paths import DuplicatePattern, PathPatterns, PathTable, normalize_path, parse_pattern
from .errors import ConfigError
from .principal import Principal, claim_at

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "Claim",
    "ClaimValue",
    "Email",
    "EmailDomain",
    "Everyone",
    "Group",
    "PathPatterns",
    "Policy",
    "RuleSet",
    "Selector",
    "claim",
    "email",
    "email_domain",
    "email_domain_allowed",
    "everyone",
    "group",
    "load_rules",
    "normalize_path",
]

#: A value a :func:`claim` selector compares with.
ClaimValue: TypeAlias = str | int | float | bool


# -- selectors ---------------------------------------------------------------


class Selector:
    """Something a principal matches or not; subclass it for custom selectors."""

    __slots__ = ()

    def matches(self, principal: Principal) -> bool:
        """Whether ``principal`` is selected."""
        raise NotImplementedError


def _verified_email(principal: Principal) -> str | None:
    """The principal's email, lower-cased, unless the provider says it is unverified.

    An address the provider marks ``email_verified: false`` is one the user
    typed and nobody checked; matching on it would let anyone claim
    ``ceo@corp.com``.
    """
    address = principal.email
    if not address:
        return None
    verified = principal.all_claims.get("email_verified")
    if verified is False or (isinstance(verified, str) and verified.lower() == "false"):
        return None
    return address.lower()


def _domain_of(address: str) -> str | None:
    local, at, domain = address.rpartition("@")
    return domain if at and local and domain else None


@dataclass(frozen=True, slots=True)
class Everyone(Selector):
    """Every signed-in principal. Build it with :func:`everyone`."""

    def matches(self, principal: Principal) -> bool:
        """Always ``True``."""
        return True


@dataclass(frozen=True, slots=True)
class Email(Selector):
    """Principals whose (verified) email is one of ``addresses``, ignoring case.

    Build it with :func:`email`.
    """

    addresses: frozenset[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "addresses", _emails(self.addresses))

    def matches(self, principal: Principal) -> bool:
        """Whether the principal's email is listed."""
        address = _verified_email(principal)
        return address is not None and address in self.addresses


@dataclass(frozen=True, slots=True)
class EmailDomain(Selector):
    """Principals whose (verified) email is at one of ``domains``, ignoring case.

    The domain is the part after the last ``@`` and must be equal to a listed
    domain: ``corp.com`` does not select ``a@eu.corp.com``. Build it with
    :func:`email_domain`.
    """

    domains: frozenset[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "domains", _domains(self.domains))

    def matches(self, principal: Principal) -> bool:
        """Whether the principal's email domain is listed."""
        address = _verified_email(principal)
        domain = _domain_of(address) if address else None
        return domain is not None and domain in self.domains


@dataclass(frozen=True, slots=True)
class Group(Selector):
    """Principals in any of the groups ``names`` (exact, case-sensitive).

    Groups are ``Principal.groups``, read from the ``groups_claim``. Build it
    with :func:`group`.
    """

    names: frozenset[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", _strings("group", self.names, "group names"))

    def matches(self, principal: Principal) -> bool:
        """Whether the principal is in one of the groups."""
        return not self.names.isdisjoint(principal.groups)


def _value_key(value: object) -> tuple[str, object] | None:
    """A key that compares values exactly: ``True`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, str):
        return ("str", value)
    return None


@dataclass(frozen=True, slots=True)
class Claim(Selector):
    """Principals whose claim ``name`` equals one of ``values``.

    ``name`` may be a dotted path into nested claims (``realm_access.roles``).
    The claim is read from every claim the provider asserted
    (``Principal.all_claims``), else from ``Principal.claims``. A list-valued
    claim matches when any element matches; a missing claim never matches.
    Values compare exactly (``"1"`` is not ``1``, ``true`` is not ``1``).
    Build it with :func:`claim`.
    """

    name: str
    values: tuple[ClaimValue, ...]
    _keys: frozenset[tuple[str, object]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("claim", "the claim name must be a non-empty string")
        values = _flatten(self.values)
        where = f"claim.{self.name}"
        if not values:
            raise ConfigError(where, "is empty: list at least one value")
        keys: dict[tuple[str, object], ClaimValue] = {}
        for value in values:
            key = _value_key(value)
            if key is None:
                raise ConfigError(
                    where, f"values must be strings, numbers or booleans, not {_kind(value)}"
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(where, "values must be finite numbers")
            keys.setdefault(key, value)
        object.__setattr__(self, "values", tuple(keys.values()))
        # Equality and hashing go by the keys, so order and repeats do not
        # matter and True never equals 1 the way it does in a tuple.
        object.__setattr__(self, "_keys", frozenset(keys))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Claim):
            return NotImplemented
        return self.name == other.name and self._keys == other._keys

    def __hash__(self) -> int:
        return hash((Claim, self.name, self._keys))

    def matches(self, principal: Principal) -> bool:
        """Whether the claim (or any element of it) is one of the values."""
        value = claim_at(principal.all_claims, self.name)
        if value is None:
            value = claim_at(principal.claims, self.name)
        if isinstance(value, (list, tuple)):
            return any(_value_key(item) in self._keys for item in value)
        return _value_key(value) in self._keys


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _flatten(values: Iterable[Any]) -> list[Any]:
    """``("a", "b")`` or ``(["a", "b"],)`` → ``["a", "b"]``: varargs or one list.

    Only a single list argument is unpacked, so a list nested inside values
    stays and is refused as the wrong type.
    """
    if isinstance(values, (str, bytes)):
        return [values]
    items = list(values)
    if len(items) == 1 and isinstance(items[0], (list, tuple, set, frozenset)):
        return list(items[0])
    return items


def _strings(kind: str, values: Iterable[Any], what: str) -> frozenset[str]:
    flat = _flatten(values)
    if not flat:
        raise ConfigError(kind, f"is empty: list at least one of the {what}")
    for value in flat:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                kind, f"must be a non-empty string or a list of them, not {_kind(value)}"
            )
    return frozenset(flat)


def _emails(values: Iterable[Any]) -> frozenset[str]:
    addresses = _strings("email", values, "email addresses")
    for address in addresses:
        if _domain_of(address) is None:
            raise ConfigError("email", f"{address!r} is not an email address")
    return frozenset(a.lower() for a in addresses)


def _domains(values: Iterable[Any]) -> frozenset[str]:
    domains = set()
    for domain in _strings("email_domain", values, "domains"):
        # "@corp.com" is a common way to write it; the domain is what follows.
        bare = domain[1:] if domain.startswith("@") else domain
        if not bare or "@" in bare or "*" in bare:
            raise ConfigError(
                "email_domain",
                f"{domain!r} is not a domain (to allow any domain, use everyone)",
            )
        domains.add(bare.lower())
    return frozenset(domains)


def everyone() -> Everyone:
    """Select every signed-in principal (``{"everyone": true}``)."""
    return Everyone()


def email(*addresses: str | Sequence[str]) -> Email:
    """Select principals by email address, ignoring case (``{"email": […]}``).

    ``email("a@corp.com", "b@corp.com")`` and ``email(["a@corp.com"])`` both
    work. An address the provider marks ``email_verified: false`` never
    matches.
    """
    return Email(_emails(addresses))


def email_domain(*domains: str | Sequence[str]) -> EmailDomain:
    """Select principals by the domain of their email (``{"email_domain": […]}``).

    Exact domains, ignoring case; a leading ``@`` is allowed and dropped.
    Subdomains are not included: list them.
    """
    return EmailDomain(_domains(domains))


def group(*names: str | Sequence[str]) -> Group:
    """Select principals in any of the groups (``{"group": […]}``)."""
    return Group(_strings("group", names, "group names"))


def claim(name: str, *values: ClaimValue | Sequence[ClaimValue]) -> Claim:
    """Select principals whose claim ``name`` is one of ``values``.

    ``claim("department", "finance", "exec")`` and
    ``claim("department", ["finance", "exec"])`` are the same, as is
    ``{"claim": {"department": ["finance", "exec"]}}``. ``name`` may be a
    dotted path (``realm_access.roles``).
    """
    return Claim(name, tuple(_flatten(values)))


# -- policies and rule sets ----------------------------------------------------


def _selectors(label: str, name: str, value: Any) -> tuple[Selector, ...]:
    if isinstance(value, Selector):
        return (value,)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ConfigError(f"{label}.{name}", "must be a list of selectors")
    items = tuple(value)
    for index, item in enumerate(items):
        if not isinstance(item, Selector):
            raise ConfigError(
                f"{label}.{name}[{index}]",
                f"must be a selector (everyone(), email(), group(), …), not {_kind(item)}",
            )
    return items


@dataclass(frozen=True, slots=True)
class Policy:
    """Who may reach ``path``: allowed when (``include`` is empty or any of it
    matches) and all of ``require`` matches and none of ``exclude`` matches.

    ``path`` is ``/exact/path``, ``/prefix/*`` (the prefix itself and all
    below) or ``/*``; it is checked as a pattern when the policy goes into a
    :class:`RuleSet` (a per-route guard's policy has a label there instead).
    A policy with no selector at all is refused: write
    ``include=[everyone()]`` to allow any signed-in user.
    """

    path: str
    include: Sequence[Selector] = ()
    require: Sequence[Selector] = ()
    exclude: Sequence[Selector] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ConfigError("rules[?].path", "must be a non-empty string")
        label = f"rules[{self.path}]"
        for name in ("include", "require", "exclude"):
            object.__setattr__(self, name, _selectors(label, name, getattr(self, name)))
        if not (self.include or self.require or self.exclude):
            raise ConfigError(
                label,
                "has no include, require or exclude selector; write "
                '{"everyone": true} (everyone()) to allow any signed-in user',
            )

    def allows(self, principal: Principal) -> bool:
        """Whether ``principal`` may reach the paths of this policy."""
        for selector in self.exclude:
            if selector.matches(principal):
                return False
        for selector in self.require:
            if not selector.matches(principal):
                return False
        if self.include:
            return any(selector.matches(principal) for selector in self.include)
        return True


class RuleSet:
    """Policies by path pattern; :meth:`policy_for` finds the one for a path.

    The most specific pattern wins: an exact path over any ``/prefix/*``, a
    longer prefix over a shorter one; the order the policies are given in
    never matters, and two policies for the same pattern (after
    normalization) are a :class:`~asgi_oidc.errors.ConfigError`. With
    ``case_sensitive=False`` paths and patterns are compared lower-cased, for
    apps served from case-insensitive file systems. A lookup costs one
    dictionary probe per path segment, however many rules there are.
    """

    __slots__ = ("_by_pattern", "_case_sensitive", "_policies", "_table")

    def __init__(self, policies: Iterable[Policy] = (), *, case_sensitive: bool = True) -> None:
        if isinstance(policies, (str, bytes, Mapping)) or not isinstance(policies, Iterable):
            raise ConfigError("rules", "RuleSet takes Policy objects; use load_rules() for data")
        if not isinstance(case_sensitive, bool):
            raise ConfigError("rules.case_sensitive", "must be true or false")
        table: PathTable[Policy] = PathTable(case_sensitive=case_sensitive)
        by_pattern: dict[tuple[bool, str], Policy] = {}
        kept: list[Policy] = []
        for index, policy in enumerate(policies):
            if not isinstance(policy, Policy):
                raise ConfigError(f"rules[{index}]", f"must be a Policy, not {_kind(policy)}")
            try:
                is_prefix, key = parse_pattern(policy.path)
            except ValueError as exc:
                raise ConfigError(f"rules[{policy.path}].path", str(exc)) from None
            pattern = (is_prefix, key if case_sensitive else key.lower())
            try:
                table.add(policy.path, policy)
            except DuplicatePattern:
                raise ConfigError(
                    f"rules[{policy.path}]",
                    f"the path is given twice (same pattern as rules[{by_pattern[pattern].path}])",
                ) from None
            by_pattern[pattern] = policy
            kept.append(policy)
        self._table = table
        self._by_pattern = by_pattern
        self._policies = tuple(kept)
        self._case_sensitive = case_sensitive

    @property
    def policies(self) -> tuple[Policy, ...]:
        """The policies, in the order given."""
        return self._policies

    @property
    def case_sensitive(self) -> bool:
        """Whether paths are compared case-sensitively."""
        return self._case_sensitive

    def policy_for(self, path: str) -> Policy | None:
        """The policy of the most specific pattern matching ``path``, or ``None``.

        ``path`` is normalized first (:func:`normalize_path`; cheap for a path
        that already is). A path it refuses raises :class:`ValueError`: answer
        such a request 400 before asking.
        """
        normalized = normalize_path(path)
        if normalized is None:
            raise ValueError("normalize_path refuses this path; answer 400")
        return self._table.lookup(normalized)

    def policy_for_normalized(self, path: str) -> Policy | None:
        """:meth:`policy_for` for a :func:`normalize_path` result (no second normalization)."""
        return self._table.lookup(path)

    def __len__(self) -> int:
        return len(self._policies)

    def __iter__(self) -> Iterator[Policy]:
        return iter(self._policies)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RuleSet):
            return NotImplemented
        return (
            self._case_sensitive == other._case_sensitive and self._by_pattern == other._by_pattern
        )

    def __repr__(self) -> str:
        return f"RuleSet({list(self._policies)!r}, case_sensitive={self._case_sensitive})"


# -- loading rules from data ----------------------------------------------------


def _selector_from_data(item: Any, where: str) -> Selector:
    if isinstance(item, Selector):
        return item
    if not isinstance(item, Mapping):
        raise ConfigError(
            where,
            f'must be an object with one selector, like {{"group": "admins"}}, not {_kind(item)}',
        )
    if not item:
        raise ConfigError(where, 'is empty: name one selector, like {"group": "admins"}')
    if len(item) > 1:
        names = ", ".join(sorted(str(k) for k in item))
        raise ConfigError(
            where, f"has {len(item)} selectors ({names}); write one selector per object"
        )
    ((kind, value),) = item.items()
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise ConfigError(
            f"{where}.{kind}", f"is not a selector; expected one of {', '.join(_BUILDERS)}"
        )
    try:
        return builder(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc.field}", exc.problem) from None


def _everyone_from_data(value: Any) -> Selector:
    if value is not True:
        raise ConfigError(
            "everyone", "must be true (to let nobody in, exclude everyone or drop the path)"
        )
    return everyone()


def _list_from_data(kind: str, value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return [value]
    raise ConfigError(kind, f"must be a string or a list of strings, not {_kind(value)}")


def _claim_from_data(value: Any) -> Selector:
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(
            "claim", 'must be an object naming one claim, like {"department": ["finance"]}'
        )
    if len(value) > 1:
        names = ", ".join(sorted(str(k) for k in value))
        raise ConfigError("claim", f"names {len(value)} claims ({names}); write one per selector")
    ((name, values),) = value.items()
    return claim(name, values)


_BUILDERS: dict[str, Callable[[Any], Selector]] = {
    "everyone": _everyone_from_data,
    "email": lambda value: email(*_list_from_data("email", value)),
    "email_domain": lambda value: email_domain(*_list_from_data("email_domain", value)),
    "group": lambda value: group(*_list_from_data("group", value)),
    "claim": _claim_from_data,
}

_RULE_KEYS = ("path", "include", "require", "exclude")


def _policy_from_data(item: Any, index: int) -> Policy:
    if isinstance(item, Policy):
        return item
    if not isinstance(item, Mapping):
        raise ConfigError(f"rules[{index}]", f"must be an object with a path, not {_kind(item)}")
    if "path" not in item:
        raise ConfigError(f"rules[{index}].path", "is required")
    path = item["path"]
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError(f"rules[{index}].path", "must be a string starting with '/'")
    label = f"rules[{path}]"
    try:
        parse_pattern(path)
    except ValueError as exc:
        raise ConfigError(f"{label}.path", str(exc)) from None
    for key in item:
        if key not in _RULE_KEYS:
            raise ConfigError(
                f"{label}.{key}", f"is not a rule key; expected one of {', '.join(_RULE_KEYS)}"
            )
    parts: dict[str, tuple[Selector, ...]] = {}
    for name in ("include", "require", "exclude"):
        raw = item.get(name, ())
        if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, (list, tuple)):
            raise ConfigError(
                f"{label}.{name}", 'must be a list of selectors, like [{"group": "admins"}]'
            )
        parts[name] = tuple(
            _selector_from_data(selector, f"{label}.{name}[{i}]") for i, selector in enumerate(raw)
        )
    return Policy(path, **parts)


def _rules_from_mapping(data: Mapping[str, Any]) -> RuleSet:
    for key in data:
        if key not in ("rules", "case_sensitive"):
            raise ConfigError(
                "rules", f"unknown top-level key {key!r}; expected 'rules' (and 'case_sensitive')"
            )
    if "rules" not in data:
        raise ConfigError("rules", "the document has no 'rules' list")
    items = data["rules"]
    if not isinstance(items, (list, tuple)):
        raise ConfigError("rules", f"'rules' must be a list of rules, not {_kind(items)}")
    case_sensitive = data.get("case_sensitive", True)
    if not isinstance(case_sensitive, bool):
        raise ConfigError("rules.case_sensitive", "must be true or false")
    return RuleSet(
        [_policy_from_data(item, i) for i, item in enumerate(items)],
        case_sensitive=case_sensitive,
    )


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; a second "require" that
    # silently replaced the first would drop a check.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ConfigError("rules", f"the key {key!r} appears twice in one JSON object")
        result[key] = value
    return result


def _rules_from_file(path: Path) -> RuleSet:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ConfigError("rules", f"{str(path)!r}: a rules file must end in .json or .toml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError("rules", f"{str(path)!r} cannot be read ({reason})") from None
    data: Any
    try:
        if suffix == ".json":
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        else:
            data = tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            "rules", f"{str(path)!r} is not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("rules", f"{str(path)!r} is not valid TOML ({exc})") from None
    except ConfigError as exc:
        raise ConfigError(exc.field, f"{exc.problem} (in {str(path)!r})") from None
    if not isinstance(data, Mapping):
        raise ConfigError("rules", f"{str(path)!r} must hold an object with a 'rules' list")
    try:
        return _rules_from_mapping(data)
    except ConfigError as exc:
        raise ConfigError(exc.field, f"{exc.problem} (in {str(path)!r})") from None


def load_rules(value: Any) -> RuleSet:
    """Build a :class:`RuleSet` from any of the accepted shapes.

    - a :class:`RuleSet` (returned as is);
    - a list of :class:`Policy` objects (or rule mappings);
    - a mapping ``{"rules": [...], "case_sensitive": true}`` in the shape of
      the module docstring;
    - a ``str`` or :class:`os.PathLike` naming a ``.json`` or ``.toml`` file
      holding that mapping (TOML: ``[[rules]]`` tables).

    Anything that does not parse raises :class:`~asgi_oidc.errors.ConfigError`
    whose ``field`` names the rule by its path and the key at fault.
    """
    if isinstance(value, RuleSet):
        return value
    if isinstance(value, (str, os.PathLike)):
        return _rules_from_file(Path(value))
    if isinstance(value, Mapping):
        return _rules_from_mapping(value)
    if isinstance(value, (list, tuple)):
        return RuleSet([_policy_from_data(item, i) for i, item in enumerate(value)])
    raise ConfigError(
        "rules",
        "must be a RuleSet, a list of Policy objects, a mapping with a 'rules' list, "
        f"or the path of a .json or .toml file, not {_kind(value)}",
    )


def email_domain_allowed(principal: Principal, domains: Collection[str]) -> bool:
    """The ``email_domains`` setting (oauth2-proxy's ``--email-domain``).

    True when ``domains`` is empty (no restriction) or holds ``*``, or when
    the email is at one of the domains (exact, ignoring case and a leading
    ``@``; subdomains must be listed). It takes the :class:`Principal`, not a
    bare address, so that an address the provider marks
    ``email_verified: false`` is always refused.
    """
    if not domains or "*" in domains:
        return True
    address = _verified_email(principal)
    domain = _domain_of(address) if address else None
    if domain is None:
        return False
    return any(domain == (d[1:] if d.startswith("@") else d).lower() for d in domains)
