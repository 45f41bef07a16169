"""Replaying history through the simulator: a symbol's mid follows the closes of a kline
file (`timestamp,open,high,low,close,volume`, as in market-data/bybit/klines_*), sped up,
instead of the random walk. Books, trades, funding and the other venues stay simulated
around it.
"""

from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

COLUMNS = ("timestamp", "open", "high", "low", "close")


class ReplayError(ValueError):
    """A kline file that cannot be replayed; the message names the file and the line."""


@dataclass(frozen=True)
class KlinePath:
    """Prices through time: each bar goes open -> high or low (whichever is nearer the
    open) -> the other -> close, in equal parts of the bar."""

    symbol: str
    times_ms: list[int]  # since the first bar
    prices: list[float]

    def price_at(self, elapsed_ms: float) -> float | None:
        """The price `elapsed_ms` of market time after the first bar; None past the end."""
        if elapsed_ms >= self.times_ms[-1]:
            return None
        i = bisect.bisect_right(self.times_ms, elapsed_ms) - 1
        t0, t1 = self.times_ms[i], self.times_ms[i + 1]
        return self.prices[i] + (self.prices[i + 1] - self.prices[i]) * (elapsed_ms - t0) / (t1 - t0)


def load_klines(path: str | Path) -> KlinePath:
    """Read a kline CSV named `SYMBOL_...csv`."""
    path = Path(path)
    symbol = path.name.split("_")[0].upper()
    times: list[int] = []
    prices: list[float] = []
    try:
        with path.open(newline="", encoding="utf-8") as file:
            rows = csv.DictReader(file)
            missing = [c for c in COLUMNS if c not in (rows.fieldnames or [])]
            if missing:
                raise ReplayError(f"{path}: no column {', '.join(missing)} (wanted {', '.join(COLUMNS)})")
            start = span = None
            for line, row in enumerate(rows, start=2):
                try:
                    t = int(datetime.fromisoformat(row["timestamp"]).timestamp() * 1000)
                    o, h, low, c = (float(row[k]) for k in ("open", "high", "low", "close"))
                except (TypeError, ValueError) as exc:
                    raise ReplayError(f"{path}:{line}: {exc}") from None
                if min(o, h, low, c) <= 0 or not low <= min(o, c) <= max(o, c) <= h:
                    raise ReplayError(f"{path}:{line}: prices must be positive with low <= open, close <= high")
                start = t if start is None else start
                if times and t - start <= times[-1]:
                    raise ReplayError(f"{path}:{line}: timestamps must rise")
                span = span or 60_000
                if len(times) >= 4:
                    span = t - start - times[-4]
                first, second = (h, low) if h - o < o - low else (low, h)
                for k, price in enumerate((o, first, second, c)):
                    times.append(t - start + span * k // 4)
                    prices.append(price)
    except OSError as exc:
        raise ReplayError(f"{path}: {exc.strerror}") from None
    if len(times) < 2:
        raise ReplayError(f"{path}: no bars")
    times.append(times[-1] + 1)
    prices.append(prices[-1])
    return KlinePath(symbol, times, prices)
