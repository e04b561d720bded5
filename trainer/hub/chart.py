"""The loss curve of a run as a PNG line chart (train and eval loss against the step), drawn with Pillow.

Pillow is already installed with gradio/transformers; a plotting library would add weight for one chart.
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
    from PIL import Image

LOSS_CURVE_FILE = "loss.png"


@dataclass
class Series:
    """One line of the chart."""

    label: str
    points: list[tuple[float, float]]
    color: tuple[int, int, int]


TRAIN_COLOR = (31, 119, 180)
EVAL_COLOR = (255, 127, 14)


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


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high].

    Args:
        low: the smallest value shown.
        high: the largest value shown (> low).
        count: about how many ticks.

    Returns:
        Increasing tick values within [low, high].
    """
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = min((m * power for m in (1, 2, 5, 10)), key=lambda candidate: abs(math.log(candidate / raw)))
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def render_loss_chart(series: Sequence[Series], size: tuple[int, int] = (800, 450)) -> Image.Image:
    """A clean line chart of the loss series: axes, grid, tick labels, a legend and a title.

    Args:
        series: the lines to draw (empty ones are skipped).
        size: the image size in pixels.

    Returns:
        An RGB Pillow image.
    """
    from PIL import Image, ImageDraw

    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(15), _font(12)
    left, right, top, bottom = 72, width - 24, 44, height - 56
    draw.text((width // 2, 14), "Training loss", fill="black", font=font, anchor="mt")
    drawn = [s for s in series if s.points]
    if not drawn:
        draw.rectangle((left, top, right, bottom), outline=(200, 200, 200))
        draw.text(((left + right) // 2, (top + bottom) // 2), "no loss logged", fill="gray", font=font, anchor="mm")
        return image
    xs = [x for s in drawn for x, _ in s.points]
    ys = [y for s in drawn for _, y in s.points]
    x_low, x_high = min(xs), max(xs)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    pad = (max(ys) - min(ys)) * 0.08 or max(abs(max(ys)) * 0.05, 0.05)
    y_low, y_high = min(ys) - pad, max(ys) + pad

    def at(x: float, y: float) -> tuple[float, float]:
        return (
            left + (x - x_low) / (x_high - x_low) * (right - left),
            bottom - (y - y_low) / (y_high - y_low) * (bottom - top),
        )

    x_pad = (x_high - x_low) * 0.03
    x_low, x_high = x_low - x_pad, x_high + x_pad
    for tick in nice_ticks(y_low, y_high, count=6):
        y = at(x_low, tick)[1]
        draw.line((left, y, right, y), fill=(230, 230, 230))
        draw.text((left - 8, y), f"{tick:g}", fill="black", font=small, anchor="rm")
    for tick in nice_ticks(x_low, x_high, count=8):
        if float(tick).is_integer() and tick >= 0:
            x = at(tick, y_low)[0]
            draw.line((x, top, x, bottom), fill=(240, 240, 240))
            draw.text((x, bottom + 6), f"{tick:g}", fill="black", font=small, anchor="mt")
    draw.line((left, top, left, bottom), fill="black", width=1)
    draw.line((left, bottom, right, bottom), fill="black", width=1)
    draw.text(((left + right) // 2, height - 8), "step", fill="black", font=small, anchor="mb")
    draw.text((12, (top + bottom) // 2), "loss", fill="black", font=small, anchor="lm")
    for s in drawn:
        pixels = [at(x, y) for x, y in s.points]
        if len(pixels) > 1:
            draw.line(pixels, fill=s.color, width=3, joint="curve")
        for x, y in pixels:
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=s.color)
    legend_x, legend_y = right - 130, top + 8
    draw.rectangle(
        (legend_x - 8, legend_y - 6, right - 6, legend_y + 22 * len(drawn) - 2), fill="white", outline=(200,) * 3
    )
    for index, s in enumerate(drawn):
        y = legend_y + 8 + 22 * index
        draw.line((legend_x, y, legend_x + 24, y), fill=s.color, width=3)
        draw.text((legend_x + 32, y), s.label, fill="black", font=small, anchor="lm")
    return image


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def loss_curve_png(run_dir: Path, out: Path) -> Path:
    """Draw the run's train/eval loss (from events.jsonl) as a PNG line chart, written atomically.

    Args:
        run_dir: the run folder.
        out: where to write the PNG.

    Returns:
        out.
    """
    image = render_loss_chart(loss_series(rf.read_events(Path(run_dir))))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return rf.write_bytes_atomic(Path(out), buffer.getvalue())
