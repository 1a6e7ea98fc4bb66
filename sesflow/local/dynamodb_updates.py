"""Plain update expressions applied without moto's tree passes (installed by :mod:`sesflow.local.shims`).

moto validates an update expression with ten passes over its parsed tree (each visiting every
node), then executes it with another walk. For the writes sesflow makes most, all of them on
top-level attributes (the ledger's claim: a dozen ``SET x = if_not_exists(x, :v)``; the send
machine's ``RecordSent``: ``SET``, ``REMOVE`` and ``ADD``), those walks were half of the local
stack's time in ``UpdateItem`` while a campaign sends.

An expression made only of these clauses, each on a top-level attribute, is applied here:

- ``SET name = :value`` and ``SET name = if_not_exists(name2, :value)``;
- ``REMOVE name``;
- ``ADD name :number``;

where a name is a plain attribute name or a ``#placeholder``, each clause keyword appears
once and no attribute is named twice. Values are resolved against the item before anything
changes and then set in the order written, through the item's own attribute dict (its size
limit applies), as moto's executor does. Anything else, and anything moto would reject (an
undefined placeholder, a reserved word, a key attribute, a key type mismatch, an empty key
string, ``ADD`` to a non-number), goes through moto's passes unchanged, which raise its own
error: the result is moto's for every input (``tests/unit/test_local_dynamodb_updates.py``
compares both over a corpus). Hand-written: moto has no cheaper path, and the grammar here is
a small subset of its parser's, so a tokenizer of a few lines is the whole parse.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

#: the tokens of the subset: names (plain or ``#``), values, ``=``, ``,``, parentheses
_TOKEN = re.compile(r"\s*(?:(#?[A-Za-z_][A-Za-z0-9_]*)|(:[A-Za-z0-9_]+)|([=,()]))")
_KEYWORDS = ("SET", "REMOVE", "ADD")

#: expression -> its clauses, or None when it is not in the subset (bounded, like the tree cache)
_PLANS: dict[str, tuple[tuple[str, str, str, str], ...] | None] = {}
_PLANS_KEPT = 4096
_LOCK = threading.Lock()

#: off: every expression goes through moto's passes (the differential test flips it)
ENABLED = True


def _tokens(expression: str) -> list[str] | None:
    out: list[str] = []
    pos, end = 0, len(expression.rstrip())
    while pos < end:
        m = _TOKEN.match(expression, pos)
        if m is None or m.end() == pos:
            return None
        out.append(m.group(m.lastindex or 0))
        pos = m.end()
    return out


def _keyword(token: str) -> str | None:
    if token.startswith(("#", ":")):
        return None
    upper = token.upper()
    return upper if upper in _KEYWORDS else None


def _is_name(token: str) -> bool:
    return bool(token) and token[0] not in ":=,()"


def _clause(kind: str, toks: list[str], i: int) -> tuple[tuple[str, str, str, str], int] | None:
    """One clause at ``toks[i]``: (kind, target, value placeholder, if_not_exists source or "")."""
    at = toks[i : i + 8] + [""] * 8
    if not _is_name(at[0]):
        return None
    if kind == "REMOVE":
        return (kind, at[0], "", ""), i + 1
    if kind == "ADD":
        return ((kind, at[0], at[1], ""), i + 2) if at[1].startswith(":") else None
    if at[1] != "=":
        return None
    if at[2].startswith(":"):
        return (kind, at[0], at[2], ""), i + 3
    if at[2] == "if_not_exists" and at[3] == "(" and _is_name(at[4]) and at[5] == ",":
        if at[6].startswith(":") and at[7] == ")":
            return (kind, at[0], at[6], at[4]), i + 8
    return None


def compile_plan(expression: str) -> tuple[tuple[str, str, str, str], ...] | None:
    """The clauses of ``expression`` if it is in the subset (see the module), else None."""
    toks = _tokens(expression)
    if not toks:
        return None
    clauses: list[tuple[str, str, str, str]] = []
    seen: set[str] = set()
    i = 0
    while i < len(toks):
        kind = _keyword(toks[i])
        if kind is None or kind in seen:
            return None
        seen.add(kind)
        i += 1
        while True:
            parsed = _clause(kind, toks, i)
            if parsed is None:
                return None
            clauses.append(parsed[0])
            i = parsed[1]
            if i < len(toks) and toks[i] == ",":
                i += 1
                continue
            break
    return tuple(clauses)


def plan_for(expression: str) -> tuple[tuple[str, str, str, str], ...] | None:
    if expression in _PLANS:
        return _PLANS[expression]
    plan = compile_plan(expression)
    with _LOCK:
        if len(_PLANS) < _PLANS_KEPT:
            _PLANS[expression] = plan
    return plan


class PlainUpdate:
    """What the validator returns for an expression in the subset: the attribute changes,
    resolved; ``normalize`` is moto's call between validation and execution (a no-op here)."""

    def __init__(self, changes: list[tuple[str, str, Any]]) -> None:
        self.changes = changes  # (kind, attribute, DynamoType value or None)

    def normalize(self) -> None:
        return None

    def apply(self, item: Any) -> None:
        attrs = item.attrs
        for kind, name, value in self.changes:
            if kind == "REMOVE":
                attrs.pop(name, None)
            elif kind == "ADD":
                attrs[name] = (attrs[name] if name in attrs else _zero()) + value
            else:
                attrs[name] = value


def _zero() -> Any:
    from moto.dynamodb.models.dynamo_type import DynamoType

    return DynamoType({"N": "0"})


def resolve(validator: Any, expression: str) -> PlainUpdate | None:
    """The changes ``expression`` makes to the validator's item, or None: moto's passes decide.

    As moto, the checks of the expression's shape (names defined, no attribute twice, no key
    attribute) come before any value is read; a value moto could not read (malformed JSON
    over HTTP) leaves it to moto, which answers with its own error."""
    plan = plan_for(expression)
    if plan is None:
        return None
    names = validator.expression_attribute_names or {}
    values = validator.expression_attribute_values or {}
    table = validator.table
    try:
        resolved = _names(plan, names, table.table_key_attrs)
        return None if resolved is None else _changes(plan, resolved, values, table, validator.item.attrs)
    except Exception:  # anything odd: moto's passes decide, and raise its error
        return None


@functools.cache
def _reserved() -> frozenset[str]:
    """moto's reserved words, as a set (its list has some 570 of them)."""
    from moto.dynamodb.parsing.reserved_keywords import ReservedKeywords

    return frozenset(ReservedKeywords.get_reserved_keywords())


def _names(
    plan: tuple[tuple[str, str, str, str], ...], names: dict[str, str], keys: list[str]
) -> list[tuple[str, str]] | None:
    """Each clause's (target, if_not_exists source or "") by name; None where moto refuses the
    shape: an undefined placeholder, a reserved word, an attribute twice, a key attribute."""
    reserved = _reserved()

    def name(token: str) -> str | None:
        if token.startswith("#"):
            found = names.get(token)
            return found if isinstance(found, str) else None
        return None if token.upper() in reserved else token

    resolved: list[tuple[str, str]] = []
    targets: set[str] = set()
    for _, target_token, _, source_token in plan:
        target = name(target_token)
        source = name(source_token) if source_token else ""
        if target is None or target in targets or target in keys or source is None or source in keys:
            return None  # (moto refuses a key path anywhere, an if_not_exists source too)
        targets.add(target)
        resolved.append((target, source))
    return resolved


def _changes(
    plan: tuple[tuple[str, str, str, str], ...],
    resolved: list[tuple[str, str]],
    values: dict[str, Any],
    table: Any,
    attrs: Any,
) -> PlainUpdate | None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    changes: list[tuple[str, str, Any]] = []
    for (kind, target_token, value_token, _), (target, source) in zip(plan, resolved, strict=True):
        if kind == "REMOVE":
            changes.append((kind, target, None))
            continue
        if value_token not in values:
            return None
        value = DynamoType(values[value_token])
        if kind == "ADD":
            current = attrs.get(target)
            if value.type != "N" or (current is not None and current.type != "N"):
                return None
        else:
            if source and source in attrs:
                value = attrs[source]
            # moto checks a SET's key type and empty key strings on the token as written: a
            # ``#placeholder`` is never a key name there, so neither is it here
            if not _key_value_ok(table, target_token, value):
                return None
        changes.append((kind, target, value))
    return PlainUpdate(changes)


def _key_value_ok(table: Any, target: str, value: Any) -> bool:
    """moto's ``TypeMismatchValidator`` and ``EmptyStringKeyValueValidator`` on a SET of
    ``target`` (the token as written)."""
    for definition in table.attr:
        if definition["AttributeName"] == target and definition["AttributeType"] != value.type:
            return False
    return not (target in table.attribute_keys and value.type in ("S", "B") and not value.value)


def install(source: dict[int, tuple[Any, str]]) -> None:
    """Route plain expressions around moto's passes. ``source`` maps the trees that
    ``shims._lighter_dynamodb_writes`` keeps to their expression strings; only those are
    looked at. For a plain one the validator is not built (no passes, no copy of the tree)
    unless moto's passes turn out to be needed."""
    from moto.dynamodb.parsing import executors, validators

    cls = validators.UpdateExpressionValidator
    init, validate = cls.__init__, cls.validate
    execute = executors.UpdateExpressionExecutor.execute

    def __init__(
        self: Any,
        expression: Any,
        expression_attribute_names: Any,
        expression_attribute_values: Any,
        item: Any,
        table: Any,
    ) -> None:
        held = source.get(id(expression))
        if ENABLED and held is not None and held[0] is expression and plan_for(held[1]) is not None:
            self.expression_attribute_names = expression_attribute_names
            self.expression_attribute_values = expression_attribute_values
            self.item, self.table = item, table
            self.sesflow_plain = (expression, held[1])
            return
        self.sesflow_plain = None
        init(self, expression, expression_attribute_names, expression_attribute_values, item, table)

    def validate_plain(self: Any) -> Any:
        held = self.sesflow_plain
        if held is None:
            return validate(self)
        plain = resolve(self, held[1])
        if plain is not None:
            return plain
        # moto decides (and raises its error): the validator built as moto builds it
        init(self, held[0], self.expression_attribute_names, self.expression_attribute_values, self.item, self.table)
        return validate(self)

    def execute_plain(self: Any, node: Any = None) -> None:
        if node is None and isinstance(self.update_ast, PlainUpdate):
            self.update_ast.apply(self.item)
            return
        execute(self, node)

    cls.__init__ = __init__  # type: ignore[method-assign]
    cls.validate = validate_plain  # type: ignore[method-assign]
    executors.UpdateExpressionExecutor.execute = execute_plain  # type: ignore[method-assign]


def lex_conditions_once() -> None:
    """moto lexes a condition (or filter) expression with a list of regular expressions, one
    token at a time, on every request: the ledger's claim and every conditional write of the
    send machine pay it again for the same few strings. The tokens are a function of the string
    alone (names and values are looked up in later stages), and immutable tuples with empty,
    never-filled child lists, so each string's tokens are kept and handed out as a new deque."""
    from collections import deque

    from moto.dynamodb.comparisons import ConditionExpressionParser

    lex = ConditionExpressionParser._lex_condition_expression
    kept: dict[str, tuple[Any, ...]] = {}

    def lex_once(self: Any) -> Any:
        expression = self.condition_expression
        tokens = kept.get(expression)
        if tokens is None:
            tokens = tuple(lex(self))  # raises as moto does for what it cannot lex
            if len(kept) < _PLANS_KEPT:
                kept[expression] = tokens
        return deque(tokens)

    ConditionExpressionParser._lex_condition_expression = lex_once  # type: ignore[method-assign]
