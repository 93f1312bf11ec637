"""The web UI's invocation actions, clicked in Debian's headless Chromium against our
engine and a real official-SDK endpoint (tests/fixtures/official_sdk_ui.py): pause,
resume, cancel, purge and restart (kill: tests/engine/admin/test_webui.py's
click-through). Each click's effect is checked through the admin API and the ingress,
not only on the page.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.engine.test_invocations import call as ingress_call
from tests.fixtures.browser import chromium, open_view, page_errors, press_action, view_text, wait_for, wait_text
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http, module_engine

UI_APP = "tests.fixtures.official_sdk_ui:app"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def engine(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory,
           service_endpoints: ServiceEndpoints) -> Iterator[EngineProcess]:
    """Our engine with the UI services registered."""
    for proc in module_engine(kafka, tmp_path_factory, "webui-actions"):
        proc.wait_leading_all()
        status, body = http("POST", f"{proc.admin_url}/deployments",
                            {"uri": service_endpoints.get(UI_APP).url, "use_http_11": True})
        assert status in (200, 201), body
        yield proc


def _send(engine: EngineProcess, path: str, body: object = None) -> str:
    status, answer, _ = ingress_call(f"{engine.ingress_url}{path}/send", body)
    assert status == 202, answer
    return str(answer["invocationId"])


def _invocation(engine: EngineProcess, invocation_id: str) -> dict[str, Any] | None:
    """The invocation as the admin API shows it (``None``: unknown, or purged)."""
    status, body = http("GET", f"{engine.admin_url}/invocations/{invocation_id}")
    if status == 404:
        return None
    assert status == 200, body
    return dict(body)


def _wait_status(engine: EngineProcess, invocation_id: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = _invocation(engine, invocation_id)
        return found if found is not None and found["status"] in statuses else None

    return wait_until(reached, timeout, f"invocation {invocation_id} to be {' or '.join(statuses)}")


def _press_on_view(browser: WebDriver, engine: EngineProcess, invocation_id: str, action: str,
                   *shown: str) -> None:
    """Open the invocation's view until it offers ``action`` (and shows ``shown``), press it."""

    def offered(d: WebDriver) -> bool:
        open_view(d, engine.admin_url, f"invocation/{invocation_id}")
        text = view_text(d)
        return all(s in text for s in shown) and bool(d.find_elements("css selector", f'button[data-action="{action}"]'))

    wait_for(browser, offered, 30, f"the {action} button on {invocation_id}")
    press_action(browser, action)


def _errors(browser: WebDriver) -> list[str]:
    return [str(e["message"]) for e in page_errors(browser)]


def test_pause_then_resume_a_retrying_invocation(engine: EngineProcess, browser: WebDriver) -> None:
    tag = f"never-{uuid.uuid4().hex[:8]}"
    stuck = _send(engine, "/Stock/flaky", tag)
    wait_until(lambda: (_invocation(engine, stuck) or {}).get("retry_count", 0) >= 1, 30, "a failed attempt")
    _press_on_view(browser, engine, stuck, "pause", "backing-off")
    paused = _wait_status(engine, stuck, "paused")
    # The view shows it paused and offers resume (it refreshes itself after the action).
    wait_text(browser, "paused", "Resume")
    # Paused: no attempt runs, so the retry count stays where it was.
    retries = paused["retry_count"]
    assert _wait_status(engine, stuck, "paused")["retry_count"] == retries

    _press_on_view(browser, engine, stuck, "resume", "paused")

    def retrying_again() -> bool:
        found = _invocation(engine, stuck)
        return found is not None and found["status"] != "paused" and found["retry_count"] > retries

    wait_until(retrying_again, 30, "the resumed invocation to run attempts again")
    assert http("PATCH", f"{engine.admin_url}/invocations/{stuck}/kill")[0] == 200
    assert _errors(browser) == []


def test_cancel_then_purge_a_suspended_invocation(engine: EngineProcess, browser: WebDriver) -> None:
    key = f"cancel-{uuid.uuid4().hex[:8]}"
    hold = _send(engine, f"/Shop/{key}/hold", 600_000)
    _wait_status(engine, hold, "suspended")
    _press_on_view(browser, engine, hold, "cancel", "suspended", "Sleep")
    # The handler sees the cancellation in its sleep and ends with Restate's cancel failure.
    done = _wait_status(engine, hold, "completed")
    assert done["completion_result"] == "failure", done
    assert done["completion_failure"]["code"] == 409 and "cancel" in str(done["completion_failure"]).lower(), done
    # The key is free again: a new call on it runs at once.
    status, answer, _ = ingress_call(f"{engine.ingress_url}/Shop/{key}/status")
    assert (status, answer) == (200, "idle")

    _press_on_view(browser, engine, hold, "purge", "completed")
    wait_until(lambda: _invocation(engine, hold) is None, 30, "the purged invocation to be gone")
    status, body = http("POST", f"{engine.admin_url}/query",
                        {"query": f"SELECT id FROM sys_invocation WHERE id = '{hold}'"},
                        headers={"accept": "application/json"})
    assert status == 200 and body["rows"] == [], body
    assert _errors(browser) == []


# SKIPMARK
def test_restart_a_completed_invocation(engine: EngineProcess, browser: WebDriver) -> None:
    key = f"restart-{uuid.uuid4().hex[:8]}"
    status, answer, headers = ingress_call(f"{engine.ingress_url}/Shop/{key}/checkout", "kite")
    assert status == 200, answer
    first = headers["x-restate-id"]
    _press_on_view(browser, engine, first, "restart", "completed")  # PATCH .../restart-as-new
    # The UI goes to the new invocation's view.
    fresh = wait_for(browser, lambda d: (lambda u: u if u != first and u.startswith("inv_") else None)(
        d.current_url.rsplit("/", 1)[-1]), 30, "the UI to open the new invocation")
    done = _wait_status(engine, fresh, "completed")
    assert done["restarted_from"] == first and done["invoked_by"] == "restart_as_new", done
    assert done["completion_result"] == "success", done
    # The old one is still there, untouched.
    old = _invocation(engine, first)
    assert old is not None and old["status"] == "completed"
    wait_text(browser, fresh, "Restarted from", first)
    assert _errors(browser) == []
