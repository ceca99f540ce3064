"""Small line charts as PNG with Pillow only (the project does not depend on matplotlib)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def line_chart(path: str | Path, series: dict[str, list[tuple[float, float]]], *, title: str, x_label: str,
               y_label: str, y_range: tuple[float, float] = (0.0, 1.0), size: tuple[int, int] = (640, 400)) -> Path:
    """Write a PNG with one polyline (with dots) per named series of (x, y) points, a legend and labelled axes."""
    width, height = size
    left, right, top, bottom = 60, 170, 36, 46
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    xs = [x for pts in series.values() for x, _ in pts] or [0.0, 1.0]
    x0, x1 = min(0.0, min(xs)), max(xs) if max(xs) > 0 else 1.0
    y0, y1 = y_range
    px = lambda x: left + (x - x0) / max(x1 - x0, 1e-12) * (width - left - right)
    py = lambda y: height - bottom - (min(max(y, y0), y1) - y0) / max(y1 - y0, 1e-12) * (height - top - bottom)
    d.text((left, 10), title, fill="black")
    d.line([(left, top), (left, height - bottom), (width - right, height - bottom)], fill="black")
    for i in range(6):
        y = y0 + (y1 - y0) * i / 5
        d.line([(left - 4, py(y)), (width - right, py(y))], fill=(225, 225, 225))
        d.text((8, py(y) - 6), f"{y:.2f}", fill="black")
    for i in range(6):
        x = x0 + (x1 - x0) * i / 5
        d.text((px(x) - 10, height - bottom + 6), f"{x:.3g}", fill="black")
    d.text(((left + width - right) // 2 - 40, height - 20), x_label, fill="black")
    d.text((8, top - 20), y_label, fill="black")
    for k, (name, pts) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        pts = sorted(pts)
        if len(pts) > 1:
            d.line([(px(x), py(y)) for x, y in pts], fill=colour, width=2)
        for x, y in pts:
            d.ellipse([px(x) - 3, py(y) - 3, px(x) + 3, py(y) + 3], fill=colour)
        d.rectangle([width - right + 10, top + 16 * k + 4, width - right + 20, top + 16 * k + 14], fill=colour)
        d.text((width - right + 26, top + 16 * k + 2), name, fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
