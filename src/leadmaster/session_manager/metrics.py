"""The session-manager's Prometheus metrics: sessions by status, sends by outcome, send latency."""

from collections import Counter as Tally
from collections.abc import Callable

from leadmaster.common.metrics import Counter, Gauge, Histogram, LabelValues, Registry


class Metrics:
    def __init__(self) -> None:
        self.registry = Registry()
        self.sends = self.registry.add(
            Counter(
                "session_manager_sends_total",
                "Send requests by outcome (sent, replayed, error code).",
                ("outcome",),
            )
        )
        self.send_latency = self.registry.add(
            Histogram("session_manager_send_seconds", "Send handling time by outcome.", ("outcome",))
        )
        self.requests = self.registry.add(
            Counter(
                "session_manager_http_requests_total",
                "HTTP requests by method, route and status.",
                ("method", "route", "status"),
            )
        )

    def track_sessions(self, statuses: Callable[[], list[str]]) -> None:
        def sample() -> dict[LabelValues, float]:
            return {(status,): float(n) for status, n in Tally(statuses()).items()}

        self.registry.add(Gauge("session_manager_sessions", "Known sessions by status.", ("status",), sample))

    def observe_request(self, method: str, route: str, status: int, _elapsed: float) -> None:
        self.requests.inc(method, route, str(status))
