"""The web UI against an engine with an admin token, in Debian's headless Chromium.

The UI's files load without the token; its first API call gets a 401, so it shows a
small form asking for the token. A wrong token gets the form again; the right one is
kept in sessionStorage (this tab) and sent as ``Authorization: Bearer`` on every call:
the services view (admin API) and the invocations view (``POST /query``) render, a
reload needs no new sign-in, and forgetting the token brings the form back. No
screenshots are written (docs/ui belongs to tests/engine/admin/test_webui.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.fixtures.browser import chromium, page_errors, wait_for, wait_view
from tests.fixtures.engine import EngineProcess
from tests.fixtures.service_endpoint import ServiceEndpoint
from tests.security.auth_client import ADMIN_TOKEN, bearer, request

TOKEN_KEY = "logstrate.adminToken"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


@pytest.fixture
def secured(engine_factory: Callable[..., EngineProcess], greeter_endpoint: ServiceEndpoint) -> EngineProcess:
    engine = engine_factory(env={"LOGSTRATE_ADMIN_TOKEN": ADMIN_TOKEN})
    engine.start_and_wait()
    reply = request("POST", f"{engine.admin_url}/deployments", {"uri": greeter_endpoint.url}, bearer(ADMIN_TOKEN))
    assert reply.status == 201, reply
    greeted = request("POST", f"{engine.ingress_url}/Greeter/greet", "Ada")
    assert greeted.status == 200, greeted
    return engine


def _sign_in(driver: WebDriver, token: str) -> None:
    # Found afresh on every try: each refused request of a view renders the form again,
    # so the one found first may be gone by the time it is filled.
    def sign_in(d: WebDriver) -> bool:
        form = d.find_element(By.ID, "login-form")
        field = form.find_element(By.ID, "login-token")
        field.clear()
        field.send_keys(token)
        if field.get_attribute("value") != token:
            return False
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        return True

    wait_for(driver, sign_in, 20, "the token form to be filled and sent")


def _view_text(driver: WebDriver, name: str, *texts: str) -> str:
    def shown(d: WebDriver) -> str | None:
        text = str(wait_view(d, name).text)
        return text if all(t in text for t in texts) else None

    return wait_for(driver, shown, 20, f"view {name} to show {texts}")


def test_the_ui_asks_for_the_token_and_sends_it(secured: EngineProcess, browser: WebDriver) -> None:
    browser.get(f"{secured.admin_url}/ui/#/services")
    text = wait_for(browser, lambda d: d.find_element(By.ID, "login-form").text, 20, "the token form")
    assert "Admin token required" in text and "LOGSTRATE_ADMIN_TOKEN" in text
    assert browser.find_elements(By.CSS_SELECTOR, '#view > .view[data-view="services"]') == []

    _sign_in(browser, "not-the-token")
    wait_for(browser, lambda d: "refused the token" in d.find_element(By.ID, "login-form").text, 20,
             "the form again, saying the token was refused")
    assert browser.execute_script(f"return sessionStorage.getItem('{TOKEN_KEY}')") == "not-the-token"

    _sign_in(browser, ADMIN_TOKEN)
    _view_text(browser, "services", "Deployments (1)", "Greeter", "Counter")
    assert browser.execute_script(f"return sessionStorage.getItem('{TOKEN_KEY}')") == ADMIN_TOKEN
    assert browser.find_element(By.ID, "token").get_attribute("value") == ADMIN_TOKEN

    # Views built on POST /query send it too; a reload keeps it (sessionStorage).
    browser.get(f"{secured.admin_url}/ui/#/invocations")
    _view_text(browser, "invocations", "Greeter")
    browser.refresh()
    _view_text(browser, "invocations", "Greeter")
    assert browser.find_elements(By.ID, "login-form") == []

    # Forgotten (or changed on the engine): the next 401 asks again.
    browser.execute_script(f"sessionStorage.removeItem('{TOKEN_KEY}')")
    browser.get(f"{secured.admin_url}/ui/#/services")
    wait_for(browser, lambda d: d.find_element(By.ID, "login-form"), 20, "the token form after forgetting")

    # The only console errors are the refused requests themselves.
    unexpected = [e["message"] for e in page_errors(browser) if "401" not in e["message"]]
    assert unexpected == []


def test_without_a_token_configured_no_form_is_shown(
    engine_factory: Callable[..., EngineProcess], browser: WebDriver,
) -> None:
    engine = engine_factory()
    engine.start_and_wait()
    browser.get(f"{engine.admin_url}/ui/#/services")
    _view_text(browser, "services", "Deployments (0)")
    assert browser.find_elements(By.ID, "login-form") == []
    assert page_errors(browser) == []
