"""What DynamoDB on-demand bills for a request: write and read request units.

A pure model (no moto, no I/O) of the rules of the DynamoDB Developer Guide ("Item sizes and
formats", "Read and write operations", "Provisioned throughput considerations for global
secondary indexes"); items are in DynamoDB JSON (``{"name": {"S": "x"}}``):

* item size: the UTF-8 length of every attribute name plus the size of its value; a string is its
  UTF-8 bytes, a number about one byte per two significant digits plus one, a binary its raw bytes,
  a boolean or null one byte, a list or map 3 bytes plus one per element plus the elements (and a
  map's names), a set the sum of its members;
* a write costs 1 WRU per started KB of the larger of the item before and after it (a delete:
  the item deleted; at least 1), twice that in a transaction; a write whose condition fails costs
  the same on the item as it stands;
* each global secondary index the write touches costs WRUs on the index entry's size (index keys,
  table keys and projected attributes): 1 write when the item enters or leaves the index (gains or
  loses a key attribute, is put or deleted), 2 (delete + put) when an index key value changes, 1
  when a projected attribute changes (any attribute for ``ALL``; never for ``KEYS_ONLY``); an item
  without every key attribute of the index is not in it (sparse index) and costs it nothing;
* a read costs 1 RRU per started 4 KB strongly consistent, half that eventually consistent, twice
  that in a transaction (at least one unit, even when nothing is found); a Query or Scan is priced
  on the summed size of the items it read (index entries on an index), BatchGetItem per item.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

WRITE_BLOCK = 1024
READ_BLOCK = 4096

Item = Mapping[str, Mapping[str, Any]]


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


def number_size(value: str) -> int:
    """About one byte per two significant digits, plus one (leading and trailing zeros trimmed)."""
    mantissa = str(value).strip().lstrip("+-").lower().split("e", 1)[0]
    digits = mantissa.replace(".", "").strip("0")
    return (max(len(digits), 1) + 1) // 2 + 1


def binary_size(value: Any) -> int:
    """Raw bytes; a base64 string (the wire form) counts as the bytes it encodes."""
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    text = str(value).strip()
    return len(text) * 3 // 4 - (len(text) - len(text.rstrip("=")))


def value_size(value: Mapping[str, Any]) -> int:
    """The size of one attribute value (its name excluded)."""
    if len(value) != 1:
        raise ValueError(f"not a DynamoDB attribute value: {value!r}")
    ((kind, raw),) = value.items()
    if kind == "S":
        return _utf8(raw)
    if kind == "N":
        return number_size(raw)
    if kind == "B":
        return binary_size(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + _utf8(k) + value_size(v) for k, v in raw.items())
    if kind == "SS":
        return sum(_utf8(v) for v in raw)
    if kind == "NS":
        return sum(number_size(v) for v in raw)
    if kind == "BS":
        return sum(binary_size(v) for v in raw)
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_size(item: Item | None) -> int:
    """Bytes of an item as DynamoDB counts them (0 for no item)."""
    if not item:
        return 0
    return sum(_utf8(name) + value_size(value) for name, value in item.items())


def _units(size: int, block: int) -> int:
    return max(1, math.ceil(size / block))


def read_units(size_bytes: int, consistent: bool = False, transactional: bool = False) -> float:
    """RRUs of reading ``size_bytes`` (one item, or the sum a Query/Scan read)."""
    units = _units(size_bytes, READ_BLOCK)
    if transactional:
        return 2.0 * units
    return float(units) if consistent else units / 2


def _key_names(schema: list[Mapping[str, str]]) -> list[str]:
    return [k["AttributeName"] for k in schema]


def index_entry(item: Item | None, index: Mapping[str, Any], table_keys: list[str]) -> dict[str, Any] | None:
    """The item as the index holds it, or None when it is not in the index."""
    if not item:
        return None
    keys = _key_names(index["KeySchema"])
    if any(k not in item for k in keys):
        return None  # sparse: the index holds only items with every key attribute
    projection = index.get("Projection") or {}
    kind = projection.get("ProjectionType", "ALL")
    if kind == "ALL":
        return dict(item)
    names = {*keys, *table_keys}
    if kind == "INCLUDE":
        names.update(projection.get("NonKeyAttributes") or [])
    return {n: item[n] for n in names if n in item}


def _index_write(before: dict[str, Any] | None, after: dict[str, Any] | None, keys: list[str]) -> int:
    if before is None and after is None:
        return 0
    if before is None or after is None:  # put into or deleted from the index
        return _units(item_size(before or after), WRITE_BLOCK)
    if any(before[k] != after[k] for k in keys):  # moved: delete the old entry, put the new one
        return _units(item_size(before), WRITE_BLOCK) + _units(item_size(after), WRITE_BLOCK)
    if before != after:  # a projected attribute changed
        return _units(max(item_size(before), item_size(after)), WRITE_BLOCK)
    return 0


def write_units(
    old: Item | None, new: Item | None, table: Mapping[str, Any], transactional: bool = False
) -> tuple[float, dict[str, float]]:
    """(table WRUs, {index: WRUs}) of a write that turned ``old`` into ``new`` (None: no item).

    ``table`` is a table description (``KeySchema``, ``GlobalSecondaryIndexes`` and, billed the
    same way here, ``LocalSecondaryIndexes``)."""
    table_units = float(_units(max(item_size(old), item_size(new)), WRITE_BLOCK))
    if transactional:
        table_units *= 2
    table_keys = _key_names(table.get("KeySchema") or [])
    indexes: dict[str, float] = {}
    for index in [*(table.get("GlobalSecondaryIndexes") or []), *(table.get("LocalSecondaryIndexes") or [])]:
        units = _index_write(
            index_entry(old, index, table_keys), index_entry(new, index, table_keys), _key_names(index["KeySchema"])
        )
        if units:
            indexes[index["IndexName"]] = float(units)
    return table_units, indexes


def failed_write_units(existing: Item | None, transactional: bool = False) -> float:
    """WRUs of a write whose condition failed: the item as it stands (at least 1); no index writes."""
    units = float(_units(item_size(existing), WRITE_BLOCK))
    return 2 * units if transactional else units
