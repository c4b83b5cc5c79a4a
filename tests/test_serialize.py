"""The serializer cannot fail: anything a host app puts in metadata becomes valid JSON."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import pathlib
import uuid
from typing import Any

import attrs
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.v1 import BaseModel as BaseModelV1

from huggingplace._serialize import MAX_DEPTH, MAX_ITEMS, to_jsonable


class Color(enum.Enum):
    RED = "red"


class Model2(BaseModel):
    a: int = 1
    when: dt.datetime = dt.datetime(2026, 1, 1)


class Model1(BaseModelV1):
    b: str = "x"


@dataclasses.dataclass
class Data:
    x: int = 2
    tags: tuple[str, ...] = ("a",)


@attrs.define
class Attrs:
    y: float = float("nan")


class Plain:
    def __init__(self) -> None:
        self.public = 1
        self._private = "hidden"


class Hostile:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("nor repr")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def test_known_types() -> None:
    out = to_jsonable({
        "dt": dt.datetime(2026, 11, 22, 8, 15, 0, 123456),  # naive: taken as UTC
        "aware": dt.datetime(2026, 11, 22, 9, 15, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        "date": dt.date(2026, 1, 2), "time": dt.time(3, 4), "dec": decimal.Decimal("1.50"),
        "int_dec": decimal.Decimal("7"), "uuid": uuid.UUID(int=1), "enum": Color.RED,
        "path": pathlib.PurePosixPath("/tmp/x"), "bytes": b"\x00\x01", "set": {3, 1, 2}, "tuple": (1, 2),
        "data": Data(), "attrs": Attrs(), "pyd2": Model2(), "pyd1": Model1(), "np": np.float32(0.5),
        "arr": np.arange(3), "exc": KeyError("k"), "plain": Plain(), 5: "int key", None: "none key",
        "nan": float("nan"), "inf": float("-inf"), "gen": (i for i in range(3)),
    })
    assert out["dt"] == "2026-11-22T08:15:00.123Z"
    assert out["aware"] == "2026-11-22T08:15:00.000Z"
    assert (out["date"], out["time"], out["dec"], out["int_dec"]) == ("2026-01-02", "03:04:00", 1.5, 7)
    assert out["uuid"] == "00000000-0000-0000-0000-000000000001" and out["enum"] == "red"
    assert out["path"] == "/tmp/x" and out["bytes"] == "AAE=" and out["set"] == [1, 2, 3]
    assert out["data"] == {"x": 2, "tags": ["a"]} and out["attrs"] == {"y": "NaN"}
    assert out["pyd2"] == {"a": 1, "when": "2026-01-01T00:00:00.000Z"} and out["pyd1"] == {"b": "x"}
    assert out["np"] == 0.5 and out["arr"] == [0, 1, 2]
    assert out["exc"] == {"type": "KeyError", "message": "'k'"}
    assert out["plain"] == {"public": 1}
    assert out["5"] == "int key" and out["None"] == "none key"
    assert (out["nan"], out["inf"]) == ("NaN", "-Infinity")
    assert out["gen"] == "<iterator: generator>"


def test_generators_are_never_consumed() -> None:
    gen = (i for i in range(3))
    to_jsonable({"g": gen})
    assert next(gen) == 0


def test_cycles_depth_and_size_are_bounded() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    deep: Any = "leaf"
    for _ in range(100):
        deep = {"d": deep}
    out = to_jsonable({"loop": loop, "deep": deep, "big": list(range(MAX_ITEMS + 5)),
                       "arr": np.zeros(MAX_ITEMS * 3), "blob": b"x" * 100_000})
    assert out["loop"] == [1, "<cycle: list>"]
    assert _depth(out["deep"]) <= MAX_DEPTH
    assert len(out["big"]) == MAX_ITEMS + 1 and out["big"][-1] == "<5 more items>"
    assert out["arr"]["shape"] == [MAX_ITEMS * 3] and len(out["arr"]["head"]) == 100
    assert out["blob"] == "<bytes: 100000>"


def test_hostile_objects_do_not_raise() -> None:
    out = to_jsonable({"h": Hostile(), Hostile(): 1})
    json.dumps(out)


leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10), st.binary(max_size=20),
    st.datetimes(), st.dates(), st.times(), st.decimals(), st.uuids(), st.sampled_from(list(Color)),
    st.builds(Data), st.builds(Attrs, st.floats()), st.builds(Model2), st.builds(Model1), st.builds(Plain),
    st.builds(Hostile), st.builds(lambda: (i for i in range(2))), st.builds(ValueError, st.text(max_size=5)),
    st.floats().map(np.float64), st.lists(st.integers(-5, 5), max_size=4).map(np.array),
)
keys = st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.none(), st.sampled_from(list(Color)))
nested = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner), st.frozensets(st.integers(), max_size=3),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None)
@given(nested)
def test_any_object_becomes_valid_json_within_limits(value: Any) -> None:
    """Property: whatever goes in, the result is strict JSON (no NaN) and bounded in depth."""
    out = to_jsonable(value)
    text = json.dumps(out, allow_nan=False)
    assert _depth(json.loads(text)) <= MAX_DEPTH + 1
    if isinstance(value, float) and not math.isfinite(value):
        assert isinstance(out, str)
