"""Geometry for what the viewer draws as SVG: a record's step waterfall and the overview's
charts. Pure numbers in, shapes out; the templates only place them (and escape every label)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any, Optional

import attrs

from ..._fields import step_status_class

__all__ = ["Bar", "waterfall", "columns", "Column", "polyline", "hbars", "WIDTH"]

WIDTH = 1000.0  # every track's viewBox width; bars are placed in these units


@attrs.frozen
class Bar:
    """One step of a waterfall: where it starts and how wide it is, in ``WIDTH`` units."""

    name: str
    depth: int
    x: float
    width: float
    time_ms: float
    offset_ms: float
    status: str  # as sent
    status_class: str  # ok / error / unknown
    error: str
    type: str


def _time(text: Any) -> Optional[_dt.datetime]:
    if not isinstance(text, str):
        return None
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return f"{error.get('type', 'Error')}: {error.get('message', '')}"
    return str(error) if error else ""


def waterfall(steps: Sequence[Any]) -> list[Bar]:
    """Steps drawn to scale, nested as they ran: a step with ``started_at`` is placed by it; one
    without follows its previous sibling (hand-written steps often carry only ``time_ms``)."""
    placed: list[tuple[dict[str, Any], int, float, float]] = []  # step, depth, offset ms, duration ms
    starts = [t for t in (_time(s.get("started_at")) for s in _walk(steps)) if t is not None]
    origin = min(starts) if starts else None

    def place(items: Sequence[Any], depth: int, parent_offset: float) -> None:
        cursor = parent_offset
        for step in items:
            if not isinstance(step, dict):
                continue
            duration = step.get("time_ms")
            duration = float(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool) else 0.0
            started = _time(step.get("started_at"))
            offset = (started - origin).total_seconds() * 1000.0 if started and origin else cursor
            placed.append((step, depth, offset, duration))
            cursor = offset + duration
            children = step.get("steps")
            if isinstance(children, list) and children:
                place(children, depth + 1, offset)

    place(steps, 0, 0.0)
    span = max((offset + duration for _, _, offset, duration in placed), default=0.0)
    scale = WIDTH / span if span > 0 else 0.0
    return [
        Bar(name=str(step.get("step_name") or "(unnamed)"), depth=depth, x=round(offset * scale, 3),
            width=round(duration * scale, 3), time_ms=duration, offset_ms=offset, status=str(step.get("status") or ""),
            status_class=step_status_class(step.get("status")) if step.get("status") else "unknown",
            error=_error_text(step.get("error")), type=str(step.get("type") or ""))
        for step, depth, offset, duration in placed
    ]


def _walk(steps: Sequence[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for step in steps:
        if isinstance(step, dict):
            out.append(step)
            children = step.get("steps")
            if isinstance(children, list):
                out.extend(_walk(children))
    return out


@attrs.frozen
class Column:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float


def columns(values: Sequence[tuple[str, float]], height: float = 100.0) -> list[Column]:
    """A column chart's columns in a ``WIDTH`` x ``height`` box, tallest touching the top."""
    if not values:
        return []
    top = max(v for _, v in values) or 1.0
    step = WIDTH / len(values)
    return [Column(x=round(i * step, 3), y=round(height - v / top * height, 3), width=round(step * 0.8, 3),
                   height=round(v / top * height, 3), label=label, value=v)
            for i, (label, v) in enumerate(values)]


def polyline(values: Sequence[Optional[float]], height: float = 100.0, top: Optional[float] = None) -> str:
    """SVG ``points`` for a line over the same slots as :func:`columns` (gaps skipped)."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    top = top or max(present) or 1.0
    step = WIDTH / len(values)
    return " ".join(f"{i * step + step * 0.4:.1f},{height - v / top * height:.1f}"
                    for i, v in enumerate(values) if v is not None)


def hbars(values: Sequence[tuple[str, float]]) -> list[tuple[str, float, float]]:
    """(label, value, width in ``WIDTH`` units) for a horizontal bar chart."""
    top = max((v for _, v in values), default=0.0) or 1.0
    return [(label, v, round(v / top * WIDTH, 3)) for label, v in values]
