"""A tiny Prometheus text-format registry: counters and histograms with labels, no dependencies."""

import bisect
from collections.abc import Callable, Iterable
from typing import TypeVar

LabelValues = tuple[str, ...]


def _fmt_labels(names: tuple[str, ...], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{v}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Counter:
    def __init__(self, name: str, help_: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labels = name, help_, labels
        self.values: dict[LabelValues, float] = {}

    def inc(self, *label_values: str, amount: float = 1.0) -> None:
        self.values[label_values] = self.values.get(label_values, 0.0) + amount

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for lv, v in sorted(self.values.items()):
            yield f"{self.name}{_fmt_labels(self.labels, lv)} {v:g}"


class Gauge:
    """A gauge whose samples are computed at scrape time (e.g. sessions by status)."""

    def __init__(
        self, name: str, help_: str, labels: tuple[str, ...], sample: Callable[[], dict[LabelValues, float]]
    ) -> None:
        self.name, self.help, self.labels, self.sample = name, help_, labels, sample

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        for lv, v in sorted(self.sample().items()):
            yield f"{self.name}{_fmt_labels(self.labels, lv)} {v:g}"


DEFAULT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    def __init__(
        self,
        name: str,
        help_: str,
        labels: tuple[str, ...] = (),
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
    ) -> None:
        self.name, self.help, self.labels, self.buckets = name, help_, labels, buckets
        self.counts: dict[LabelValues, list[int]] = {}
        self.sums: dict[LabelValues, float] = {}

    def observe(self, seconds: float, *label_values: str) -> None:
        counts = self.counts.get(label_values)
        if counts is None:
            counts = self.counts[label_values] = [0] * (len(self.buckets) + 1)
        counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.sums[label_values] = self.sums.get(label_values, 0.0) + seconds

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for lv, counts in sorted(self.counts.items()):
            running = 0
            for bound, c in zip(self.buckets, counts, strict=False):
                running += c
                le = 'le="' + f"{bound:g}" + '"'
                yield f"{self.name}_bucket{_fmt_labels(self.labels, lv, le)} {running}"
            running += counts[-1]
            inf = 'le="+Inf"'
            yield f"{self.name}_bucket{_fmt_labels(self.labels, lv, inf)} {running}"
            yield f"{self.name}_sum{_fmt_labels(self.labels, lv)} {self.sums[lv]:g}"
            yield f"{self.name}_count{_fmt_labels(self.labels, lv)} {running}"


_M = TypeVar("_M", "Counter", "Gauge", "Histogram")


class Registry:
    def __init__(self) -> None:
        self.metrics: list[Counter | Gauge | Histogram] = []

    def add(self, metric: _M) -> _M:
        self.metrics.append(metric)
        return metric

    def render(self) -> str:
        return "\n".join(line for m in self.metrics for line in m.render()) + "\n"
