"""Login throttling: failed logins slow down, then lock out, per account and per client address,
and argon2 work is bounded, so scripted guessing from many sessions gets nowhere and cannot
exhaust the server's memory (each argon2id check holds 64 MiB).

Counts live in the web server's process (the only place passwords are checked); a restart
forgets them, which costs an attacker a restart they cannot cause. A lockout is per address,
and per account only together with the address, so nobody can lock a colleague out by guessing
at their name from elsewhere; the account's own count only adds a growing wait.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_PASSWORD_CHARS = 1024  # longer is refused before any hashing
WINDOW_S = 15 * 60  # failures older than this are forgotten
FREE_FAILURES = 3  # failures (per key, in the window) before any wait
MAX_WAIT_S = 60.0  # the growing wait's cap: 1, 2, 4, ... seconds after each further failure
LOCK_ADDRESS_AFTER = 20  # failures from one address in the window: locked for LOCK_S
LOCK_PAIR_AFTER = 10  # failures for one account from one address: that pair locked for LOCK_S
LOCK_S = 15 * 60
CONCURRENT_HASHES = 2  # argon2 checks at once (each holds 64 MiB); more wait, then are refused
HASH_QUEUE_WAIT_S = 10.0


@dataclass(frozen=True)
class Refusal:
    """Why a login is not even checked now, and for how long (rounded up to whole seconds)."""

    reason: str  # "wait", "locked", "busy", "too long"
    retry_after_s: int

    @property
    def message(self) -> str:
        if self.reason == "too long":
            return f"Passwords have at most {MAX_PASSWORD_CHARS} characters."
        if self.reason == "busy":
            return "The server is busy checking other logins. Please try again in a moment."
        if self.reason == "locked":
            return (f"Too many failed logins: locked for {_minutes(self.retry_after_s)}. "
                    "An administrator can reset the password meanwhile.")  # fmt: skip
        return f"Too many failed logins. Please wait {self.retry_after_s} s and try again."


def _minutes(seconds: int) -> str:
    return f"{max(1, round(seconds / 60))} min"


@dataclass
class _Failures:
    times: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0

    def prune(self, now: float) -> None:
        while self.times and self.times[0] <= now - WINDOW_S:
            self.times.popleft()


class LoginThrottle:
    """Failed-login bookkeeping for one server process (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, ...], _Failures] = {}

    def check(self, username: str, address: str, password: str) -> Refusal | None:
        """A Refusal when this attempt must not be checked now; None when it may be."""
        if len(password) > MAX_PASSWORD_CHARS:
            return Refusal("too long", 0)
        now = self._clock()
        with self._lock:
            worst: Refusal | None = None
            for key in self._keys_of(username, address):
                entry = self._keys.get(key)
                if entry is None:
                    continue
                entry.prune(now)
                refusal = self._refusal(entry, now)
                if refusal is not None and (
                    worst is None or refusal.retry_after_s > worst.retry_after_s
                ):
                    worst = refusal
            return worst

    def failed(self, username: str, address: str) -> list[str]:
        """Count a failed login; the lockouts it starts, in words (for the audit log)."""
        now = self._clock()
        started = []
        with self._lock:
            for key in self._keys_of(username, address):
                entry = self._keys.setdefault(key, _Failures())
                entry.prune(now)
                entry.times.append(now)
                limit = {"address": LOCK_ADDRESS_AFTER, "pair": LOCK_PAIR_AFTER}.get(key[0])
                if limit is not None and len(entry.times) >= limit and entry.locked_until <= now:
                    entry.locked_until = now + LOCK_S
                    started.append(f"{key[0]} {' / '.join(key[1:])} locked for {LOCK_S // 60} min")
            self._forget_old(now)
        return started

    def succeeded(self, username: str, address: str) -> None:
        """A good login clears that account's count from that address (not the address's)."""
        with self._lock:
            self._keys.pop(("pair", username.lower(), address), None)
            self._keys.pop(("account", username.lower()), None)

    @staticmethod
    def _keys_of(username: str, address: str) -> list[tuple[str, ...]]:
        name = username.strip().lower()[:64]
        return [("account", name), ("address", address), ("pair", name, address)]

    def _refusal(self, entry: _Failures, now: float) -> Refusal | None:
        if entry.locked_until > now:
            return Refusal("locked", int(entry.locked_until - now) + 1)
        extra = len(entry.times) - FREE_FAILURES
        if extra < 0 or not entry.times:
            return None
        wait = min(MAX_WAIT_S, 2.0**extra)
        remaining = entry.times[-1] + wait - now
        return Refusal("wait", int(remaining) + 1) if remaining > 0 else None

    def _forget_old(self, now: float) -> None:
        """Keep memory bounded: past 10,000 keys, drop those with nothing left to remember."""
        if len(self._keys) < 10_000:
            return
        for key, entry in list(self._keys.items()):
            entry.prune(now)
            if not entry.times and entry.locked_until <= now:
                del self._keys[key]
