"""Small trend charts as inline SVG, drawn on the server (no JavaScript, no CDN: works offline in a hospital).

`line_chart` takes series of points (time in microseconds, value, hospital colour class, tooltip) and
returns SVG markup. Every text it writes is escaped; the result is marked safe for the templates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from markupsafe import Markup, escape

# The same four colours as the hospital tags of the page (h1..h4), so a point shows its hospital.
HOSPITAL_COLOURS = {"h1": "#0b5cad", "h2": "#2e7d32", "h3": "#c77700", "h4": "#8e24aa"}
SERIES_STROKES = ("#1d2733", "#7b8794")


@dataclass
class Point:
    """One measurement on a chart."""

    x: int  # microseconds since the epoch
    y: float
    colour: str  # hospital class h1..h4
    title: str  # tooltip: date, value, hospital


@dataclass
class Series:
    """A named line (e.g. systolic pressure)."""

    name: str
    points: list[Point] = field(default_factory=list)


def _fmt(v: float) -> str:
    return f"{v:g}"


def _day(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%d/%m/%y")


def line_chart(
    series: list[Series],
    label: str,
    width: int = 340,
    height: int = 130,
    band: tuple[float | None, float | None] | None = None,
) -> Markup:
    """An SVG line chart: one polyline per series, points coloured by hospital, min/max and first/last dates.

    `band` (low, high) shades the reference range, so a doctor sees at once which points are outside it.
    """
    pts = [p for s in series for p in s.points]
    if not pts:
        return Markup("")
    left, right, top, bottom = 40, 8, 8, 20
    xs = [p.x for p in pts]
    ys = [p.y for p in pts]
    x0, x1 = min(xs), max(xs)
    limits = [v for v in (band or ()) if v is not None]
    y0, y1 = min(ys + limits), max(ys + limits)
    pad = (y1 - y0) * 0.1 or max(abs(y1) * 0.05, 1.0)
    y0, y1 = y0 - pad, y1 + pad
    span_x = (x1 - x0) or 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: int) -> float:
        return left + (plot_w * (x - x0) / span_x if x1 != x0 else plot_w / 2)

    def py(y: float) -> float:
        return top + plot_h * (1 - (y - y0) / (y1 - y0))

    out = [
        f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
        _band(band, left, plot_w, top, plot_h, py),
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#c3cad3"/>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#c3cad3"/>',
        f'<text x="{left - 4}" y="{top + 9}" text-anchor="end" font-size="10" fill="#5b6776">'
        f"{_fmt(round(y1, 1))}</text>",
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="10" fill="#5b6776">'
        f"{_fmt(round(y0, 1))}</text>",
        f'<text x="{left}" y="{height - 5}" font-size="10" fill="#5b6776">{_day(x0)}</text>',
    ]
    if x1 != x0:
        out.append(
            f'<text x="{width - right}" y="{height - 5}" text-anchor="end" font-size="10" fill="#5b6776">'
            f"{_day(x1)}</text>"
        )
    for i, s in enumerate(series):
        ordered = sorted(s.points, key=lambda p: p.x)
        if len(ordered) > 1:
            path = " ".join(f"{px(p.x):.1f},{py(p.y):.1f}" for p in ordered)
            stroke = SERIES_STROKES[i % len(SERIES_STROKES)]
            out.append(f'<polyline points="{path}" fill="none" stroke="{stroke}" stroke-width="1.5"/>')
        for p in ordered:
            colour = HOSPITAL_COLOURS.get(p.colour, "#1d2733")
            out.append(
                f'<circle class="pt {escape(p.colour)}" cx="{px(p.x):.1f}" cy="{py(p.y):.1f}" r="3.5" '
                f'fill="{colour}"><title>{escape(p.title)}</title></circle>'
            )
    out.append("</svg>")
    return Markup("".join(out))


def _band(band, left: int, plot_w: int, top: int, plot_h: int, py) -> str:
    """The shaded reference range (open-ended ranges run to the plot's edge); '' without one."""
    if not band or (band[0] is None and band[1] is None):
        return ""
    y_top = py(band[1]) if band[1] is not None else top
    y_bottom = py(band[0]) if band[0] is not None else top + plot_h
    return (
        f'<rect class="ref-range" x="{left}" y="{y_top:.1f}" width="{plot_w}" height="{max(y_bottom - y_top, 0):.1f}" '
        f'fill="#e5f4ea"><title>Khoảng tham chiếu</title></rect>'
    )
