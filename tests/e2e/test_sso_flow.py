"""Single sign-on in a real browser: `defectlens run` configured for an OpenID Connect provider
(tests/oidc_provider.py on localhost, with its own sign-in page). A deep link opened while
logged out goes through the provider and lands on its page; the login then survives a refresh,
a second tab and a server restart like a password login; logout then refresh shows the login
form; an account the plant does not have is refused with the reason, on the login form."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, restart, run_cli, start_server, stop_server
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def server(tmp_path: Path, oidc_provider: Provider) -> Iterator[Server]:
    """The server the `page` fixture's browser talks to, with single sign-on configured."""
    secret = tmp_path / "sso-client-secret"
    secret.write_text(CLIENT_SECRET)
    os.chmod(secret, 0o600)
    srv = start_server(tmp_path, {"DEFECTLENS_SSO_METADATA_URL": oidc_provider.metadata_url,
                                  "DEFECTLENS_SSO_CLIENT_ID": CLIENT_ID,
                                  "DEFECTLENS_SSO_CLIENT_SECRET_FILE": str(secret)})  # fmt: skip
    yield srv
    stop_server(srv)


def _sign_on(page: Page, email: str) -> None:
    """From the login form, through the provider's sign-in page."""
    page.get_by_role("link", name="Log in with single sign-on").click()
    expect(page.get_by_role("heading", name="Test identity provider")).to_be_visible()
    page.get_by_label("E-mail").fill(email)
    page.get_by_role("button", name="Sign in").click()


def test_a_deep_link_signs_on_through_the_provider_and_the_login_lasts(
    server: Server, page: Page, oidc_provider: Provider
) -> None:
    run_cli(server, "user", "add", "rita", "--role", "reviewer", "--email", "rita@plant.example")
    page.goto(f"{server.url}/review")  # a link a colleague sent, while logged out
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    _sign_on(page, "rita@plant.example")
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page).to_have_url(f"{server.url}/review")
    expect(page.get_by_text("rita", exact=True)).to_be_visible()
    assert oidc_provider.token_requests == 1

    page.reload()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    second = page.context.new_page()
    second.goto(f"{server.url}/")
    expect(second.get_by_role("heading", name="Plant overview")).to_be_visible()
    restart(server)
    page.reload()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    assert oidc_provider.token_requests == 1  # the session lasted; no new sign-on was needed

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in with single sign-on")).to_be_visible()
    page.reload()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_role("heading", name="Review queue")).to_have_count(0)


def test_an_account_the_plant_does_not_have_is_refused_on_the_form(
    server: Server, page: Page
) -> None:
    page.goto(f"{server.url}/trends")
    _sign_on(page, "mallory@plant.example")
    refusal = "No active DefectLens account for mallory@plant.example"
    expect(page.get_by_text(refusal)).to_be_visible()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    # Trying again from the refusal still returns to the page first asked for.
    email = "mallory@plant.example"
    run_cli(server, "user", "add", "mallory", "--role", "viewer", "--email", email)
    _sign_on(page, "mallory@plant.example")
    expect(page.get_by_role("heading", name="Trends")).to_be_visible()
