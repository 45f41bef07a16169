"""Loaders for the history files in `../shared/market-data/` (see its SOURCES.md), exact:
prices and rates are read as the decimals written.

- Klines: `timestamp` (ISO with offset, the candle's open time), open, high, low, close, volume.
- Funding: `symbol, fundingRateTimestamp (ms, UTC), fundingRate[, markPrice]` (the Bybit and
  Binance files); the zushen parquet files (with pyarrow, the `parquet` extra); or the supervik
  originals `Symbol, Date, Funding Rate` whose naive dates are
  local time: they need `utc_offset_hours` (3 for those files), and are refused without it.

A malformed row stops the load with the file and line (`DataError`), never a silent skip.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from services.backtest.funding import FundingRate


class DataError(ValueError):
    """A history file that cannot be read as what it claims to be."""


@dataclass(frozen=True)
class Bar:
    ts_ms: int  # open time
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def _rows(path: Path, needed: tuple[str, ...]):
    """The rows of a CSV whose header has every `needed` column."""
    try:
        file = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: {exc.strerror}") from None
    with file:
        rows = csv.DictReader(file)
        missing = [c for c in needed if c not in (rows.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: no column {', '.join(missing)} (has {', '.join(rows.fieldnames or [])})")
        yield from rows


def load_klines(path: str | Path) -> list[Bar]:
    path, bars = Path(path), []
    for line, row in enumerate(_rows(path, ("timestamp", "open", "high", "low", "close", "volume")), start=2):
        try:
            stamp = datetime.fromisoformat(row["timestamp"])
            if stamp.tzinfo is None:
                raise ValueError(f"timestamp {row['timestamp']!r} has no UTC offset")
            bar = Bar(int(stamp.timestamp() * 1000), *(Decimal(row[k]) for k in ("open", "high", "low", "close",
                                                                                 "volume")))
        except (ValueError, InvalidOperation) as exc:
            raise DataError(f"{path}:{line}: {exc}") from None
        if not 0 < bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high:
            raise DataError(f"{path}:{line}: prices must be positive with low <= open, close <= high")
        if bars and bar.ts_ms <= bars[-1].ts_ms:
            raise DataError(f"{path}:{line}: timestamps must rise")
        bars.append(bar)
    return bars


def load_funding(path: str | Path, utc_offset_hours: float | None = None) -> list[FundingRate]:
    """Every settlement in the file (CSV, or parquet), oldest first per symbol."""
    path = Path(path)
    if path.suffix == ".parquet":
        return _funding_parquet(path)
    try:
        with path.open(encoding="utf-8") as file:
            header = file.readline()
    except OSError as exc:
        raise DataError(f"{path}: {exc.strerror}") from None
    if "Funding Rate" in header:
        if utc_offset_hours is None:
            raise DataError(f"{path}: its dates are local time without an offset; give utc_offset_hours "
                            "(3 for the supervik files: SOURCES.md)")
        shift = timedelta(hours=utc_offset_hours)
        out = []
        for line, row in enumerate(_rows(path, ("Symbol", "Date", "Funding Rate")), start=2):
            try:
                when = datetime.fromisoformat(row["Date"]).replace(tzinfo=UTC) - shift
                out.append(FundingRate(row["Symbol"].replace("-", ""), int(when.timestamp() * 1000),
                                       Decimal(row["Funding Rate"])))
            except (ValueError, InvalidOperation) as exc:
                raise DataError(f"{path}:{line}: {exc}") from None
    else:
        out = []
        for line, row in enumerate(_rows(path, ("symbol", "fundingRateTimestamp", "fundingRate")), start=2):
            try:
                mark = Decimal(row["markPrice"]) if row.get("markPrice") else None
                out.append(FundingRate(row["symbol"], int(row["fundingRateTimestamp"]), Decimal(row["fundingRate"]),
                                       mark))
            except (ValueError, InvalidOperation) as exc:
                raise DataError(f"{path}:{line}: {exc}") from None
    return sorted(out, key=lambda r: (r.symbol, r.ts_ms))


def _funding_parquet(path: Path) -> list[FundingRate]:
    """The zushen parquet files (SOURCES.md 1a): venue_symbol, settlement_ts (UTC), rate_raw,
    interval_hours, mark_price; predicted rates are left out. Floats come back as the decimals
    they print as."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading parquet needs pyarrow: pip install -e '.[parquet]'") from None
    try:
        table = pq.read_table(path, columns=["venue_symbol", "settlement_ts", "rate_raw", "mark_price",
                                             "interval_hours", "is_predicted"])
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: {exc}") from None
    out = []
    for row in table.to_pylist():
        if row["is_predicted"] or row["rate_raw"] is None:
            continue
        mark, hours = row["mark_price"], row["interval_hours"]
        out.append(FundingRate(row["venue_symbol"], int(row["settlement_ts"].timestamp() * 1000),
                               Decimal(repr(row["rate_raw"])), Decimal(repr(mark)) if mark is not None else None,
                               round(hours * 3_600_000) if hours else None))
    return sorted(out, key=lambda r: (r.symbol, r.ts_ms))
