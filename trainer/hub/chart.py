"""The loss curve of a run as a PNG line chart (train and eval loss against the step), drawn with matplotlib.

matplotlib is the standard Python plotting library. It is imported only when a chart is drawn, and used through a
`Figure` on the Agg canvas, never pyplot: no display, no global figure or backend state, and the same pixels for the
same events (the PNG is written by Pillow, with no timestamp in it).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.runs import folder as rf

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from PIL import Image

LOSS_CURVE_FILE = "loss.png"
CHART_SIZE = (800, 450)
DPI = 100  # CHART_SIZE / DPI inches: a figure of exactly CHART_SIZE pixels


@dataclass
class Series:
    """One line of the chart."""

    label: str
    points: list[tuple[float, float]]
    color: tuple[int, int, int]


TRAIN_COLOR = (31, 119, 180)  # matplotlib's tab:blue
EVAL_COLOR = (255, 127, 14)  # tab:orange


def loss_series(events: Sequence[dict[str, Any]]) -> list[Series]:
    """Train and eval loss against the step, from run events (non-finite values are left out).

    Args:
        events: the run's events (events.jsonl).

    Returns:
        The train-loss and eval-loss series (either may be empty).
    """

    def points(key: str) -> list[tuple[float, float]]:
        out = {}
        for event in events:
            value = event.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value) and isinstance(event.get("step"), int):
                out[event["step"]] = float(value)  # a repeated step (resume) keeps its last value
        return sorted(out.items())

    return [Series("train loss", points("loss"), TRAIN_COLOR), Series("eval loss", points("eval_loss"), EVAL_COLOR)]


def loss_figure(series: Sequence[Series], size: tuple[int, int] = CHART_SIZE) -> Figure:
    """A line chart of the loss series: axes, grid, round ticks (whole steps), a legend and a title.

    Colours, sizes and ticks are set here, not left to rcParams (a matplotlibrc would change them).

    Args:
        series: the lines to draw (empty ones are skipped).
        size: the figure size in pixels.

    Returns:
        A matplotlib Figure (not registered with pyplot).
    """
    from matplotlib.ticker import MaxNLocator

    figure = blank_figure(size)
    axes = figure.add_subplot(facecolor="white")
    axes.set_title("Training loss", fontsize=13, color="black")
    drawn = [s for s in series if s.points]
    if not drawn:
        axes.set_xticks([])
        axes.set_yticks([])
        for spine in axes.spines.values():
            spine.set_color((0.8, 0.8, 0.8))
        axes.text(0.5, 0.5, "no loss logged", color="gray", fontsize=13, ha="center", va="center")
        return figure
    for s in drawn:
        xs, ys = zip(*s.points, strict=True)
        color = tuple(c / 255 for c in s.color)
        axes.plot(xs, ys, color=color, linewidth=2.5, marker="o", markersize=5, label=s.label)
    steps = [x for s in drawn for x, _ in s.points]
    if min(steps) == max(steps):
        axes.set_xlim(steps[0] - 1, steps[0] + 1)  # one logged step: whole steps either side, not +-5 %
    axes.xaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 5, 10], integer=True))  # a step is a whole number
    axes.yaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 5, 10]))  # 1, 2 or 5 x 10^k apart
    axes.tick_params(labelsize=10, colors="black")
    axes.grid(True, color=(0.9, 0.9, 0.9), linewidth=0.8)
    axes.set_axisbelow(True)
    axes.set_xlabel("step", fontsize=10, color="black")
    axes.set_ylabel("loss", fontsize=10, color="black")
    axes.legend(loc="upper right", fontsize=10, frameon=True, facecolor="white", edgecolor=(0.8, 0.8, 0.8))
    return figure


def blank_figure(size: tuple[int, int] = CHART_SIZE) -> Figure:
    """An empty white figure of exactly `size` pixels, laid out by matplotlib (not registered with pyplot)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, facecolor="white", layout="constrained")


def render_loss_chart(series: Sequence[Series], size: tuple[int, int] = CHART_SIZE) -> Image.Image:
    """The loss chart (`loss_figure`) drawn by matplotlib's Agg renderer, which needs no display.

    Args:
        series: the lines to draw (empty ones are skipped).
        size: the image size in pixels.

    Returns:
        An RGB Pillow image.
    """
    return figure_image(loss_figure(series, size))


def figure_image(figure: Figure) -> Image.Image:
    """A matplotlib Figure drawn by the Agg renderer (no display needed), as an RGB Pillow image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgba = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    return rgba.convert("RGB")


def write_png(image: Image.Image, out: Path) -> Path:
    """Write a Pillow image as a PNG (no timestamp in it), atomically."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return rf.write_bytes_atomic(Path(out), buffer.getvalue())


def loss_curve_png(run_dir: Path, out: Path) -> Path:
    """Draw the run's train/eval loss (from events.jsonl) as a PNG line chart, written atomically.

    Args:
        run_dir: the run folder.
        out: where to write the PNG.

    Returns:
        out.
    """
    return write_png(render_loss_chart(loss_series(rf.read_events(Path(run_dir)))), out)
