"""The viewer in a real browser: Playwright driving Debian's Chromium (``.ci/run`` installs it;
without one these tests skip, saying so). Records are logged through the real client into a real
collector; the screenshots in docs/img/ are taken here."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from huggingplace import HuggingPlace
from huggingplace.collector import Collector

CHROMIUM = next((p for p in (os.environ.get("HUGGINGPLACE_CHROMIUM"), "/usr/bin/chromium",
                             shutil.which("chromium"), shutil.which("chromium-browser")) if p and os.path.exists(p)),
                None)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (apt-get install chromium)")

# the pages' screenshots; docs/img/ holds the ones the docs show, regenerated with
# HUGGINGPLACE_SCREENSHOTS=docs/img python -m pytest tests/test_viewer_browser.py
SHOTS = Path(os.environ.get("HUGGINGPLACE_SCREENSHOTS") or Path(tempfile.gettempdir()) / "huggingplace-screenshots")
XSS = ['<script>alert("x")</script>', '"><img src=x onerror=alert(1)>', "javascript:alert(1)",
       "<svg onload=alert(1)>"]
KEY_A, KEY_B = "hp_browser_key_a", "hp_browser_key_b"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    db = tmp_path_factory.mktemp("viewer") / "viewer.db"
    with Collector(str(db), keys={KEY_A: "org-a", KEY_B: "org-b"}) as c:
        with HuggingPlace(api_key=KEY_A, org_id="org-a", base_url=c.url) as hp:
            with hp.start_session("support-42", user_id="u-ana", metadata={"app": "support-bot"}) as s:
                for question in ("How long do refunds take?", "And for express orders?"):
                    with s.step("retrieve", type="retrieval"):
                        time.sleep(0.02)
                    with s.step("generate", type="llm"):
                        with s.step("call-model", llm_model="gpt-4o-mini"):
                            time.sleep(0.06)
                    s.log(user_prompt=question, response="Refunds take 14 days.", llm_model="gpt-4o-mini",
                          token_usage={"prompt_tokens": 40, "completion_tokens": 12})
            hp.log(user_prompt="What is the weather?", response="", status="error", error=TimeoutError("no answer"),
                   session_id="weather-1", user_id="u-bo", llm_model="gpt-4o",
                   step_data=[{"step_name": "weather-tool", "status": "failed", "time_ms": 300,
                               "error": {"type": "TimeoutError", "message": "no answer"}}])
            hp.log(user_prompt="scaled", response="ok", session_id="scale-1",
                   step_data=[{"step_name": "short", "time_ms": 100}, {"step_name": "long", "time_ms": 300},
                              {"step_name": "middle", "time_ms": 200}])
            hp.log(user_prompt="no session at all", response="still listed")
        with HuggingPlace(api_key=KEY_B, org_id="org-b", base_url=c.url) as hp:
            hp.log(user_prompt="org b only", response="b", session_id="b-secret")
        yield c


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any, served: Collector) -> Iterator[Any]:
    """A logged-in page of org A (through the one-time link, as a developer would) that fails the
    test on any JavaScript dialog or page error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(served.login_link("org-a"))
    yield page
    context.close()
    assert problems == []


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"viewer-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sessions_page_lists_what_was_logged(page: Any, served: Collector) -> None:
    assert page.url == served.url + "/"
    rows = page.locator("tr.session-row")
    ids = rows.evaluate_all("rows => rows.map(r => r.dataset.sessionId)")
    assert set(ids) == {"support-42", "weather-1", "scale-1"}  # org B's is not here
    support = page.locator('tr[data-session-id="support-42"]')
    assert support.locator("td.records").inner_text() == "2" and support.locator("td.tokens").inner_text() == "104"
    assert page.locator('tr[data-session-id="weather-1"] td.errors').inner_text() == "1"
    shot(page, "sessions")
    page.fill('input[name="q"]', "weather")
    page.click('form.filters button[type="submit"]')
    assert page.locator("tr.session-row").evaluate_all("r => r.map(x => x.dataset.sessionId)") == ["weather-1"]
    assert "q=weather" in page.url


def test_a_session_page_draws_its_steps_to_scale(page: Any, served: Collector) -> None:
    page.goto(served.url + "/sessions/scale-1")
    bars = page.locator("rect.wf-bar")
    assert bars.count() == 3
    found = bars.evaluate_all(
        "bars => bars.map(b => [b.dataset.stepName, +b.dataset.timeMs, b.getBoundingClientRect().width,"
        " b.getBoundingClientRect().left])")
    widths = {name: width for name, _, width, _ in found}
    assert {name: ms for name, ms, _, _ in found} == {"short": 100, "long": 300, "middle": 200}
    assert widths["long"] / widths["short"] == pytest.approx(3, rel=0.02)
    assert widths["middle"] / widths["short"] == pytest.approx(2, rel=0.02)
    lefts = [left for *_, left in found]
    assert lefts == sorted(lefts)  # one after another, in order
    page.goto(served.url + "/sessions/support-42")
    assert "/sessions/support-42" in page.url and page.locator("article.turn").count() == 2
    timed = page.locator("article.turn").first.locator("rect.wf-bar").evaluate_all(
        "bars => bars.map(b => [b.dataset.stepName, +b.dataset.timeMs, b.getBoundingClientRect().width])")
    assert [name for name, *_ in timed] == ["retrieve", "generate", "call-model"]  # nested as they ran
    (_, retrieve_ms, retrieve_w), (_, generate_ms, generate_w) = timed[0], timed[1]
    assert generate_w / retrieve_w == pytest.approx(generate_ms / retrieve_ms, rel=0.05)
    shot(page, "session")
    page.goto(served.url + "/sessions/weather-1")
    failed = page.locator('rect.wf-bar[data-step-name="weather-tool"]')
    assert failed.get_attribute("data-status") == "error"
    assert "TimeoutError: no answer" in page.locator(".wf-error").first.inner_text()


def test_a_record_page_shows_every_field_and_copies_its_json(page: Any, served: Collector, browser: Any) -> None:
    page.goto(served.url + "/records")
    assert "no session at all" in page.inner_text("#records")  # a record without a session is reachable
    shot(page, "records")
    page.click('tr.record-row:has-text("How long do refunds take?") a >> nth=0')
    assert "/records/" in page.url
    raw = page.inner_text("#raw-json")
    assert '"user_prompt": "How long do refunds take?"' in raw and '"app": "support-bot"' in raw
    assert "40 prompt + 12 completion = 52" in page.inner_text("table.fields")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=served.url)
    page.click("button.copy")
    sync_api.expect(page.locator("button.copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == raw
    shot(page, "record")


def test_the_overview_draws_its_charts(page: Any, served: Collector) -> None:
    page.goto(served.url + "/overview")
    assert page.locator("#chart-rate rect.col").count() >= 1
    models = page.locator("#chart-models rect").evaluate_all("r => r.map(x => [x.dataset.model, +x.dataset.tokens])")
    assert dict(models)["gpt-4o-mini"] == 104
    assert page.locator("#chart-latency polyline").count() == 2
    shot(page, "overview")


def test_new_records_appear_without_a_reload(page: Any, served: Collector) -> None:
    page.goto(served.url + "/sessions/support-42")
    page.wait_for_selector('#live-status[data-state="on"]')
    with HuggingPlace(api_key=KEY_A, org_id="org-a", base_url=served.url) as hp:
        hp.log(user_prompt="A live question", response="A live answer", session_id="support-42")
        hp.log(user_prompt="elsewhere", response="x", session_id="live-new")
    sync_api.expect(page.locator("article.turn")).to_have_count(3)  # locators: the page's CSP forbids eval
    assert "A live answer" in page.locator("article.turn").last.inner_text()
    page.goto(served.url + "/")
    page.wait_for_selector('#live-status[data-state="on"]')
    with HuggingPlace(api_key=KEY_A, org_id="org-a", base_url=served.url) as hp:
        hp.log(user_prompt="brand new", response="x", session_id="appeared-live", user_id="u-new")
    page.wait_for_selector('tr[data-session-id="appeared-live"]')
    assert page.locator("tr.session-row").first.get_attribute("data-session-id") == "appeared-live"


def test_logged_markup_never_runs(page: Any, served: Collector) -> None:
    """Payloads in every field a page shows; the fixture fails the test on any dialog."""
    session_id = "xss-" + XSS[1]
    with HuggingPlace(api_key=KEY_A, org_id="org-a", base_url=served.url) as hp:
        result = hp.log(user_prompt=XSS[0], response=XSS[1], session_id=session_id, user_id=XSS[2],
                        llm_model=XSS[3], metadata={XSS[0]: XSS[3]}, file_name=XSS[2],
                        step_data=[{"step_name": XSS[3], "status": XSS[0], "time_ms": 5, "error": XSS[1],
                                    "type": XSS[2]}])
    page.goto(served.url + "/")
    page.goto(served.url + "/records")
    page.goto(served.url + "/overview")
    page.goto(served.url + "/records/" + result.event_id)
    assert XSS[0] in page.inner_text("main") and XSS[1] in page.inner_text("main")  # shown as text
    page.goto(served.url + "/")
    page.locator("tr.session-row a", has_text="xss-").first.click()
    assert page.url.startswith(served.url + "/sessions/xss-")
    assert page.locator("article.turn").count() == 1 and XSS[3] in page.inner_text("main")
    injected = "document.querySelectorAll('main script, main img, main [onerror], main [onload]').length"
    assert page.evaluate(injected) == 0


def test_another_orgs_session_is_unreachable(page: Any, served: Collector) -> None:
    response = page.goto(served.url + "/sessions/b-secret")
    assert response.status == 404 and "org b only" not in page.content()
    page.goto(served.url + "/?q=org+b+only")
    assert page.locator("tr.session-row").count() == 0


def test_the_login_page_takes_a_key(browser: Any, served: Collector) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(served.url + "/sessions/b-secret")
    assert "/login" in page.url
    shot(page, "login")
    page.fill('input[name="key"]', KEY_B)
    page.click('form.login button[type="submit"]')
    assert page.url.endswith("/sessions/b-secret") and "org b only" in page.inner_text("main")
    cookie = next(c for c in context.cookies() if c["name"] == "hp_viewer")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and KEY_B not in cookie["value"]
    context.close()
