"""Inline SVG charts for the HTML report (html.py), drawn directly: no plotting library, no script.

Why drawn by hand rather than with matplotlib: matplotlib is not a dependency of static mode (the
report must work without the [dynamic] extra), its SVG embeds every glyph as a path (~40 KB per small
chart, measured), and a chart here is a few polylines on two axes. A chart is ~2-6 KB: each series is
one <path> whose coordinates are rounded to 0.1 px (a vertex after the first of a stretch is a bare
"x y", SVG's implicit lineto), and a series longer than MAX_POINTS is thinned to
the first, lowest and highest value of each bucket, so a spike or a dip is never smoothed away.

Each <svg class="curve"> states its plot area and its domain (`data-plot`: left, top, right,
bottom in px; `data-x`: first and last step; `data-y`: lowest and highest value on the axis's own
scale; `data-log`: "1" when the y axis is log10; `data-scale`: "linear", "log" or "symlog", whose
y = sign(v) log10(1 + |v|/c) with `data-c`: values of mixed sign spanning 1000x or more, which a
linear axis would flatten against its edge), and each <path class="series"> its run, tag and number
of values, so a test can read every drawn point back as (step, value) and compare it with the
recorded trace.
"""

from __future__ import annotations

import html
import math
from typing import Optional, Sequence, TypedDict

from elbolint.reporters.html_curves import finite

WIDTH, HEIGHT = 520, 190
LEFT, RIGHT, TOP, BOTTOM = 58, 10, 22, 30
MAX_POINTS = 180
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
DASHES = {"user": "", "replay": "", "clipped": "6 3", "smaller-rate": "2 3", "reference": "8 4"}


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def fmt(value: float, digits: int = 0) -> str:
    """A number in a few characters (`digits` significant digits when given)."""
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    if digits:
        return f"{value:.{digits}g}"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.2g}"
    return f"{value:.4g}"


def distinct(values: Sequence[float]) -> list[str]:
    """The tick labels of `values`, with as many significant digits as it takes for no two to read the
    same (three ticks of 3.91e7, 3.92e7, 3.93e7 are not all "3.9e+07")."""
    count = len(set(values))
    labels = [fmt(v) for v in values]
    digits = 2
    while len(set(labels)) < count and digits <= 12:
        labels, digits = [fmt(v, digits) for v in values], digits + 1
    return labels


def _scale(values: Sequence[float], log: Optional[bool]) -> tuple[str, float]:
    """"log" (all positive, spanning 100x or more), "symlog" (signs mixed or a zero, magnitudes spanning
    1000x or more: a linear axis would flatten every series but the largest against its edge) or
    "linear"; and symlog's linear width `c` (y = sign(v) log10(1 + |v|/c))."""
    if not values:
        return "linear", 1.0
    low, high = min(values), max(values)
    if log is False:
        return "linear", 1.0
    if low > 0 and (log or high / low >= 100):
        return "log", 1.0
    magnitudes = sorted(abs(v) for v in values if v != 0)
    if log is None and magnitudes and magnitudes[-1] / magnitudes[len(magnitudes) // 10] >= 1000:
        c = 10 ** math.floor(math.log10(magnitudes[len(magnitudes) // 10]))
        return "symlog", c
    return "linear", 1.0


class Axes:
    """The mapping from (step, value) to pixels of one chart: linear, log10 or symlog (`scale`)."""

    def __init__(self, steps: int, values: Sequence[Optional[float]], log: Optional[bool] = None):
        """`values`: every value the chart draws; those not finite (None, NaN) do not set the range."""
        finite_values = [v for v in values if finite(v)]
        self.scale, self.c = _scale(finite_values, log)
        self.log = self.scale == "log"
        low, high = (min(finite_values), max(finite_values)) if finite_values else (0.0, 1.0)
        low, high = self.t(low), self.t(high)
        if high - low < 1e-12:
            low, high = low - 1, high + 1
        self.low, self.high = low, high
        self.x0, self.x1 = 0, max(1, steps - 1)
        self.left, self.top, self.right, self.bottom = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM

    def t(self, value: float) -> float:
        """A value on the axis's own scale."""
        if self.scale == "log":
            return math.log10(value)
        if self.scale == "symlog":
            return math.copysign(math.log10(1 + abs(value) / self.c), value)
        return value

    def inverse(self, v: float) -> float:
        if self.scale == "log":
            return 10 ** v
        if self.scale == "symlog":
            return math.copysign(self.c * (10 ** abs(v) - 1), v)
        return v

    def x(self, step: float) -> float:
        return self.left + (step - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def y(self, value: float) -> float:
        return self.bottom - (self.t(value) - self.low) / (self.high - self.low) * (self.bottom - self.top)

    def attributes(self) -> str:
        return (f'data-plot="{self.left},{self.top},{self.right},{self.bottom}" data-x="{self.x0},{self.x1}" '
                f'data-y="{self.low!r},{self.high!r}" data-log="{int(self.log)}" data-scale="{self.scale}" '
                f'data-c="{self.c!r}"')

    def frame(self, title: str, ylabel: str, steps: bool = True) -> list[str]:
        parts = [f'<rect x="{self.left}" y="{self.top}" width="{self.right - self.left}" '
                 f'height="{self.bottom - self.top}" class="frame" fill="none" stroke="#d0d7de" stroke-width="1"/>',
                 f'<text x="{self.left}" y="14" class="title" font-size="12" font-weight="600" fill="#1d232a">'
                 f'{esc(title)}</text>']
        fractions = [0.0, 0.5, 1.0]
        shown = [self.inverse(self.low + f * (self.high - self.low)) for f in fractions]
        if self.scale == "symlog":  # the ends, 0 when in range, and round values between them
            middles = [self.inverse(self.low + f * (self.high - self.low)) for f in (0.25, 0.5, 0.75)]
            middles = [math.copysign(10.0 ** round(math.log10(abs(v))), v) for v in middles if v]  # powers of 10
            if self.low < 0 < self.high:
                middles = sorted(middles + [0.0], key=lambda v: abs(v))[:1] + [
                    v for v in middles if abs(self.t(v)) > 0.2 * (self.high - self.low)]
            inner = sorted({v for v in middles if self.low < self.t(v) < self.high})
            shown = [self.inverse(self.low), *inner, self.inverse(self.high)]
            fractions = [(self.t(v) - self.low) / (self.high - self.low) for v in shown]
        for fraction, label in zip(fractions, distinct(shown)):
            y = self.bottom - fraction * (self.bottom - self.top)
            parts.append(f'<text x="{self.left - 4}" y="{y + 4:.1f}" class="tick" '
                         f'text-anchor="end">{esc(label)}</text>')
        for step in (self.x0, (self.x0 + self.x1) // 2, self.x1) if steps else ():
            parts.append(f'<text x="{self.x(step):.1f}" y="{self.bottom + 14}" class="tick" '
                         f'text-anchor="middle">{step}</text>')
        if steps:
            parts.append(f'<text x="{self.right}" y="{HEIGHT - 4}" class="tick" text-anchor="end">step</text>')
        if ylabel:
            words = {"log": " (log scale)", "symlog": " (symmetric log scale)"}.get(self.scale, "")
            parts.append(f'<text x="{self.left + 4}" y="{self.top + 12}" class="tick">{esc(ylabel)}{words}</text>')
        return parts


def thin(values: Sequence[Optional[float]]) -> list[int]:
    """The indices drawn: all of them up to MAX_POINTS, else each bucket's first, lowest and highest."""
    n = len(values)
    if n <= MAX_POINTS:
        return list(range(n))
    keep: set[int] = set()
    buckets = MAX_POINTS // 3
    for b in range(buckets):
        start, stop = b * n // buckets, (b + 1) * n // buckets
        present = {i: value for i in range(start, stop) if finite(value := values[i])}
        keep.add(start)
        if present:
            keep.add(min(present, key=present.__getitem__))
            keep.add(max(present, key=present.__getitem__))
    keep.add(n - 1)
    return sorted(keep)


def chart(title: str, ylabel: str, lines: list[dict], marks: dict[int, int], *, log: Optional[bool] = None,
          zero: bool = False, note: str = "") -> str:
    """A line chart: `lines` are dicts of label, values (index = step), colour, dash, run, tag;
    `marks` seed index -> the step where the run went wrong (a red vertical line: pass marks only to
    the chart of the series the finding is about); `zero` draws the line y = 0 when it is in range. A
    value that is not finite interrupts its line; the first one is marked with a cross on the top
    edge. A point with no finite neighbour is drawn as a dot; a line that ends before the chart's last
    step ends in a bar ("stopped"); lines that draw the same pixels are named in the caption, with
    `note`."""
    steps = max((len(line["values"]) for line in lines), default=1)
    every = [v for line in lines for v in line["values"]]
    axes = Axes(steps, every, log)
    body = axes.frame(title, ylabel)
    if zero and axes.low < axes.t(0) < axes.high:
        body.append(f'<line x1="{axes.left}" x2="{axes.right}" y1="{axes.y(0):.1f}" y2="{axes.y(0):.1f}" '
                    'class="zero" stroke="#8c959f"/>')
    at: dict[int, list] = {}
    for seed, step in sorted(marks.items()):
        at.setdefault(step, []).append(seed)
    for step, which in sorted(at.items()):  # one line per step, naming every seed that went wrong there
        if axes.x0 <= step <= axes.x1:
            x = axes.x(step)
            who = f"seed{'s' if len(which) > 1 else ''} {', '.join(map(str, which))}"
            body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{axes.top}" y2="{axes.bottom}" class="mark" '
                        f'stroke="#cf222e" stroke-dasharray="3 2" stroke-width="1.2" data-step="{step}" '
                        f'data-seeds="{",".join(map(str, which))}"><title>{who}: went wrong at step {step}'
                        '</title></line>')
    # x to 0.1 px, finer when a pixel holds several steps: every vertex reads back as its exact step
    digits = 1 if axes.x1 < 2000 else 2 if axes.x1 < 20000 else 3
    drawn_as: list[tuple[str, dict[int, float]]] = []
    width = ' stroke-width="1.2" stroke-opacity="0.8"' if len(lines) >= 3 else ' stroke-width="1.5"'
    for line in lines:
        values = line["values"]
        commands, pen_down = [], False
        stretch: list[int] = []
        singles, heights = [], {}
        for i in thin(values):
            v = values[i]
            if not finite(v) or (axes.log and v <= 0):
                if len(stretch) == 1:
                    singles.append(stretch[0])
                pen_down, stretch = False, []
                continue
            commands.append(f"{'' if pen_down else 'M'}{axes.x(i):.{digits}f} {axes.y(v):.1f}")  # implicit lineto
            pen_down, heights[i] = True, axes.y(v)
            stretch.append(i)
        if len(stretch) == 1:
            singles.append(stretch[0])
        dash = f' stroke-dasharray="{line["dash"]}"' if line.get("dash") else ""
        body.append(f'<path class="series" fill="none"{width} d="{" ".join(commands) or "M0 0"}" '
                    f'stroke="{line["colour"]}"{dash} '
                    f'data-run="{esc(line["run"])}" data-tag="{esc(line["tag"])}" data-n="{len(values)}" '
                    f'><title>{esc(line["label"])}</title></path>')
        drawn_as.append((line["label"], heights))
        for i in singles:
            body.append(f'<circle class="single" cx="{axes.x(i):.{digits}f}" cy="{axes.y(values[i]):.1f}" r="2.5" '
                        f'fill="{line["colour"]}" data-step="{i}"><title>{esc(line["label"])}: {fmt(values[i])} '
                        f'at step {i}</title></circle>')
        if values and len(values) - 1 < axes.x1:
            x = axes.x(len(values) - 1)
            body.append(f'<line class="end" x1="{x:.1f}" x2="{x:.1f}" y1="{axes.bottom - 6}" y2="{axes.bottom}" '
                        f'stroke="{line["colour"]}" stroke-width="2" data-step="{len(values) - 1}">'
                        f'<title>{esc(line["label"])}: recorded {len(values)} steps (0-{len(values) - 1})'
                        f'</title></line>')
        bad = next((i for i, v in enumerate(values) if v is not None and not math.isfinite(v)), None)
        if bad is not None:
            x = axes.x(bad)
            body.append(f'<text x="{x:.1f}" y="{axes.top + 4}" class="nan" font-size="12" font-weight="700" '
                        f'fill="{line["colour"]}" '
                        f'text-anchor="middle" data-step="{bad}">\u2715<title>{esc(line["label"])}: '
                        f'{fmt(values[bad])} at step {bad}</title></text>')
    words = [note] if note else []
    words += [f"{', '.join(names)} draw the same line (overlap)" for names in _overlaps(drawn_as)]
    legend = _legend(lines)
    caption = f'<p class="caption">{esc("; ".join(words))}.</p>' if words else ""
    return (f'<svg class="curve" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'width="{WIDTH}" height="{HEIGHT}" font-size="10" fill="#57606a" role="img" aria-label="{esc(title)}" '
            f'{axes.attributes()}>'
            f'<title>{esc(title)}</title>{"".join(body)}</svg>{legend}{caption}')


def _overlaps(drawn: list[tuple[str, dict[int, float]]]) -> list[list[str]]:
    """Groups of series drawn at the same steps within 1.5 px of each other everywhere: one hides the
    others, so the caption names them."""
    groups: list[tuple[dict[int, float], list[str]]] = []
    for label, heights in drawn:
        if not heights:
            continue
        for first, names in groups:
            if first.keys() == heights.keys() and all(abs(first[i] - heights[i]) <= 1.5 for i in heights):
                names.append(label)
                break
        else:
            groups.append((heights, [label]))
    return [names for _, names in groups if len(names) > 1]


def _legend(lines: list[dict]) -> str:
    seen, items = set(), []
    for line in lines:
        key = (line["label"], line["colour"], line.get("dash"))
        if key in seen:
            continue
        seen.add(key)
        style = "dashed" if line.get("dash") else "solid"
        items.append(f'<span><i style="border-top:2px {style} {line["colour"]}"></i>{esc(line["label"])}</span>')
    if len(items) > 12:
        items = items[:12] + [f"<span>and {len(items) - 12} more</span>"]
    return f'<div class="legend">{"".join(items)}</div>'


class _DotGroupFields(TypedDict):
    label: str
    colour: str
    #: seed -> value; the seed None is the user's own solution ("yours")
    values: dict[Optional[int], Optional[float]]


class DotGroup(_DotGroupFields, total=False):
    """One series of `dots`: its legend label, colour and values, optionally with error bars."""

    #: seed -> half-width of the value's error bar, when known
    errors: dict[Optional[int], Optional[float]]
    #: seed -> the point's tooltip, in place of its formatted value
    tips: dict[Optional[int], str]


def dots(title: str, ylabel: str, groups: Sequence[DotGroup], note: str = "") -> str:
    """Values per seed side by side: `groups` are DotGroups (label, colour, `values` seed -> value,
    with `errors` seed -> half-width when known and `tips` seed -> tooltip). A value that is not
    finite is drawn as a cross on the top edge ("diverged")."""
    seeds = sorted({s for g in groups for s in g["values"]}, key=lambda s: (s is None, s if s is not None else 0))
    every = [v for g in groups for v in g["values"].values()]
    every += [v + s * e for g in groups for k, v in g["values"].items() if finite(v)
              for e in [(g.get("errors") or {}).get(k)] if finite(e) for s in (-1, 1)]
    axes = Axes(max(2, len(seeds) + 1), every, None)
    axes.x0, axes.x1 = 0, len(seeds) + 1
    body = axes.frame(title, ylabel, steps=False)
    for position, seed in enumerate(seeds, start=1):
        body.append(f'<text x="{axes.x(position):.1f}" y="{axes.bottom + 14}" class="tick" text-anchor="middle">'
                    f'{"yours" if seed is None else f"seed {seed}"}</text>')
    width = len(groups)
    for index, group in enumerate(groups):
        shift = (index - (width - 1) / 2) * 0.18
        for position, seed in enumerate(seeds, start=1):
            if seed not in group["values"]:
                continue
            v, x = group["values"][seed], axes.x(position + shift)
            who = "your solution" if seed is None else f"seed {seed}"
            shown = (group.get("tips") or {}).get(seed) or ("not finite" if not finite(v) else fmt(v))
            tip = f"{group['label']}, {who}: {shown}"
            if not finite(v):
                body.append(f'<text x="{x:.1f}" y="{axes.top + 10}" class="nan point" font-size="12" '
                            f'font-weight="700" fill="{group["colour"]}" '
                            f'text-anchor="middle" data-seed="{seed}">\u2715<title>{esc(tip)}</title></text>')
                continue
            error = (group.get("errors") or {}).get(seed)
            if finite(error):
                body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{axes.y(v - error):.1f}" '
                            f'y2="{axes.y(v + error):.1f}" stroke="{group["colour"]}"/>')
            body.append(f'<circle class="point" cx="{x:.1f}" cy="{axes.y(v):.1f}" r="4" '
                        f'fill="{group["colour"]}" data-seed="{seed}" data-value="{v!r}">'
                        f'<title>{esc(tip)}</title></circle>')
    legend = _legend([{"label": g["label"], "colour": g["colour"]} for g in groups])
    legend += f'<p class="caption">{esc(note)}</p>' if note else ""
    return (f'<svg class="curve" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'width="{WIDTH}" height="{HEIGHT}" font-size="10" fill="#57606a" role="img" aria-label="{esc(title)}" '
            f'{axes.attributes()}>'
            f'<title>{esc(title)}</title>{"".join(body)}</svg>{legend}')
