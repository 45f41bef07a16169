"""The equity curve as a PNG (written with zlib, no plotting library) and the self-contained
HTML report (the curve as inline SVG, the figures, the trades): the same inputs give the same
bytes.
"""

from __future__ import annotations

import html
import itertools
import struct
import zlib
from decimal import Decimal

WIDTH, HEIGHT, MARGIN = 900, 320, 20


def _scale(equity: list[tuple[int, Decimal]], width: int, height: int):
    """Time and value -> pixel, with 0 always in range."""
    t0, t1 = equity[0][0], equity[-1][0]
    values = [float(v) for _, v in equity]
    lo, hi = min(*values, 0.0), max(*values, 0.0)
    span_t, span_v = max(1, t1 - t0), (hi - lo) or 1.0
    return lambda t, v: (MARGIN + round((t - t0) / span_t * (width - 2 * MARGIN)),
                         height - MARGIN - round((v - lo) / span_v * (height - 2 * MARGIN)))


def _points(equity: list[tuple[int, Decimal]], width: int, height: int) -> list[tuple[int, int]]:
    if not equity:
        return []
    at = _scale(equity, width, height)
    return [at(t, float(v)) for t, v in equity]


def equity_png(equity: list[tuple[int, Decimal]], width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """A white canvas, a grey zero line and the equity curve in blue, as PNG bytes."""
    pixels = [bytearray(b"\xff" * width * 3) for _ in range(height)]

    def put(x: int, y: int, rgb: tuple[int, int, int]) -> None:
        if 0 <= x < width and 0 <= y < height:
            pixels[y][3 * x:3 * x + 3] = bytes(rgb)

    points = _points(equity, width, height)
    if points:
        zero = _scale(equity, width, height)(equity[0][0], 0.0)[1]
        for x in range(MARGIN, width - MARGIN):
            put(x, zero, (190, 190, 190))
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            steps = max(abs(x1 - x0), abs(y1 - y0), 1)
            for i in range(steps + 1):
                put(x0 + round((x1 - x0) * i / steps), y0 + round((y1 - y0) * i / steps), (31, 90, 180))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(row) for row in pixels)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def report_html(title: str, summary: dict[str, str], equity: list[tuple[int, Decimal]], trades_csv: str) -> str:
    points = " ".join(f"{x},{y}" for x, y in _points(equity, WIDTH, HEIGHT))
    rows = [line.split(",") for line in trades_csv.strip().splitlines()]
    table = "".join(
        "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(cell)}</{'th' if i == 0 else 'td'}>"
                         for cell in row) + "</tr>" for i, row in enumerate(rows))
    figures = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font:14px sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse;margin:12px 0}}
th,td{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f3f3f3}}</style></head>
<body><h1>{html.escape(title)}</h1>
<h2>Equity (realised PnL, open funding and fees), USD</h2>
<svg width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">
<rect width="100%" height="100%" fill="#fff" stroke="#ccc"/>
<polyline fill="none" stroke="#1f5ab4" stroke-width="1.5" points="{points}"/></svg>
<h2>Figures</h2><table>{figures}</table>
<h2>Trades</h2><table>{table}</table>
</body></html>
"""
