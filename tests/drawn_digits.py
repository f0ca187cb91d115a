"""Digits drawn the way a user draws one for hyperlab-predict: a round pen's strokes, dark ink on light paper, any
canvas size, the digit anywhere on it, thin or thick, upright or leaning. (Font glyphs are a poor stand-in for
handwriting: a font's 1, 6 and 9 are shaped unlike most people's.)"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float) -> list[tuple[float, float]]:
    """Points along an ellipse from angle `start` to `stop` (degrees, counter-clockwise from 3 o'clock; y down)."""
    angles = np.radians(np.linspace(start, stop, 24))
    return list(zip((cx + rx * np.cos(angles)).tolist(), (cy - ry * np.sin(angles)).tolist(), strict=True))


# Each digit's strokes, as points in its box: x from 0 (left) to 1 (right), y from 0 (top) to 1 (bottom).
STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [arc(0.5, 0.5, 0.5, 0.5, 90, 450)],
    1: [[(0.15, 0.3), (0.6, 0.0), (0.6, 1.0)]],
    2: [[*arc(0.5, 0.3, 0.48, 0.3, 160, -40), (0.0, 1.0), (1.0, 1.0)]],
    3: [arc(0.5, 0.25, 0.45, 0.25, 150, -90) + arc(0.5, 0.73, 0.5, 0.27, 90, -150)],
    4: [[(0.7, 1.0), (0.7, 0.0), (0.0, 0.68), (1.0, 0.68)]],
    5: [[(0.95, 0.0), (0.15, 0.0), (0.08, 0.45), *arc(0.48, 0.68, 0.48, 0.32, 130, -150)]],
    6: [[(0.8, 0.0), (0.35, 0.25), *arc(0.5, 0.72, 0.48, 0.28, 150, 520)]],
    7: [[(0.0, 0.0), (1.0, 0.0), (0.35, 1.0)]],
    8: [arc(0.5, 0.25, 0.4, 0.25, -90, 270) + arc(0.5, 0.73, 0.5, 0.27, 90, 450)],
    9: [[*arc(0.5, 0.3, 0.48, 0.3, 0, 360), (0.98, 0.3), (0.9, 1.0)]],
}

# One way of drawing each digit 0..9: canvas (width, height), the digit's height as a share of the canvas's, its
# width as a share of its height, the pen's width as a share of its height, where its box's top-left corner is (as
# shares of the canvas), its lean (x shift per unit of height), the ink and the paper.
STYLES = [
    ((120, 160), 0.60, 0.70, 0.10, (0.25, 0.15), 0.00, (0, 0, 0), (255, 255, 255)),
    ((200, 200), 0.45, 0.60, 0.06, (0.10, 0.40), 0.10, (30, 30, 30), (255, 255, 255)),
    ((64, 80), 0.70, 0.65, 0.12, (0.20, 0.10), 0.05, (20, 20, 140), (255, 255, 255)),
    ((300, 240), 0.50, 0.55, 0.15, (0.55, 0.30), 0.15, (0, 0, 0), (240, 238, 230)),
    ((90, 90), 0.75, 0.70, 0.08, (0.15, 0.10), 0.00, (60, 60, 60), (255, 255, 255)),
    ((160, 120), 0.55, 0.60, 0.05, (0.05, 0.25), 0.20, (90, 40, 20), (255, 255, 255)),
    ((48, 64), 0.70, 0.75, 0.12, (0.15, 0.10), 0.00, (0, 0, 0), (255, 255, 255)),
    ((256, 256), 0.35, 0.65, 0.10, (0.45, 0.50), 0.10, (40, 40, 40), (250, 250, 250)),
    ((140, 200), 0.65, 0.60, 0.14, (0.15, 0.10), 0.05, (10, 10, 10), (255, 255, 255)),
    ((100, 130), 0.50, 0.70, 0.09, (0.30, 0.25), 0.10, (0, 60, 0), (255, 255, 255)),
]


def draw_digit(digit: int, style: tuple) -> Image.Image:
    """`digit` drawn in `style` (one of `STYLES`) with a round pen."""
    canvas, height_share, width_share, pen_share, corner, lean, ink, paper = style
    height = height_share * canvas[1]
    width, pen = width_share * height, max(2, round(pen_share * height))
    left, top = corner[0] * canvas[0], corner[1] * canvas[1]
    image = Image.new("RGB", canvas, paper)
    draw = ImageDraw.Draw(image)
    for stroke in STROKES[digit]:
        points = [(left + (x + lean * (1 - y)) * width, top + y * height) for x, y in stroke]
        draw.line(points, fill=ink, width=pen, joint="curve")
        for x, y in (points[0], points[-1]):  # round ends, as a pen leaves
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=ink)
    return image


def draw_digits(folder: Path) -> dict[Path, int]:
    """The digits 0..9, each in its own style of `STYLES`, as PNG files in `folder`: {file: digit}."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = {}
    for digit, style in enumerate(STYLES):
        path = folder / f"drawn_{digit}.png"
        draw_digit(digit, style).save(path)
        drawn[path] = digit
    return drawn
