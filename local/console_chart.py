"""The console's picture of a listing's last 24 hours: usage recorded and usage billed, per hour.

One small bar chart per dimension (quantities of different dimensions are in different units), drawn as
inline SVG: no script, nothing loaded from elsewhere. The chart has a title for screen readers, and the same
numbers stand beside it in a table. The data is the listing's metering table: what the usage API recorded
for each hour, and what of it the metering job got AWS Marketplace (the emulator, locally) to accept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from typing import Any

HOUR = 3600
HOURS = 24
# Drawing units of the SVG's viewBox: one slot per hour, two bars in it.
SLOT, BAR, TOP, BASELINE = 20, 8, 16, 116
WIDTH, HEIGHT = SLOT * HOURS, BASELINE + 20
# Both have at least 3:1 against the white card (WCAG's rule for graphics) and differ in lightness too.
RECORDED_COLOUR, BILLED_COLOUR = "#1f5fbf", "#b35c00"
CSS = """
.charts { display: flex; flex-wrap: wrap; gap: 1rem 2rem; }
.chart { margin: 0.5rem 0 1rem; } .chart svg { width: 30rem; max-width: 100%; height: auto; display: block; }
.chart figcaption { font-weight: 600; margin-bottom: 0.25rem; }
.chart table { width: auto; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; }
"""


def _iso(hour: int) -> str:
    return datetime.fromtimestamp(hour, UTC).strftime("%Y-%m-%dT%H:00:00Z")


def _number(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


@dataclass
class _Dimension:
    recorded: dict[str, Decimal] = field(default_factory=dict)
    billed: dict[str, Decimal] = field(default_factory=dict)


def per_hour(items: Iterable[Mapping[str, Any]], now: float) -> tuple[list[str], dict[str, _Dimension]]:
    """The last 24 hours (oldest first, the current one last) and, per dimension, their sums."""
    current = int(now // HOUR * HOUR)
    hours = [_iso(current - HOUR * back) for back in range(HOURS - 1, -1, -1)]
    window = set(hours)
    dimensions: dict[str, _Dimension] = {}
    for item in items:
        hour = str(item.get("usageHour", ""))
        if hour not in window:
            continue
        sums = dimensions.setdefault(str(item.get("dimension", "")), _Dimension())
        quantity = Decimal(str(item.get("quantity", 0)))
        sums.recorded[hour] = sums.recorded.get(hour, Decimal(0)) + quantity
        if item.get("meteringStatus") == "metered":  # AWS Marketplace accepted it: billed
            sent = Decimal(str(item.get("sealedQuantity", item.get("quantity", 0))))
            sums.billed[hour] = sums.billed.get(hour, Decimal(0)) + sent
    return hours, dimensions


def _svg(chart_id: str, title: str, hours: list[str], sums: _Dimension) -> str:
    highest = max([*sums.recorded.values(), *sums.billed.values(), Decimal(0)])
    scale = (BASELINE - TOP) / float(highest) if highest > 0 else 0.0
    shapes = [f'<line x1="0" y1="{BASELINE}" x2="{WIDTH}" y2="{BASELINE}" stroke="#8a939f"/>']
    for index, hour in enumerate(hours):
        for offset, kind, colour, values in (
            (2, "recorded", RECORDED_COLOUR, sums.recorded),
            (2 + BAR, "billed", BILLED_COLOUR, sums.billed),
        ):
            value = values.get(hour, Decimal(0))
            if value <= 0:
                continue
            height = max(1.0, float(value) * scale)
            shapes.append(
                f'<rect class="bar {kind}" x="{index * SLOT + offset}" y="{BASELINE - height:.1f}" '
                f'width="{BAR}" height="{height:.1f}" fill="{colour}">'
                f"<title>{escape(hour)}: {kind} {escape(_number(value))}</title></rect>"
            )
        if index % 6 == 0:
            label = f'x="{index * SLOT}" y="{HEIGHT - 4}" font-size="10" fill="#4d5561"'
            shapes.append(f"<text {label}>{hour[11:16]}</text>")
    shapes.append(f'<text x="0" y="10" font-size="10" fill="#4d5561">max {escape(_number(highest))}</text>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title"><title id="{chart_id}-title">{escape(title)}</title>'
        + "".join(shapes)
        + "</svg>"
    )


def _numbers(hours: list[str], sums: _Dimension) -> str:
    rows = [
        f"<tr><td>{escape(hour)}</td><td>{escape(_number(sums.recorded.get(hour, Decimal(0))))}</td>"
        f"<td>{escape(_number(sums.billed.get(hour, Decimal(0))))}</td></tr>"
        for hour in hours
        if hour in sums.recorded or hour in sums.billed
    ]
    return (
        "<table><thead><tr><th>Hour (UTC)</th><th>Recorded</th><th>Billed</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def charts(listing_path: str, items: Iterable[Mapping[str, Any]], now: float) -> str:
    """The listing's charts, one per dimension with usage in the last 24 hours (or a line saying none)."""
    hours, dimensions = per_hour(items, now)
    if not dimensions:
        return '<p class="muted">No usage recorded in the last 24 hours.</p>'
    legend = (
        f'<p><span class="swatch" style="background:{RECORDED_COLOUR}"></span>recorded · '
        f'<span class="swatch" style="background:{BILLED_COLOUR}"></span>billed (accepted by AWS '
        "Marketplace) · an hour is billed after it ends, when the metering job runs</p>"
    )
    figures = []
    for number, (dimension, sums) in enumerate(sorted(dimensions.items())):
        title = (
            f"{listing_path}, {dimension}: usage recorded and billed per hour, "
            f"{hours[0][:16]}Z to {hours[-1][:16]}Z"
        )
        chart_id = f"chart-{escape(listing_path, quote=True)}-{number}"
        figures.append(
            f'<figure class="chart"><figcaption>{escape(dimension)}</figcaption>'
            f'<div class="charts">{_svg(chart_id, title, hours, sums)}{_numbers(hours, sums)}</div></figure>'
        )
    return legend + "".join(figures)
