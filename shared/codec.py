"""Events <-> flat stream fields, readable as they are in `redis-cli XRANGE`.

Every entry carries `v` (schema version) and `type`, then the event's fields by name, values
as plain text: numbers as their shortest exact form (`65114.2`), book levels as
`price:size price:size ...` best first. A `None` field is left out and comes back as `None`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache

import msgspec

from shared.events import EVENT_TYPES, SCHEMA_VERSION, BookUpdate, Level, MarketEvent


class CodecError(ValueError):
    """A stream entry that is not a valid event of a known type and version."""


_VERSION = str(SCHEMA_VERSION)
_LEVEL_FIELDS = ("bids", "asks")
_FIELDS = {cls: cls.__struct_fields__ for cls in EVENT_TYPES.values()}


def plain_text(value: object) -> str:
    """Plain text of a field value; small floats without an exponent (0.00009778, not
    9.778e-05), still the shortest form that reads back as the same float."""
    text = str(value)
    return format(Decimal(text), "f") if "e" in text and type(value) is float else text


# 4,096 levels: the books' current levels and more. 65,536 held ~22 MB of tuples, floats and
# text in a 10-minute run, for no more throughput (benchmarks/run.py --only bus, A/B).
@lru_cache(maxsize=1 << 12)
def _level_text(level: Level) -> str:
    return f"{plain_text(level[0])}:{plain_text(level[1])}"


def format_levels(levels: tuple[Level, ...]) -> str:
    # Printing a float costs ~1 us and a book event has 50 levels, most of them unchanged
    # since the last update: remembering each level's text makes this ~10x cheaper.
    return " ".join(map(_level_text, levels))


_LEVELS = re.compile(r"[^\s:]+:[^\s:]+(?: [^\s:]+:[^\s:]+)*")


def parse_levels(text: str) -> list[tuple[float, float]]:
    """`price:size price:size ...` as (price, size) floats; CodecError for anything else."""
    if not text:
        return []
    if _LEVELS.fullmatch(text) is None:
        raise CodecError(f"book levels {text[:60]!r} are not price:size separated by spaces")
    try:
        values = iter(map(float, text.replace(":", " ").split()))
        return list(zip(values, values, strict=True))
    except ValueError as exc:
        raise CodecError(f"book levels {text[:60]!r}: {exc}") from None


def to_fields(event: MarketEvent) -> dict[str, str]:
    """The flat field map of one event, in declaration order."""
    out = {"v": _VERSION, "type": event.TYPE}
    is_book = type(event) is BookUpdate
    for name in _FIELDS[type(event)]:
        value = getattr(event, name)
        if value is None:
            continue
        if is_book and name in _LEVEL_FIELDS:
            out[name] = format_levels(value)
        else:
            out[name] = plain_text(value)
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def from_fields(fields: Mapping[bytes | str, bytes | str]) -> MarketEvent:
    """Rebuild the event from a stream entry; raises CodecError on anything else."""
    # a client with decode_responses=True hands over text already: no per-field decoding
    data = dict(fields) if isinstance(next(iter(fields), ""), str) else {_text(k): _text(v) for k, v in fields.items()}
    version = data.pop("v", None)
    if version != _VERSION:
        raise CodecError(f"schema version {version!r} is not supported (this build reads {_VERSION})")
    cls = EVENT_TYPES.get(data.pop("type", ""))
    if cls is None:
        raise CodecError(f"unknown event type in {sorted(data)[:5]}...")
    if cls is BookUpdate:
        for name in _LEVEL_FIELDS:
            if name in data:
                data[name] = parse_levels(data[name])
    try:
        return msgspec.convert(data, type=cls, strict=False)
    except msgspec.ValidationError as exc:
        raise CodecError(f"{cls.TYPE} entry: {exc}") from None
