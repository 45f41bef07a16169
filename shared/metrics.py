"""Metrics: names with units, counted as plain ints on the hot path, exported on scrape.

A prometheus `Counter.inc()` takes a lock (~0.4 us); per message that is several percent of
an ingestor's budget. So the cores keep plain counters (`FeedStats`, `WriterStats`,
`LatencyHistogram`) and one collector per service turns them into metric families when
Prometheus scrapes. Collectors take the registry as an argument, so tests use a fresh one.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

# 10 us .. 1 s, the range every stage of this system lives in. 10 and 15 ms are the alert
# tiers' latency edges (prometheus/alerts.yml): a p99 compared at a bound, not guessed inside one.
LATENCY_BUCKETS_S = (
    10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
    1e-3, 2e-3, 2.5e-3, 3e-3, 4e-3, 5e-3, 7.5e-3, 10e-3, 15e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0,
)


class LatencyHistogram:
    """Cumulative bucket counts for export plus the last `keep` samples for percentiles."""

    def __init__(self, keep: int = 65_536) -> None:
        self._bounds_ns = [int(b * 1e9) for b in LATENCY_BUCKETS_S]
        self.counts = [0] * (len(self._bounds_ns) + 1)
        self.sum_ns = 0
        self.count = 0
        self._ring = array("q", bytes(8 * keep))  # fixed size: 8 bytes a sample, allocated once
        self._next = 0

    def observe_ns(self, value_ns: int) -> None:
        self.counts[bisect_left(self._bounds_ns, value_ns)] += 1
        self.sum_ns += value_ns
        self._ring[self._next % len(self._ring)] = value_ns
        self._next += 1
        self.count += 1

    def samples_ns(self) -> list[int]:
        return self._ring[: min(self._next, len(self._ring))].tolist()

    def percentile_us(self, q: float) -> float | None:
        """The q-th percentile (0..100) of the kept samples, in microseconds."""
        samples = sorted(self.samples_ns())
        if not samples:
            return None
        rank = max(0, math.ceil(q / 100 * len(samples)) - 1)
        return samples[rank] / 1000

    def family(self, name: str, doc: str, labels: dict[str, str]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, doc, labels=list(labels))
        cumulative, buckets = 0, []
        for bound, n in zip((*LATENCY_BUCKETS_S, math.inf), self.counts, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
        family.add_metric(list(labels.values()), buckets, self.sum_ns / 1e9)
        return family


class CallbackCollector(Collector):
    """A collector whose families come from a callback, read at scrape time."""

    def __init__(self, families: Callable[[], Iterable]) -> None:
        self._families = families

    def collect(self) -> Iterator:
        yield from self._families()


def counter(name: str, doc: str, labels: dict[str, str], value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def counter_by(name: str, doc: str, labels: dict[str, str], key: str,
               values: dict[str, int]) -> CounterMetricFamily:
    """One sample per `values` item, its key under the label `key`."""
    return _by(CounterMetricFamily(name, doc, labels=[*labels, key]), labels, values)


def gauge_by(name: str, doc: str, labels: dict[str, str], key: str,
             values: dict[str, float]) -> GaugeMetricFamily:
    return _by(GaugeMetricFamily(name, doc, labels=[*labels, key]), labels, values)


def _by(family, labels: dict[str, str], values: dict[str, float]):
    for kind, value in sorted(values.items()):
        family.add_metric([*labels.values(), kind], value)
    return family


def gauge(name: str, doc: str, labels: dict[str, str], value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def serve(registry: CollectorRegistry, host: str, port: int) -> None:
    """Expose `registry` on http://host:port/metrics (127.0.0.1 unless configured)."""
    start_http_server(port, addr=host, registry=registry)


def snapshot(registry: CollectorRegistry) -> dict[str, list[list]]:
    """Every sample of `registry` as JSON-able data: metric family -> [sample name, labels, value]
    (what `arb report` reads back from Redis)."""
    return {family.name: [[s.name, s.labels, s.value] for s in family.samples] for family in registry.collect()}


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile (0..1) of a histogram's cumulative (upper bound, count) buckets, as
    Prometheus's histogram_quantile interpolates it: linearly inside the bucket it falls in; in
    the +Inf bucket, the highest finite bound. None without observations."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == math.inf:
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
