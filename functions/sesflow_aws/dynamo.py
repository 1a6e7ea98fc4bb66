"""DynamoDB items as plain Python, and a BatchGetItem that gets every key or says which it could not.

* :func:`to_plain`: an item as the low-level client returns it (``{"n": {"N": "3"}}``) to plain
  Python with native numbers (``int`` when integral, else ``float``; never ``Decimal``), string and
  number sets as sorted lists, binary as ``bytes``. Without binary attributes the result is
  JSON-serialisable as it is.
* :func:`to_item`: plain Python (``None``, ``bool``, ``int``, ``float``, ``Decimal``, ``str``,
  ``bytes``, mappings, lists, tuples, sets) to an item. Floats are written as their shortest
  ``repr`` (0.1 stays ``"0.1"``; boto3's ``TypeSerializer`` refuses floats); NaN and infinities,
  empty sets and mixed sets are refused, as DynamoDB would refuse them.
* :func:`batch_get`: every key, 100 per request, retrying ``UnprocessedKeys`` with exponential
  backoff and full jitter, at most ``attempts`` requests per chunk; then
  :class:`BatchGetIncomplete` names what is left.

No boto3 import: the functions take the client, or plain data.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

#: keys per BatchGetItem request (the service's limit)
MAX_BATCH_KEYS: Final = 100

_INTEGER = re.compile(r"-?[0-9]+")

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]


# ---------------------------------------------------------------- reading
def number(text: str) -> int | float:
    """A DynamoDB number (a string) as ``int`` when it is integral, else ``float``."""
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"not a DynamoDB number: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a DynamoDB number: {text!r}")
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def from_value(value: Mapping[str, Any]) -> Any:
    """One attribute value (``{"S": "x"}``, ``{"N": "1"}``, ``{"M": {...}}``, ...) as plain Python."""
    if len(value) != 1:
        raise ValueError(f"an attribute value has exactly one type: {sorted(value)}")
    ((kind, data),) = value.items()
    if kind == "S":
        return str(data)
    if kind == "N":
        return number(data)
    if kind == "BOOL":
        return bool(data)
    if kind == "NULL":
        return None
    if kind == "B":
        return bytes(data)
    if kind == "M":
        return {str(k): from_value(v) for k, v in data.items()}
    if kind == "L":
        return [from_value(v) for v in data]
    if kind == "SS":
        return sorted(str(v) for v in data)
    if kind == "NS":
        return sorted(number(v) for v in data)
    if kind == "BS":
        return sorted(bytes(v) for v in data)
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def to_plain(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """An item (attribute name -> attribute value) as plain Python, attributes sorted by name."""
    return {name: from_value(item[name]) for name in sorted(item)}


# ---------------------------------------------------------------- writing
def number_text(value: int | float | Decimal) -> str:
    """The DynamoDB string of a number; NaN and infinities refused (DynamoDB has none)."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a DynamoDB number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"DynamoDB numbers are finite: {value!r}")
        return str(Decimal(repr(value)))
    if not value.is_finite():
        raise ValueError(f"DynamoDB numbers are finite: {value!r}")
    return str(value)


def _set_value(values: Iterable[Any]) -> AttributeValue:
    members = list(values)
    if not members:
        raise ValueError("DynamoDB has no empty sets")
    if all(isinstance(v, str) for v in members):
        return {"SS": sorted(members)}
    if all(isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in members):
        return {"NS": [number_text(v) for v in sorted(members)]}
    if all(isinstance(v, bytes | bytearray) for v in members):
        return {"BS": sorted(bytes(v) for v in members)}
    raise TypeError("a DynamoDB set holds strings, numbers or binary, not a mix")


def to_value(value: Any) -> AttributeValue:
    """Plain Python as one attribute value."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": number_text(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"B": bytes(value)}
    if isinstance(value, Mapping):
        return {"M": to_item(value)}
    if isinstance(value, set | frozenset):
        return _set_value(value)
    if isinstance(value, list | tuple):
        return {"L": [to_value(v) for v in value]}
    raise TypeError(f"no DynamoDB type for {type(value).__name__}")


def to_item(data: Mapping[str, Any]) -> Item:
    """A mapping of attribute names to plain Python as an item (or a map's contents)."""
    item: Item = {}
    for name, value in data.items():
        if not isinstance(name, str):
            raise TypeError(f"attribute names are strings, not {type(name).__name__}")
        item[name] = to_value(value)
    return item


# ---------------------------------------------------------------- BatchGetItem
class BatchGetIncomplete(RuntimeError):
    """DynamoDB still left keys unprocessed after the allowed attempts."""

    def __init__(self, table: str, unprocessed: list[Item], attempts: int) -> None:
        super().__init__(f"{table}: {len(unprocessed)} keys still unprocessed after {attempts} BatchGetItem requests")
        self.table = table
        self.unprocessed = unprocessed
        self.attempts = attempts


def backoff_delay(attempt: int, base: float, cap: float, jitter: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)) (attempt 0 is the first retry)."""
    ceiling: float = min(cap, base * 2**attempt)
    return jitter() * ceiling


def _key_id(key: Mapping[str, Mapping[str, Any]]) -> tuple[Any, ...]:
    return tuple(sorted((name, tuple(sorted(av.items()))) for name, av in key.items()))


def _projection(projection: str | Sequence[str] | None) -> dict[str, Any]:
    if not projection:
        return {}
    names = [p.strip() for p in projection.split(",")] if isinstance(projection, str) else list(projection)
    aliases = {f"#p{i}": name for i, name in enumerate(names)}
    # every name through an alias: "status", "name", "data" ... are reserved words
    return {"ProjectionExpression": ", ".join(aliases), "ExpressionAttributeNames": aliases}


def batch_get(
    client: Any,
    table: str,
    keys: Iterable[Mapping[str, Mapping[str, Any]]],
    projection: str | Sequence[str] | None = None,
    *,
    attempts: int = 8,
    base_delay: float = 0.05,
    max_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> list[Item]:
    """The items of ``keys`` that exist, as the client returns them (no order; duplicates asked once).

    ``projection``: top-level attribute names (a list, or ``"a, b"``), aliased so reserved words
    work. Keys DynamoDB leaves unprocessed (throttling, 16 MB responses) are asked again after
    :func:`backoff_delay`; a chunk still incomplete after ``attempts`` requests raises
    :class:`BatchGetIncomplete` (with what was left).
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    unique: dict[tuple[Any, ...], Item] = {}
    for key in keys:
        unique.setdefault(_key_id(key), {name: dict(av) for name, av in key.items()})
    pending_all = list(unique.values())
    extra = _projection(projection)
    items: list[Item] = []
    for start in range(0, len(pending_all), MAX_BATCH_KEYS):
        pending = pending_all[start : start + MAX_BATCH_KEYS]
        for attempt in range(attempts):
            resp = client.batch_get_item(RequestItems={table: {"Keys": pending, **extra}})
            items.extend(resp.get("Responses", {}).get(table, []))
            pending = resp.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
            if not pending:
                break
            if attempt + 1 < attempts:
                sleep(backoff_delay(attempt, base_delay, max_delay, jitter))
        else:
            raise BatchGetIncomplete(table, pending, attempts)
    return items
