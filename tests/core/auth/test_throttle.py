"""Login throttling: a growing wait, then lockouts per address and per account-and-address,
never a lockout of an account from everywhere; the password length cap; and, over HTTP, the
form answering 429 with Retry-After, an audited lockout, and addresses behind a trusted proxy."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from core.auth import throttle, web
from core.auth.throttle import LoginThrottle
from core.config import Settings
from db.engine import Database
from db.models import AuditEntry, Role


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_wait_grows_after_the_free_failures_and_a_success_clears_it() -> None:
    clock = Clock()
    t = LoginThrottle(clock)
    for _ in range(throttle.FREE_FAILURES):
        assert t.check("rita", "10.0.0.5", "x") is None
        t.failed("rita", "10.0.0.5")
    t.failed("rita", "10.0.0.5")  # the 4th: wait 2 s
    refusal = t.check("rita", "10.0.0.5", "x")
    assert refusal is not None and refusal.reason == "wait" and refusal.retry_after_s == 3
    clock.now += 2.5
    assert t.check("rita", "10.0.0.5", "x") is None
    t.failed("rita", "10.0.0.5")  # the 5th: 4 s
    assert t.check("rita", "10.0.0.5", "x").retry_after_s == 5  # type: ignore[union-attr]
    clock.now += 5
    t.succeeded("rita", "10.0.0.5")
    assert t.check("rita", "10.0.0.5", "x") is None  # ... the address's own count remains
    clock.now += throttle.WINDOW_S + 1
    assert t.check("rita", "10.0.0.5", "x") is None


def test_guessing_one_name_from_an_address_locks_that_pair_not_the_account() -> None:
    clock = Clock()
    t = LoginThrottle(clock)
    locks: list[str] = []
    for _ in range(throttle.LOCK_PAIR_AFTER):
        locks += t.failed("admin", "10.6.6.6")
        clock.now += throttle.MAX_WAIT_S  # a patient attacker waits out every delay
    assert locks == ["pair admin / 10.6.6.6 locked for 15 min"]
    refusal = t.check("admin", "10.6.6.6", "x")
    assert refusal is not None and refusal.reason == "locked"
    assert "Too many failed logins: locked for 1" in refusal.message  # 14-15 min left
    clock.now += throttle.MAX_WAIT_S  # the account's own wait has passed by now
    assert t.check("admin", "10.0.0.1", "x") is None  # the real admin, elsewhere, gets in
    clock.now += throttle.LOCK_S
    after = t.check("admin", "10.6.6.6", "x")
    assert after is None or after.reason == "wait"  # the lock is over


def test_many_names_from_one_address_lock_the_address() -> None:
    clock = Clock()
    t = LoginThrottle(clock)
    locks: list[str] = []
    for i in range(throttle.LOCK_ADDRESS_AFTER):
        locks += t.failed(f"user{i}", "10.6.6.6")  # a script that ignores the waits
        clock.now += 1
    assert "address 10.6.6.6 locked for 15 min" in locks
    assert t.check("someone", "10.6.6.6", "x").reason == "locked"  # type: ignore[union-attr]
    assert t.check("someone", "10.0.0.9", "x") is None


def test_an_overlong_password_is_refused_before_hashing() -> None:
    refusal = LoginThrottle().check("rita", "10.0.0.5", "x" * (throttle.MAX_PASSWORD_CHARS + 1))
    assert refusal is not None and refusal.reason == "too long"


@pytest.fixture
def client(db: Database, settings: Settings) -> TestClient:
    auth = web.WebAuth(settings)
    return TestClient(Starlette(routes=auth.routes()), follow_redirects=False)


def _attempt(client: TestClient, password: str):  # type: ignore[no-untyped-def]
    got = client.get(web.LOGIN_PATH)
    csrf = got.text.split('name="csrf" value="')[1].split('"')[0]
    return client.post(web.LOGIN_PATH, data={"username": "rita", "password": password,
                                             "csrf": csrf, "next": "/"})  # fmt: skip


def test_the_form_answers_429_with_retry_after_and_audits_a_lockout(
    client: TestClient, db: Database, make_user, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    make_user("rita", Role.REVIEWER, password="correct-horse-1")
    monkeypatch.setattr(throttle, "MAX_WAIT_S", 0.0)  # no waits: straight to the lockout
    codes = [_attempt(client, f"guess-{i}").status_code for i in range(throttle.LOCK_PAIR_AFTER)]
    assert codes == [401] * throttle.LOCK_PAIR_AFTER
    locked = _attempt(client, "correct-horse-1")  # even the right password, while locked
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 800
    assert "Too many failed logins" in locked.text
    cookies = locked.headers.get_list("set-cookie")
    assert not any(c.startswith("defectlens_session") for c in cookies)
    with db.read() as s:
        entries = s.query(AuditEntry).filter(AuditEntry.action == "login_locked").all()
    assert len(entries) == 1 and entries[0].username == "rita"


def test_the_client_address_comes_from_a_trusted_proxy_only() -> None:
    from starlette.requests import Request

    def request(peer: str, forwarded: str | None) -> Request:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return Request({"type": "http", "client": (peer, 1234), "headers": headers})

    trusted = ("127.0.0.1",)
    assert web.client_address(request("127.0.0.1", "1.2.3.4, 10.0.0.7"), trusted) == "10.0.0.7"
    assert web.client_address(request("10.9.9.9", "10.0.0.7"), trusted) == "10.9.9.9"
    assert web.client_address(request("127.0.0.1", None), trusted) == "127.0.0.1"
