"""Metadata filters: one model and one meaning for every index, and the reference `matches`.

A filter holds `must` conditions (all hold), `should` conditions (at least one holds, when
there are any) and `must_not` conditions (none holds). A condition tests one top-level field:
`equals` a string, boolean or integer of the same type (`true` is not `1`), `any_of` such
values, or a numeric `range` (integers and floats; booleans are not numbers here). A list field
passes when one of its elements does; a missing field passes no condition. These are Qdrant's
semantics, which the LSH store follows with `Filter.matches`.
"""

import math
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2

from imsearch.core.errors import InvalidArgument
from imsearch.core.structs import FILTER_KEY, FilterValue, to_dict
from imsearch.v1 import index_pb2

MAX_CONDITIONS = 32
MAX_ANY_OF = 64


def _same(stored: Any, wanted: FilterValue) -> bool:
    return type(stored) is type(wanted) and stored == wanted


def is_number(value: Any) -> bool:
    """Integers and floats; booleans are not numbers here (as in Qdrant's ranges)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Range:
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    def holds(self, value: float) -> bool:
        return (
            (self.gt is None or value > self.gt)
            and (self.gte is None or value >= self.gte)
            and (self.lt is None or value < self.lt)
            and (self.lte is None or value <= self.lte)
        )


@dataclass(frozen=True)
class Condition:
    key: str
    any_of: tuple[FilterValue, ...] = ()  # equals: one value
    range: Range | None = None

    def holds_for(self, value: Any) -> bool:
        if self.range is not None:
            return is_number(value) and self.range.holds(value)
        return any(_same(value, wanted) for wanted in self.any_of)

    def holds(self, metadata: dict[str, Any]) -> bool:
        if self.key not in metadata:
            return False
        value = metadata[self.key]
        return any(map(self.holds_for, value)) if isinstance(value, list) else self.holds_for(value)


@dataclass(frozen=True)
class Filter:
    must: tuple[Condition, ...] = ()
    should: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    @classmethod
    def of(cls, values: dict[str, FilterValue]) -> "Filter":
        """Every key equal to its value: what a `filter` Struct says."""
        return cls(must=tuple(equals(key, value) for key, value in values.items()))

    def __bool__(self) -> bool:
        return bool(self.must or self.should or self.must_not)

    def matches(self, metadata: dict[str, Any]) -> bool:
        return (
            all(c.holds(metadata) for c in self.must)
            and (not self.should or any(c.holds(metadata) for c in self.should))
            and not any(c.holds(metadata) for c in self.must_not)
        )


def equals(key: str, value: FilterValue) -> Condition:
    return Condition(key, any_of=(value,))


def _key(key: str) -> str:
    if not FILTER_KEY.match(key):
        raise InvalidArgument(
            f"filter key {key[:80]!r} must be 1-64 letters, digits, '_' or '-' (a top-level metadata field)"
        )
    return key


def _value(key: str, value: Any) -> FilterValue:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Struct has only doubles
    if isinstance(value, bool | str | int):
        return value
    raise InvalidArgument(f"filter value for {key!r} must be a string, boolean or integer, got {value!r}")


def _bound(key: str, name: str, given: index_pb2.Range) -> float | None:
    if not given.HasField(name):  # type: ignore[arg-type]
        return None
    value = float(getattr(given, name))
    if not math.isfinite(value):
        raise InvalidArgument(f"range bound {name} for {key!r} must be a finite number")
    return value


def _condition(given: index_pb2.Condition) -> Condition:
    key = _key(given.key)
    test = given.WhichOneof("test")
    if test == "equals":
        return equals(key, _value(key, json_format.MessageToDict(given.equals)))
    if test == "any_of":
        values = json_format.MessageToDict(given.any_of)
        if not 1 <= len(values) <= MAX_ANY_OF:
            raise InvalidArgument(f"any_of for {key!r} needs 1 to {MAX_ANY_OF} values, got {len(values)}")
        return Condition(key, any_of=tuple(_value(key, v) for v in values))
    if test == "range":
        bounds = {name: _bound(key, name, given.range) for name in ("gt", "gte", "lt", "lte")}
        if all(b is None for b in bounds.values()):
            raise InvalidArgument(f"range for {key!r} has no bound (gt, gte, lt or lte)")
        return Condition(key, range=Range(**bounds))
    raise InvalidArgument(f"condition on {key!r} has no test: give equals, any_of or range")


def parse_filter(legacy: struct_pb2.Struct, where: index_pb2.Filter | None = None) -> Filter | None:
    """The `filter` Struct ({key: value}, each an equals condition) and the structured `where`,
    both to hold; None when neither says anything."""
    must: list[Condition] = []
    for key, value in to_dict(legacy).items():
        if not key:
            raise InvalidArgument("filter has an empty key")
        must.append(equals(_key(key), _value(key, value)))
    should: list[Condition] = []
    must_not: list[Condition] = []
    if where is not None:
        must += map(_condition, where.must)
        should = list(map(_condition, where.should))
        must_not = list(map(_condition, where.must_not))
    if len(must) + len(should) + len(must_not) > MAX_CONDITIONS:
        raise InvalidArgument(f"a filter holds at most {MAX_CONDITIONS} conditions")
    made = Filter(tuple(must), tuple(should), tuple(must_not))
    return made or None
