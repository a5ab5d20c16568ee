"""The recap chart: one horizontal bar per pemda (or per office, or per province), sorted
weakest first, with the 80 target line and the deadline in the title. Drawn with matplotlib's
object API on the Agg canvas: no pyplot, so no global figure state and no display needed, and
safe in a worker thread."""

from __future__ import annotations

import io
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from storage.scoring import TARGET

WIDTH_INCHES = 7.0  # at DPI: about 1050 px, sharp on a phone held upright
DPI = 150
BAR_INCHES = 0.28
MAX_HEIGHT_INCHES = 40.0  # Telegram takes photos up to 10,000 px in width plus height
MAX_LABELLED_BARS = 80  # past this, names would overlap: the bars alone show the spread
RED, AMBER, GREEN = "#c0392b", "#e67e22", "#27ae60"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float  # 0-100


def colour(value: float) -> str:
    if value >= TARGET:
        return GREEN
    return AMBER if value >= TARGET - 20 else RED


def recap_chart(bars: list[Bar], *, title: str, subtitle: str, axis_label: str) -> bytes:
    """A PNG. `title` and `subtitle` name the period, scope and deadline."""
    ordered = sorted(bars, key=lambda bar: (bar.value, bar.label))
    count = max(1, len(ordered))
    labelled = count <= MAX_LABELLED_BARS
    height = min(MAX_HEIGHT_INCHES, 1.8 + BAR_INCHES * count if labelled else 12.0)
    figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = list(range(len(ordered)))
    axes.barh(
        positions,
        [bar.value for bar in ordered],
        color=[colour(bar.value) for bar in ordered],
        height=0.75 if labelled else 1.0,
    )
    if labelled:
        axes.set_yticks(positions, [bar.label for bar in ordered], fontsize=8)
        for position, bar in zip(positions, ordered, strict=True):
            axes.text(min(bar.value + 1, 93), position, f"{bar.value:.0f}", va="center", fontsize=7)
    else:
        axes.set_yticks([])
        axes.set_ylabel(f"{count} (urut dari terendah)", fontsize=8)
    axes.axvline(TARGET, color="#2c3e50", linestyle="--", linewidth=1.2)
    axes.text(TARGET, -0.9, f" target {TARGET:.0f}", fontsize=8, va="bottom", color="#2c3e50")
    axes.set_xlim(0, 100)
    axes.set_ylim(-1, max(len(ordered), 1))
    axes.invert_yaxis()  # the first bar at the top: the weakest, who needs a call first
    axes.set_xlabel(axis_label, fontsize=8)
    axes.tick_params(axis="x", labelsize=8)
    axes.grid(axis="x", alpha=0.3)
    figure.suptitle(title, fontsize=11, fontweight="bold")
    axes.set_title(subtitle, fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
