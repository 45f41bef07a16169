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
    """The rows of a CSV whose header has every `needed` column, each with every field."""
    try:
        file = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: {exc.strerror}") from None
    with file:
        rows = csv.DictReader(file)
        try:
            missing = [c for c in needed if c not in (rows.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: no column {', '.join(missing)} (has {', '.join(rows.fieldnames or [])})")
            for line, row in enumerate(rows, start=2):
                short = [c for c in needed if row.get(c) is None]
                if short:
                    fields = sum(value is not None for key, value in row.items() if key is not None)
                    raise DataError(f"{path}:{line}: no {', '.join(short)} (the row has {fields} fields)")
                yield line, row
        except UnicodeDecodeError:
            raise DataError(f"{path}: not a UTF-8 text file") from None


def _number(row: dict, column: str) -> Decimal:
    try:
        return Decimal(row[column])
    except InvalidOperation:
        raise ValueError(f"{column} {row[column]!r} is not a number") from None


def load_klines(path: str | Path) -> list[Bar]:
    path, bars = Path(path), []
    for line, row in _rows(path, ("timestamp", "open", "high", "low", "close", "volume")):
        try:
            stamp = datetime.fromisoformat(row["timestamp"])
            if stamp.tzinfo is None:
                raise ValueError(f"timestamp {row['timestamp']!r} has no UTC offset")
            bar = Bar(int(stamp.timestamp() * 1000), *(_number(row, k) for k in ("open", "high", "low", "close",
                                                                                 "volume")))
        except ValueError as exc:
            raise DataError(f"{path}:{line}: {exc}") from None
        if not 0 < bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high:
            raise DataError(f"{path}:{line}: prices must be positive with low <= open, close <= high")
        if bars and bar.ts_ms <= bars[-1].ts_ms:
            raise DataError(f"{path}:{line}: timestamps must rise")
        bars.append(bar)
    return bars


def load_funding(path: str | Path, utc_offset_hours: float | None = None, venue: str | None = None
                 ) -> list[FundingRate]:
    """Every settlement in the file (CSV, or parquet), oldest first per symbol. With `venue`, a
    parquet file whose `venue` column names another venue is refused."""
    path = Path(path)
    if path.suffix == ".parquet":
        return _funding_parquet(path, venue)
    try:
        with path.open(encoding="utf-8") as file:
            header = file.readline()
    except OSError as exc:
        raise DataError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file (a parquet file needs the .parquet suffix)") from None
    if "Funding Rate" in header:
        if utc_offset_hours is None:
            raise DataError(f"{path}: its dates are local time without an offset; give utc_offset_hours "
                            "(3 for the supervik files: SOURCES.md)")
        shift = timedelta(hours=utc_offset_hours)
        out = []
        for line, row in _rows(path, ("Symbol", "Date", "Funding Rate")):
            try:
                when = datetime.fromisoformat(row["Date"]).replace(tzinfo=UTC) - shift
                out.append(FundingRate(row["Symbol"].replace("-", ""), int(when.timestamp() * 1000),
                                       _number(row, "Funding Rate")))
            except ValueError as exc:
                raise DataError(f"{path}:{line}: {exc}") from None
    else:
        out = []
        for line, row in _rows(path, ("symbol", "fundingRateTimestamp", "fundingRate")):
            try:
                mark = _number(row, "markPrice") if row.get("markPrice") else None
                if not row["fundingRateTimestamp"].isdigit():
                    raise ValueError(f"fundingRateTimestamp {row['fundingRateTimestamp']!r} is not a time in ms")
                out.append(FundingRate(row["symbol"], int(row["fundingRateTimestamp"]), _number(row, "fundingRate"),
                                       mark))
            except ValueError as exc:
                raise DataError(f"{path}:{line}: {exc}") from None
    return sorted(out, key=lambda r: (r.symbol, r.ts_ms))


def _funding_parquet(path: Path, venue: str | None) -> list[FundingRate]:
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
        named = set(pq.read_table(path, columns=["venue"]).column(0).to_pylist()) if venue and "venue" in \
            pq.read_schema(path).names else set()
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: {exc}") from None
    if named - {venue}:
        raise DataError(f"{path}: holds {', '.join(sorted(map(str, named)))}'s settlements, not {venue}'s")
    out = []
    for row in table.to_pylist():
        if row["is_predicted"] or row["rate_raw"] is None:
            continue
        mark, hours = row["mark_price"], row["interval_hours"]
        out.append(FundingRate(row["venue_symbol"], int(row["settlement_ts"].timestamp() * 1000),
                               Decimal(repr(row["rate_raw"])), Decimal(repr(mark)) if mark is not None else None,
                               round(hours * 3_600_000) if hours else None))
    return sorted(out, key=lambda r: (r.symbol, r.ts_ms))
