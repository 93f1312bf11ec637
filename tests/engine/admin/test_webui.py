"""The web UI at ``/ui``, in Debian's headless Chromium, against real servers and a real
official-SDK endpoint (tests/fixtures/official_sdk_ui.py).

Views built on ``POST /query`` (invocations, journal, state, promises, the click-through
register → invoke → journal → kill) run against both systems (``system``): our engine,
which serves the UI itself, and the real restate-server, the UI's files put in front of
its admin API by tests/fixtures/ui_proxy.py (proving the UI right against the
reference). The views built on the admin API alone (services, deployments,
subscriptions), the invocation actions (tests/engine/admin/test_webui_actions.py) and
the file serving run against our engine. Each view is screenshotted; our engine's
pictures go to docs/ui/ only when ``LOGSTRATE_UI_SCREENSHOTS=1`` (to refresh the
documentation's pictures), else, like restate-server's, to a temporary folder, so a test
run leaves the checkout unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from engine.admin.webui import CONTENT_SECURITY_POLICY
from tests.engine.test_invocations import call as ingress_call
from tests.fixtures.browser import (
    chromium,
    mark_stale,
    open_view,
    page_errors,
    press_action,
    view_text,
    wait_for,
    wait_text,
    wait_view,
)
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic, publish
from tests.fixtures.ports import free_port, wait_until
from tests.fixtures.restate_server import RestateServer
from tests.fixtures.service_endpoint import PROJECT_ROOT, ServiceEndpoint, ServiceEndpoints
from tests.fixtures.systems import SYSTEMS, http, module_engine

UI_APP = "tests.fixtures.official_sdk_ui:app"
SCRATCH_SHOTS = Path(tempfile.gettempdir()) / "logstrate-ui-screenshots"
SHOTS = PROJECT_ROOT / "docs" / "ui" if os.environ.get("LOGSTRATE_UI_SCREENSHOTS") == "1" else SCRATCH_SHOTS
UI_FILES = PROJECT_ROOT / "engine" / "admin" / "ui"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def ui_endpoint(service_endpoints: ServiceEndpoints) -> ServiceEndpoint:
    return service_endpoints.get(UI_APP)


@pytest.fixture(scope="module")
def proxied(restate_server: RestateServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Our UI's origin in front of restate-server's admin API."""
    port = free_port()
    log = (tmp_path_factory.mktemp("ui-proxy") / "proxy.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "tests.fixtures.ui_proxy", "--target", restate_server.admin_url,
                             "--port", str(port)], cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        with urllib.request.urlopen(f"{base}/ui/", timeout=1) as resp:
            return bool(resp.status == 200)

    try:
        wait_until(up, 30, "the UI proxy")
        yield base
    finally:
        proc.kill()
        proc.wait(10)
        log.close()


@dataclass(frozen=True)
class UiSystem:
    """One system under test as the UI sees it: the origin serving ``/ui/`` (same-origin
    with the admin API and ``/query`` it calls) and the system's own admin and ingress."""

    name: str
    ui: str
    admin_url: str
    ingress_url: str


@pytest.fixture(scope="module")
def our_engine(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    for engine in module_engine(kafka, tmp_path_factory, "webui"):
        engine.wait_leading_all()
        yield engine


@pytest.fixture(scope="module", params=SYSTEMS)
def system(request: pytest.FixtureRequest) -> UiSystem:
    if request.param == "logstrate":
        engine: EngineProcess = request.getfixturevalue("our_engine")
        return UiSystem("logstrate", engine.admin_url, engine.admin_url, engine.ingress_url)
    server: RestateServer = request.getfixturevalue("restate_server")
    return UiSystem("restate-server", request.getfixturevalue("proxied"), server.admin_url, server.ingress_url)


def _send(ingress: str, path: str, body: object = None) -> str:
    status, answer, _ = ingress_call(f"{ingress}{path}/send", body)
    assert status == 202, answer
    return str(answer["invocationId"])


@pytest.fixture(scope="module")
def seeded(system: UiSystem, ui_endpoint: ServiceEndpoint) -> dict[str, str]:
    """The system with the UI services registered and one invocation of each kind."""
    status, body = http("POST", f"{system.admin_url}/deployments",
                        {"uri": ui_endpoint.url, "use_http_11": True, "force": True})
    assert status in (200, 201), body
    tag = uuid.uuid4().hex[:8]
    ingress = system.ingress_url
    keys = {"tag": tag, "alice": f"alice-{tag}", "bob": f"bob-{tag}", "carol": f"carol-{tag}", "flow": f"flow-{tag}"}
    status, answer, headers = ingress_call(f"{ingress}/Shop/{keys['alice']}/checkout", "book")
    assert status == 200, answer
    keys["checkout"] = headers["x-restate-id"]
    status, answer, headers = ingress_call(f"{ingress}/Stock/flaky", f"t-{tag}")
    assert (status, answer) == (200, f"t-{tag} ok after 3 attempts")
    keys["flaky"] = headers["x-restate-id"]
    keys["stuck"] = _send(ingress, "/Stock/flaky", f"never-{tag}")  # retries until killed
    keys["hold"] = _send(ingress, f"/Shop/{keys['bob']}/hold", 600_000)
    keys["wait"] = _send(ingress, f"/Shop/{keys['carol']}/wait")
    keys["run"] = _send(ingress, f"/Signup/{keys['flow']}/run", "a@example.com")
    return keys


def _shot(driver: WebDriver, name: str, system: UiSystem | None = None) -> None:
    """Our engine's picture of a view (docs/ui/ when asked for); restate-server's goes to
    the scratch folder only, under its name."""
    folder, file = (SHOTS, name) if system is None or system.name == "logstrate" else (SCRATCH_SHOTS, f"{name}-{system.name}")
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / f"{file}.png"))


def _click(driver: WebDriver, css: str) -> None:
    driver.find_element(By.CSS_SELECTOR, css).click()


def _fill_register_form(driver: WebDriver, uri: str, *checked: str) -> None:
    """Type ``uri`` and tick the ``checked`` boxes of the register form, found afresh on
    every try: a periodic refresh of the view may replace the form while it is filled."""

    def fill(d: WebDriver) -> bool:
        form = d.find_element(By.CSS_SELECTOR, "#register-form")
        field = form.find_element(By.CSS_SELECTOR, "input[name=uri]")
        field.clear()
        field.send_keys(uri)
        for name in checked:
            box = form.find_element(By.CSS_SELECTOR, f"input[name={name}]")
            if not box.is_selected():
                box.click()
        return bool(field.get_attribute("value") == uri
                    and all(form.find_element(By.CSS_SELECTOR, f"input[name={n}]").is_selected() for n in checked))

    wait_for(driver, fill, 10, "the register form to be filled")


def _errors(driver: WebDriver, system: UiSystem | None = None) -> list[str]:
    # restate-server has no GET /services/{s}/state/{key} (the UI then saves without a
    # version check); that 404 is expected there, and only there.
    expected = "/state/" if system is not None and system.name == "restate-server" else None
    return [e["message"] for e in page_errors(driver) if expected is None or expected not in e["message"]]


# --- files ---------------------------------------------------------------------------------


def test_files_are_served_with_types_csp_and_etags(engine: EngineProcess) -> None:
    with urllib.request.urlopen(f"{engine.admin_url}/ui", timeout=5) as resp:  # redirected to /ui/
        assert resp.url.endswith("/ui/") and resp.headers["Content-Type"] == "text/html; charset=utf-8"
        assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert resp.headers["Cache-Control"] == "no-cache" and resp.headers["X-Content-Type-Options"] == "nosniff"
        assert b'<script type="module" src="js/main.js">' in resp.read()
    expected = {"js/main.js": "text/javascript; charset=utf-8", "js/views/invocation.js": "text/javascript; charset=utf-8",
                "app.css": "text/css; charset=utf-8", "icon.svg": "image/svg+xml"}
    for path, content_type in expected.items():
        with urllib.request.urlopen(f"{engine.admin_url}/ui/{path}", timeout=5) as resp:
            assert resp.headers["Content-Type"] == content_type, path
            etag = resp.headers["ETag"]
            assert resp.read() == (UI_FILES / path).read_bytes()
        request = urllib.request.Request(f"{engine.admin_url}/ui/{path}", headers={"If-None-Match": etag})
        with pytest.raises(urllib.error.HTTPError) as not_modified:
            urllib.request.urlopen(request, timeout=5)
        assert not_modified.value.code == 304
    status, body = http("GET", f"{engine.admin_url}/ui/js/nothing.js")
    assert status == 404 and "open /ui/" in body["message"]
    status, _ = http("GET", f"{engine.admin_url}/ui/%2e%2e/app.py")
    assert status == 404


def test_every_ui_file_is_package_data_and_nothing_loads_from_the_internet() -> None:
    text = (PROJECT_ROOT / "pyproject.toml").read_text()
    patterns = json.loads(text.split('"engine.admin" = ', 1)[1].split("\n", 1)[0])
    files = [p for p in UI_FILES.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert any(path.relative_to(UI_FILES.parent).match(p) for p in patterns), path
        # Only the SVG namespace name and the register form's placeholder look like URLs.
        text = path.read_text().replace("http://www.w3.org/2000/svg", "").replace("http://localhost:9080", "")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path


# --- views on our engine (admin API only) ------------------------------------------------------


def test_click_through_register_on_our_engine(engine: EngineProcess, ui_endpoint: ServiceEndpoint,
                                             browser: WebDriver) -> None:
    open_view(browser, engine.admin_url, "services")
    wait_text(browser, "No deployments")
    browser.find_element(By.CSS_SELECTOR, "#register-form input[name=uri]").send_keys(ui_endpoint.url)
    _click(browser, "#register-form input[name=use_http_11]")
    mark_stale(browser)
    _click(browser, "#register-form button[type=submit]")
    wait_for(browser, lambda d: "Registered dp_" in d.find_element(By.CSS_SELECTOR, ".form-result").text, 20,
             "the registration notice")
    wait_view(browser, "services")
    text = wait_text(browser, "Deployments (1)", "Shop", "Stock", "Signup", ui_endpoint.url)
    assert "VirtualObject" in text and "Workflow" in text
    status, answer, _ = ingress_call(f"{engine.ingress_url}/Shop/ui/checkout", "lamp")
    assert status == 200, answer
    _shot(browser, "services")
    assert _errors(browser) == []


def test_subscription_lag_pause_and_resume_on_our_engine(engine: EngineProcess, kafka: KafkaBroker,
                                                         ui_endpoint: ServiceEndpoint, browser: WebDriver) -> None:
    admin = engine.admin_url
    status, body = http("POST", f"{admin}/deployments", {"uri": ui_endpoint.url, "use_http_11": True})
    assert status in (200, 201), body
    status, body = http("POST", f"{admin}/kafka-clusters",
                        {"name": "local", "properties": {"bootstrap.servers": kafka.bootstrap_servers}})
    assert status == 201, body
    topic = f"ui-orders-{uuid.uuid4().hex[:8]}"
    create_topic(kafka.bootstrap_servers, topic, partitions=2)
    status, body = http("POST", f"{admin}/subscriptions", {"source": f"kafka://local/{topic}",
                                                          "sink": "service://Shop/checkout",
                                                          "options": {"auto.offset.reset": "earliest"}})
    assert status == 201, body
    sub = body["id"]
    open_view(browser, admin, "subscriptions")
    wait_text(browser, sub, f"kafka://local/{topic}", "service://Shop/checkout", "active")
    mark_stale(browser)
    press_action(browser, "pause")
    wait_view(browser, "subscriptions")
    wait_text(browser, "paused", "Resume")
    publish(kafka.bootstrap_servers, topic, [(f"k{i}".encode(), f"item-{i}") for i in range(6)])

    def lag_shown(d: WebDriver) -> bool:
        open_view(d, admin, "subscriptions")
        return "Total lag: 6" in view_text(d)

    wait_for(browser, lag_shown, 40, "the UI to show a lag of 6 while paused")
    _shot(browser, "subscriptions")
    mark_stale(browser)
    press_action(browser, "resume")
    wait_view(browser, "subscriptions")

    def caught_up(d: WebDriver) -> bool:
        open_view(d, admin, "subscriptions")
        return "Total lag: 0" in view_text(d) and "active" in view_text(d)

    wait_for(browser, caught_up, 60, "the lag to drop to 0 after resume")
    assert _errors(browser) == []


# --- views on POST /query, against both systems --------------------------------------------------


def test_invocations_view_filters(seeded: dict[str, str], system: UiSystem, browser: WebDriver) -> None:
    open_view(browser, system.ui, "invocations")
    text = wait_text(browser, seeded["checkout"], seeded["hold"], seeded["run"])
    assert "suspended" in text and "completed" in text
    _shot(browser, "invocations", system)
    open_view(browser, system.ui, f"invocations?service=Shop&key={seeded['bob']}")
    text = wait_text(browser, seeded["hold"])
    assert seeded["checkout"] not in text and seeded["run"] not in text
    open_view(browser, system.ui, "invocations?status=suspended&age=5m")
    text = wait_text(browser, seeded["hold"], seeded["wait"])
    assert seeded["checkout"] not in text
    open_view(browser, system.ui, "invocations?age=>24h&service=Shop")
    wait_text(browser, "No invocations match")
    # The filter form drives the route.
    open_view(browser, system.ui, "invocations")
    browser.find_element(By.CSS_SELECTOR, "#invocation-filters input[name=key]").send_keys(seeded["alice"])
    mark_stale(browser)
    _click(browser, "#invocation-filters button[type=submit]")
    wait_view(browser, "invocations")
    text = wait_text(browser, seeded["checkout"])
    assert seeded["hold"] not in text
    assert _errors(browser, system) == []


def test_journal_timeline_shows_calls_runs_sleeps_state_retries_and_awakeables(
        seeded: dict[str, str], system: UiSystem, browser: WebDriver) -> None:
    open_view(browser, system.ui, f"invocation/{seeded['checkout']}")
    text = wait_text(browser, f"Shop/{seeded['alice']}/checkout", "charge", "Stock/reserve", "Sleep", "SetState")
    kinds = [e.get_attribute("data-kind") for e in browser.find_elements(By.CSS_SELECTOR, "#timeline > li")]
    assert {"input", "state", "run", "call", "sleep", "output"} <= set(kinds), kinds
    assert '"charged for book"' in text and '"reserved book"' in text
    _shot(browser, "journal", system)
    # The call links to the callee's invocation.
    mark_stale(browser)
    browser.find_element(By.CSS_SELECTOR, "#timeline li.call a").click()
    wait_view(browser, "invocation")
    wait_text(browser, "Stock/reserve", "pick", seeded["checkout"])

    # An invocation still retrying: its last failure and retry count, on both systems.
    stuck = seeded["stuck"]

    def retried(d: WebDriver) -> bool:
        open_view(d, system.ui, f"invocation/{stuck}")
        text = view_text(d)
        return f"warehouse never-{seeded['tag']} unreachable (attempt" in text and "Retries" in text

    wait_for(browser, retried, 30, "the retrying invocation's last failure")
    text = view_text(browser)
    assert "contact warehouse" in text and "Stock/flaky" in text, text
    _shot(browser, "journal-retrying", system)
    status, _ = http("PATCH", f"{system.admin_url}/invocations/{stuck}/kill")
    assert status == 200

    # A completed one that succeeded on its third attempt: restate-server keeps each
    # attempt's error (sys_journal_events), drawn after the entry it hit; logstrate keeps
    # no retry events and says so.
    open_view(browser, system.ui, f"invocation/{seeded['flaky']}")
    if system.name == "restate-server":
        text = wait_text(browser, "contact warehouse", "TransientError")
        assert f"warehouse t-{seeded['tag']} unreachable (attempt 1)" in text
        assert f"warehouse t-{seeded['tag']} unreachable (attempt 2)" in text
        assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline .retry-error")) == 2
        _shot(browser, "journal-retries", system)
    else:
        text = wait_text(browser, "contact warehouse", f"t-{seeded['tag']} ok after 3 attempts", "keeps no retry events")
        assert not browser.find_elements(By.CSS_SELECTOR, "#timeline .retry-error")

    open_view(browser, system.ui, f"invocation/{seeded['wait']}")
    wait_text(browser, "waiting for awakeable", "suspended")
    assert _errors(browser, system) == []


def test_state_is_shown_and_edited(seeded: dict[str, str], system: UiSystem,
                                   browser: WebDriver) -> None:
    route = f"state?service=Shop&key={seeded['alice']}"
    open_view(browser, system.ui, route)
    wait_text(browser, f"Shop/{seeded['alice']} (2 entries)")  # the keys are input values, not text
    values = {tr.get_attribute("data-key"): tr.find_element(By.CSS_SELECTOR, "textarea").get_attribute("value")
              for tr in browser.find_elements(By.CSS_SELECTOR, ".state-editor tbody tr")}
    assert values == {"cart": '["book"]', "status": '"done"'}
    status_box = browser.find_element(By.CSS_SELECTOR, '.state-editor tr[data-key="status"] textarea')
    status_box.clear()
    status_box.send_keys('"edited in the UI"')
    _click(browser, "#state-add")
    new_row = browser.find_elements(By.CSS_SELECTOR, ".state-editor tbody tr")[-1]
    new_row.find_element(By.CSS_SELECTOR, ".state-key").send_keys("note")
    new_row.find_element(By.CSS_SELECTOR, "textarea").send_keys('"hi"')
    browser.find_element(By.CSS_SELECTOR, '.state-editor tr[data-key="cart"] .state-delete').click()
    press_action(browser, "save")

    def saved(d: WebDriver) -> bool:
        open_view(d, system.ui, route)
        return '"edited in the UI"' in d.page_source and "(2 entries)" in view_text(d) and '"hi"' in d.page_source

    wait_for(browser, saved, 30, "the edited state")
    # The handler sees the edit (the state really changed, not only the page).
    status, answer, _ = ingress_call(f"{system.ingress_url}/Shop/{seeded['alice']}/status")
    assert (status, answer) == (200, "edited in the UI")
    _shot(browser, "state", system)
    assert _errors(browser, system) == []


def test_workflow_promises(seeded: dict[str, str], system: UiSystem,
                           browser: WebDriver) -> None:
    route = f"promises?service=Signup&key={seeded['flow']}"

    def shown(state: str) -> bool:
        open_view(browser, system.ui, route)
        return state in view_text(browser) and "email" in view_text(browser)

    wait_for(browser, lambda d: shown("pending"), 20, "the pending promise")
    status, answer, _ = ingress_call(f"{system.ingress_url}/Signup/{seeded['flow']}/confirm", "code-42")
    assert status == 200, answer
    wait_for(browser, lambda d: shown("resolved") and '"code-42"' in view_text(d), 30, "the resolved promise")
    _shot(browser, "promises", system)
    assert _errors(browser, system) == []


def test_click_through_register_invoke_journal_kill(system: UiSystem,
                                                   ui_endpoint: ServiceEndpoint, browser: WebDriver) -> None:
    open_view(browser, system.ui, "services")
    _fill_register_form(browser, ui_endpoint.url, "use_http_11", "force")
    _click(browser, "#register-form button[type=submit]")
    wait_for(browser, lambda d: "Registered dp_" in d.find_element(By.CSS_SELECTOR, ".form-result").text, 20,
             "the registration notice")
    # Invoke (the ingress is another port; a client calls it, as curl would).
    key = f"kill-{uuid.uuid4().hex[:8]}"
    hold = _send(system.ingress_url, f"/Shop/{key}/hold", 600_000)
    open_view(browser, system.ui, f"invocations?service=Shop&key={key}")
    wait_text(browser, hold)
    mark_stale(browser)
    browser.find_element(By.CSS_SELECTOR, f'tr[data-id="{hold}"] a').click()
    wait_view(browser, "invocation")

    def suspended(d: WebDriver) -> bool:
        open_view(d, system.ui, f"invocation/{hold}")
        return "suspended" in view_text(d) and "Sleep" in view_text(d)

    wait_for(browser, suspended, 30, "the hold to suspend in its sleep")
    mark_stale(browser)
    press_action(browser, "kill")
    wait_view(browser, "invocation")

    def killed(d: WebDriver) -> bool:
        open_view(d, system.ui, f"invocation/{hold}")
        return "completed" in view_text(d) and "killed" in view_text(d).lower()

    wait_for(browser, killed, 30, "the kill to show")
    press_action(browser, "purge")
    wait_view(browser, "invocations")
    status, body = http("POST", f"{system.admin_url}/query",
                        {"query": f"SELECT id FROM sys_invocation WHERE id = '{hold}'"}, headers={"accept": "application/json"})
    assert status == 200 and body["rows"] == [], body
    assert _errors(browser, system) == []
