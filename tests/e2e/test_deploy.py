"""The deployment guide, tried: deploy/nginx-defectlens.conf in front of `defectlens run`
(listening on 127.0.0.1 only, Secure cookies) with a self-signed certificate, driven by Chromium
over HTTPS; and deploy/*.service pass `systemd-analyze verify` for this checkout."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e.conftest import CHROMIUM_FLAGS, REPO, _cli, _free_port, _stop, chromium_path
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
DEPLOY = REPO / "deploy"


def _need(tool: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else "")
    if not path:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing; .ci/run installs it")
        pytest.skip(f"{tool} not installed")
    return path


def _nginx_config(tmp: Path, https_port: int, http_port: int, app_port: int) -> Path:
    """The deploy file, unchanged but for ports and certificate paths, in a minimal nginx.conf."""
    site = (DEPLOY / "nginx-defectlens.conf").read_text()
    for old, new in (
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("127.0.0.1:8501", f"127.0.0.1:{app_port}"),
        ("/etc/ssl/certs/defectlens.crt", str(tmp / "cert.pem")),
        ("/etc/ssl/private/defectlens.key", str(tmp / "key.pem")),
    ):
        assert old in site, f"deploy/nginx-defectlens.conf no longer has {old!r}"
        site = site.replace(old, new)
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"daemon off;\nworker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n access_log {tmp}/access.log;\n client_body_temp_path {tmp}/body;\n"
        f" proxy_temp_path {tmp}/proxy;\n{site}\n}}\n"
    )
    return conf


@contextmanager
def _behind_tls(tmp_path: Path, sso: Provider | None = None) -> Iterator[tuple[str, str, str, int]]:
    """(https url, admin, password, the app's own port) with nginx and the app running; with a
    provider, single sign-on configured as the deployment guide says (the callback URL is the
    proxy's https one)."""
    nginx, openssl = _need("nginx"), _need("openssl")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=localhost", "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    home = tmp_path / "home"
    app_port, https_port, http_port = _free_port(), _free_port(), _free_port()
    url = f"https://localhost:{https_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEFECTLENS_")}
    env.update(DEFECTLENS_HOME=str(home), DEFECTLENS_LISTEN_ADDRESS="127.0.0.1",
               DEFECTLENS_SECURE_COOKIES="1", DEFECTLENS_LOGIN_DELAY_S="0.1")  # fmt: skip
    if sso is not None:
        secret = tmp_path / "sso-client-secret"
        secret.write_text(CLIENT_SECRET)
        os.chmod(secret, 0o600)
        env.update(DEFECTLENS_SSO_METADATA_URL=sso.metadata_url, DEFECTLENS_SSO_CLIENT_ID=CLIENT_ID,
                   DEFECTLENS_SSO_CLIENT_SECRET_FILE=str(secret),
                   DEFECTLENS_SSO_REDIRECT_URI=f"{url}/session/sso/callback")  # fmt: skip
    creds = json.loads(subprocess.run([_cli(), "init", "--json"], env=env, check=True,
                                      capture_output=True).stdout)  # fmt: skip
    if sso is not None:
        rita = ["user", "add", "rita", "--role", "reviewer", "--email", "rita@plant.example"]
        subprocess.run([_cli(), *rita], env=env, check=True, capture_output=True)
    log = (tmp_path / "server.log").open("wb")
    app = subprocess.Popen([_cli(), "run", "--port", str(app_port), "--no-demo"], env=env,
                           stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    conf = _nginx_config(tmp_path, https_port, http_port, app_port)
    proxy = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path)],
                             stderr=subprocess.PIPE)  # fmt: skip
    try:
        _wait_healthy(url, app, tmp_path / "server.log")
        yield url, creds["admin"], creds["password"], app_port
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        _stop(app)
        log.close()


@pytest.fixture
def behind_tls(tmp_path: Path) -> Iterator[tuple[str, str, str, int]]:
    """(https url, admin, password, the app's own port) with nginx and the app running."""
    with _behind_tls(tmp_path) as served:
        yield served


def _wait_healthy(url: str, app: subprocess.Popen[bytes], log: Path) -> None:
    import ssl

    unverified = ssl._create_unverified_context()  # the test's own self-signed certificate
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", context=unverified) as r:
                if r.read() == b"ok":
                    return
        except (OSError, urllib.error.URLError):
            pass
        if app.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"not healthy behind the proxy:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


@contextmanager
def _https_page() -> Iterator[Page]:
    """A page in headless Debian Chromium that accepts the test's self-signed certificate."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True,
                                     args=CHROMIUM_FLAGS)  # fmt: skip
        page = browser.new_context(ignore_https_errors=True).new_page()
        page.set_default_timeout(30_000)
        yield page
        browser.close()


def test_login_over_https_through_the_proxy_keeps_a_secure_session(
    behind_tls: tuple[str, str, str, int],
) -> None:
    url, admin, password, app_port = behind_tls
    # The app itself answers on loopback only.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", app_port)) == 0
    with _https_page() as page:
        page.goto(f"{url}/trends?period=7d")  # a deep link, logged out
        page.get_by_label("Username").fill(admin)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_role("button", name="Log in").click()
        # The page renders: the WebSocket went through the proxy.
        # (the first page of a fresh server imports the charting stack: allow it a minute)
        expect(page.get_by_role("heading", name="Trends")).to_be_visible(timeout=60_000)
        assert page.url == f"{url}/trends?period=7d"
        cookie = next(c for c in page.context.cookies() if c["name"] == "defectlens_session")
        assert cookie["secure"] and cookie["httpOnly"]
        page.reload()
        expect(page.get_by_role("heading", name="Trends")).to_be_visible()
        expect(page.get_by_test_id("stException")).to_have_count(0)


def test_single_sign_on_through_the_proxy_returns_to_the_https_page(
    tmp_path: Path, oidc_provider: Provider
) -> None:
    with (
        _behind_tls(tmp_path, oidc_provider) as (url, _admin, _password, _port),
        _https_page() as page,
    ):
        page.goto(f"{url}/review")  # a deep link, logged out
        page.get_by_role("link", name="Log in with single sign-on").click()
        page.get_by_label("E-mail").fill("rita@plant.example")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Review queue")).to_be_visible(timeout=60_000)
        assert page.url == f"{url}/review"
        cookie = next(c for c in page.context.cookies() if c["name"] == "defectlens_session")
        assert cookie["secure"] and cookie["httpOnly"]
        expect(page.get_by_test_id("stException")).to_have_count(0)


def _address_of_this_host() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 1))
        return str(probe.getsockname()[0])


def test_the_app_listening_on_loopback_is_not_reachable_on_other_interfaces(
    behind_tls: tuple[str, str, str, int],
) -> None:
    _url, _admin, _password, app_port = behind_tls
    try:
        address = _address_of_this_host()
    except OSError:
        pytest.skip("this machine has no other interface")
    if address.startswith("127."):
        pytest.skip("this machine has no other interface")
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex((address, app_port)) != 0


@pytest.mark.parametrize("unit", ["defectlens.service", "defectlens-worker.service"])
def test_the_systemd_units_verify_for_this_checkout(unit: str, tmp_path: Path) -> None:
    analyze = _need("systemd-analyze")
    text = (DEPLOY / unit).read_text().replace("/opt/defectlens", str(REPO))
    rendered = tmp_path / unit
    rendered.write_text(text)
    proc = subprocess.run([analyze, "verify", str(rendered)], capture_output=True, text=True)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if unit in line and "Failed to" not in line]  # fmt: skip
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr
    start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    command = start.removeprefix("ExecStart=").split()
    assert Path(command[0]).exists(), command  # the console script `make install` creates
    help_run = subprocess.run([command[0], command[1], "--help"], capture_output=True)
    assert help_run.returncode == 0


def test_the_systemd_try_script_parses() -> None:
    """deploy/try-systemd.sh (run by hand as root: README, deploying, step 3) is valid bash."""
    proc = subprocess.run(["bash", "-n", str(DEPLOY / "try-systemd.sh")], capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
