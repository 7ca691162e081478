"""Login rate limiting: refuse a user name or client address after too many failed logins.

The counts live in memory, per server process (waitress runs one process with threads, hence the
lock); a restart forgets them.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

_PRUNE_ABOVE = 10_000  # keys kept before expired ones are swept out


class LoginThrottle:
    """Count failed logins per user name and per client address in a sliding window."""

    def __init__(self, max_failures: int = 5, window_s: float = 600.0, clock=time.monotonic):
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[tuple[str, str], deque] = {}
        self._lock = threading.Lock()

    def retry_after(self, username: str, address: str | None) -> float:
        """Return the seconds until `username` and `address` may try again (0: now)."""
        now = self.clock()
        with self._lock:
            waits = [self._wait(key, now) for key in self._keys(username, address)]
        return max(waits, default=0.0)

    def failed(self, username: str, address: str | None) -> None:
        """Record one failed login of `username` from `address`."""
        now = self.clock()
        with self._lock:
            for key in self._keys(username, address):
                self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > _PRUNE_ABOVE:
                for key in list(self._failures):
                    self._expire(key, now)

    def succeeded(self, username: str) -> None:
        """Forget the failed logins of `username` (those of its address stay)."""
        with self._lock:
            self._failures.pop(("name", username), None)

    @staticmethod
    def _keys(username: str, address: str | None) -> list[tuple[str, str]]:
        return [("name", username)] + ([("addr", address)] if address else [])

    def _expire(self, key, now: float) -> deque | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def _wait(self, key, now: float) -> float:
        times = self._expire(key, now)
        if times is None or len(times) < self.max_failures:
            return 0.0
        # allowed again once enough of the failures have left the window
        return times[-self.max_failures] + self.window_s - now


def minutes(seconds: float) -> int:
    """Return `seconds` as whole minutes, rounded up (at least 1)."""
    return max(1, math.ceil(seconds / 60))
