"""Exchange latency (seeds/spread-arbitrage-design.md section 2), pure: samples in, state out.

Each poll of a venue's server time gives one sample: `latency = local time at receipt -
server time`, the age of what the venue stamped by the time it reaches us, plus any
disagreement between the two clocks. The rolling average over the window decides: a venue is
stale when that average is above the limit in either direction (a venue clock running ahead
makes its timestamps as useless as a slow link makes its data), or when no poll succeeded
within the window. When every venue is stale, the local clock is the likely culprit.
"""

from __future__ import annotations

from collections import deque

import msgspec


class ExchangeLatency(msgspec.Struct, frozen=True, kw_only=True):
    """One venue's latency as the strategy reads it (`strategy:latency:{exchange}`)."""

    exchange: str
    server_time_ms: int | None  # of the newest sample
    local_time_ms: int  # when this state was computed
    latency_ms: float | None  # rolling average; None without a sample in the window
    last_latency_ms: float | None
    rtt_ms: float | None  # rolling average round trip of the time request
    samples: int  # in the window
    errors: int  # failed polls since start
    is_stale: bool
    reason: str = ""  # why it is stale

    def fields(self) -> dict[str, str]:
        """Flat text fields for a Redis hash (absent values left out)."""
        out = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool):
                value = int(value)
            elif isinstance(value, float):
                value = round(value, 1)
            out[name] = str(value)
        return out


class LatencyWindow:
    """Samples of one venue over the last `window_ms`."""

    def __init__(self, exchange: str, window_ms: int = 10_000, stale_ms: float = 200.0) -> None:
        self.exchange = exchange
        self.window_ms = window_ms
        self.stale_ms = stale_ms
        self._samples: deque[tuple[int, int, float, float]] = deque()  # local, server, latency, rtt
        self.errors = 0
        self.violations = 0  # samples above the limit, since start
        self.last_error = ""

    def add(self, local_ms: int, server_ms: int, rtt_ms: float) -> None:
        latency = float(local_ms - server_ms)
        if abs(latency) > self.stale_ms:
            self.violations += 1
        self._samples.append((local_ms, server_ms, latency, rtt_ms))

    def failed(self, reason: str) -> None:
        self.errors += 1
        self.last_error = reason

    def state(self, now_ms: int) -> ExchangeLatency:
        samples = self._samples
        while samples and samples[0][0] <= now_ms - self.window_ms:
            samples.popleft()
        if not samples:
            reason = f"no server time in {self.window_ms / 1000:g}s" + (f": {self.last_error}" if self.last_error
                                                                          else "")
            return ExchangeLatency(exchange=self.exchange, server_time_ms=None, local_time_ms=now_ms, latency_ms=None,
                                   last_latency_ms=None, rtt_ms=None, samples=0, errors=self.errors, is_stale=True,
                                   reason=reason)
        average = sum(s[2] for s in samples) / len(samples)
        stale = abs(average) > self.stale_ms
        return ExchangeLatency(
            exchange=self.exchange, server_time_ms=samples[-1][1], local_time_ms=now_ms, latency_ms=average,
            last_latency_ms=samples[-1][2], rtt_ms=sum(s[3] for s in samples) / len(samples), samples=len(samples),
            errors=self.errors, is_stale=stale,
            reason=f"average latency {average:.0f} ms is beyond {self.stale_ms:g} ms" if stale else "")
