"""The collector's read routes and viewer pages over real HTTP (the browser tests are in
test_viewer_browser.py): every record reachable, filters, cursors, refusals, login, org walls,
escaping, the live stream."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.strategies as st
import pytest
import requests

from huggingplace import HuggingPlace
from huggingplace.collector import Collector
from huggingplace.collector._store import Store
from huggingplace.collector.viewer import CSP

from .conftest import LiveCollector

XSS = ['<script>alert("x")</script>', '"><img src=x onerror=alert(1)>', "javascript:alert(1)"]


def api(c: LiveCollector, path: str, key: str | None = None, **params: Any) -> requests.Response:
    return requests.get(c.url + path, params=params, headers={"Authorization": f"Bearer {key or c.key}"}, timeout=10)


def viewer(c: LiveCollector, key: str | None = None) -> requests.Session:
    session = requests.Session()
    answer = session.post(c.url + "/login", data={"key": key or c.key, "next": "/"}, allow_redirects=False,
                          timeout=10)
    assert answer.status_code == 303 and answer.headers["Location"] == "/"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and (key or c.key) not in cookie
    return session


def test_every_record_is_reachable_with_filters_and_cursors(collector: LiveCollector) -> None:
    tag = "reach-" + secrets.token_hex(3)
    base = dt.datetime(2031, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    with HuggingPlace(**collector.options()) as hp:
        for i in range(7):  # no session: listed only by the records route
            hp.log(user_prompt=f"{tag} lonely {i}", response="a", user_id="u-a" if i % 2 else "u-b",
                   llm_model="m-x" if i < 3 else "m-y", timestamp=base + dt.timedelta(minutes=i))
        hp.log(user_prompt=f"{tag} failing", response="", status="error", error="boom", session_id=tag,
               timestamp=base + dt.timedelta(minutes=9))
    got: list[str] = []
    cursor = None
    while True:
        params = {"q": tag, "limit": "3", **({"cursor": cursor} if cursor else {})}
        page = api(collector, "/v2/records", **params).json()
        got += [r["user_prompt"] for r in page["records"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert got == [f"{tag} failing", *[f"{tag} lonely {i}" for i in range(6, -1, -1)]]  # newest first, no repeat
    by_user = api(collector, "/v2/records", q=tag, user_id="u-a").json()["records"]
    assert {r["user_prompt"] for r in by_user} == {f"{tag} lonely {i}" for i in (1, 3, 5)}
    by_model = api(collector, "/v2/records", q=tag, model="m-x").json()["records"]
    assert len(by_model) == 3
    window = api(collector, "/v2/records", q=tag, since="2031-05-01T12:02:00Z", until="2031-05-01T12:04:00Z")
    assert [r["user_prompt"] for r in window.json()["records"]] == [f"{tag} lonely {i}" for i in (4, 3, 2)]
    errors = api(collector, "/v2/sessions", status="error", q=tag).json()["sessions"]
    assert [s["session_id"] for s in errors] == [tag] and errors[0]["errors"] == 1
    assert api(collector, "/v2/sessions", user_id="nobody-" + tag).json()["sessions"] == []  # not ignored


@pytest.mark.parametrize(("path", "params", "param"), [
    ("/v2/sessions", {"user": "x"}, "user"),
    ("/v2/sessions", {"offset": "2"}, "offset"),
    ("/v2/records", {"limit": "0"}, "limit"),
    ("/v2/records", {"cursor": "not-a-cursor"}, "cursor"),
    ("/v2/records", {"since": "yesterday"}, "since"),
    ("/v2/records", {"until": "0001-01-01T00:01:00+02:01"}, "until"),  # before year 1 in UTC (schemathesis)
    ("/v2/sessions", {"since": "9999-12-31T23:59:00-01:00"}, "since"),  # after year 9999
    ("/v2/sessions", {"sort": "random"}, "sort"),
    ("/v2/overview", {"window": "1y"}, "window"),
    ("/v2/stream", {"follow": "1"}, "follow"),
])
def test_a_parameter_the_route_does_not_take_is_refused_by_name(
    collector: LiveCollector, path: str, params: dict[str, str], param: str
) -> None:
    answer = api(collector, path, **params)
    assert answer.status_code == 400 and answer.json()["param"] == param
    assert param in answer.json()["error"]


def test_sessions_sort_by_tokens_and_latency(collector: LiveCollector) -> None:
    tag = "sort-" + secrets.token_hex(3)
    with HuggingPlace(**collector.options()) as hp:
        for i, (tokens, latency) in enumerate(((10, 900.0), (500, 5.0), (50, 50.0))):
            hp.log(user_prompt=f"{tag} {i}", response="a", session_id=f"{tag}-{i}", token_count=tokens,
                   response_time=latency)
    by_tokens = api(collector, "/v2/sessions", q=tag, sort="tokens").json()["sessions"]
    by_latency = api(collector, "/v2/sessions", q=tag, sort="latency").json()["sessions"]
    assert [s["session_id"][-1] for s in by_tokens] == ["1", "2", "0"]
    assert [s["session_id"][-1] for s in by_latency] == ["0", "2", "1"]
    assert by_latency[0]["median_latency"] == 900.0


def test_overview_counts_the_window(tmp_path: Path) -> None:
    with Collector(str(tmp_path / "o.db"), keys={"hp_overview_1": "org-o"}) as c:
        with HuggingPlace(api_key="hp_overview_1", org_id="org-o", base_url=c.url) as hp:
            for i in range(10):
                hp.log(user_prompt="q", response="a", llm_model="m-big" if i < 4 else "m-small", token_count=100,
                       response_time=float(i + 1) * 10, status="error" if i == 0 else "ok",
                       **({"error": "x"} if i == 0 else {}))
            hp.log(user_prompt="old", response="a", timestamp=dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc))
        data = requests.get(c.url + "/v2/overview", headers={"Authorization": "Bearer hp_overview_1"},
                            timeout=10).json()
    assert data["records"] == 10 and data["errors"] == 1 and data["error_rate"] == 0.1
    assert data["latency_p50"] == pytest.approx(60.0, rel=0.025)  # read from 5% histogram bins
    assert data["latency_p95"] == pytest.approx(100.0, rel=0.025)
    assert {m["model"]: m["tokens"] for m in data["models"]} == {"m-small": 600, "m-big": 400}


def test_pages_need_a_login_and_a_cookie_is_org_scoped(collector: LiveCollector) -> None:
    tag = "wall-" + secrets.token_hex(3)
    with HuggingPlace(**collector.options(api_key=collector.other_key, org_id=collector.other_org)) as hp:
        other = hp.log(user_prompt=f"{tag} secret of org b", response="b", session_id=tag)
    anonymous = requests.get(collector.url + f"/sessions/{tag}", allow_redirects=False, timeout=10)
    assert anonymous.status_code == 303 and anonymous.headers["Location"].startswith("/login?next=")
    wrong = requests.post(collector.url + "/login", data={"key": "hp_wrong"}, timeout=10)
    assert wrong.status_code == 401 and "not known" in wrong.text
    a = viewer(collector)
    for path in (f"/sessions/{tag}", f"/records/{other.event_id}"):
        page = a.get(collector.url + path, timeout=10)
        assert page.status_code == 404 and "secret of org b" not in page.text
    for path in (f"/fragments/turn/{other.event_id}", f"/fragments/session/{tag}",
                 f"/fragments/record/{other.event_id}"):
        assert a.get(collector.url + path, timeout=10).status_code == 404
    assert f"/sessions/{tag}" not in a.get(collector.url + "/", params={"q": tag}, timeout=10).text
    assert a.get(collector.url + "/v2/sessions", params={"q": tag}, timeout=10).json()["sessions"] == []
    b = viewer(collector, collector.other_key)
    assert "secret of org b" in b.get(collector.url + f"/sessions/{tag}", timeout=10).text
    a.post(collector.url + "/logout", timeout=10)
    assert a.get(collector.url + "/", allow_redirects=False, timeout=10).status_code == 303


def test_a_login_never_sends_you_off_site(collector: LiveCollector) -> None:
    for target in ("//127.0.0.1:9/", "http://127.0.0.1:9/", "/\\127.0.0.1:9"):  # another server, never contacted
        answer = requests.post(collector.url + "/login", data={"key": collector.key, "next": target},
                               allow_redirects=False, timeout=10)
        assert answer.headers["Location"] == "/"


def test_what_users_logged_is_escaped_on_every_page(collector: LiveCollector) -> None:
    tag = "xss-" + secrets.token_hex(3)
    session_id = f"{tag}-{XSS[1]}"
    with HuggingPlace(**collector.options()) as hp:
        result = hp.log(user_prompt=f"{tag} {XSS[0]}", response=XSS[1], session_id=session_id, user_id=XSS[2],
                        llm_model=XSS[0], metadata={XSS[0]: XSS[1]},
                        step_data=[{"step_name": XSS[0], "status": XSS[1], "time_ms": 5, "error": XSS[2]}])
    page = viewer(collector)
    for path, params in (("/", {"q": tag}), ("/records", {"q": tag}), ("/overview", {}),
                         (f"/records/{result.event_id}", {}), ("/sessions/" + requests.utils.quote(session_id), {})):
        answer = page.get(collector.url + path, params=params, timeout=10)
        assert answer.status_code == 200, path
        assert answer.headers["Content-Security-Policy"] == CSP and "unsafe-inline" not in CSP
        html = answer.text
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert 'href="javascript:' not in html and "<script" not in html.replace(
            '<script src="/static/viewer.js" defer></script>', ""), path
    record_html = page.get(collector.url + f"/records/{result.event_id}", timeout=10).text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in record_html  # shown, as text


def test_the_live_stream_sends_new_records_of_the_org_only(collector: LiveCollector) -> None:
    tag = "live-" + secrets.token_hex(3)
    events: list[dict[str, Any]] = []
    ready = threading.Event()

    def follow() -> None:
        with requests.get(collector.url + "/v2/stream", params={"session_id": tag}, stream=True, timeout=10,
                          headers={"Authorization": f"Bearer {collector.key}"}) as r:
            name = ""
            for line in r.iter_lines(decode_unicode=True):
                ready.set()
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name == "record":
                    events.append(json.loads(line[6:]))
                    if len(events) == 2:
                        return

    thread = threading.Thread(target=follow)
    thread.start()
    assert ready.wait(10)
    with HuggingPlace(**collector.options(api_key=collector.other_key, org_id=collector.other_org)) as other:
        other.log(user_prompt="org b, same session id", response="b", session_id=tag)
    with HuggingPlace(**collector.options()) as hp:
        hp.log(user_prompt=f"{tag} first", response="a", session_id=tag, token_count=3)
        hp.log(user_prompt=f"{tag} elsewhere", response="a", session_id=tag + "-other")
        hp.log(user_prompt=f"{tag} second", response="a", session_id=tag)
    thread.join(10)
    assert [e["record"]["user_prompt"] for e in events] == [f"{tag} first", f"{tag} second"]
    assert events[0]["record"]["tokens"] == 3 and events[1]["record"]["session_id"] == tag


def test_a_database_from_before_the_viewer_is_indexed_on_open(tmp_path: Path) -> None:
    db = str(tmp_path / "old.db")
    with Collector(db, keys={"hp_old_key_1": "org-old"}) as c:
        with HuggingPlace(api_key="hp_old_key_1", org_id="org-old", base_url=c.url) as hp:
            hp.log(user_prompt="kept from before", response="a", session_id="old-1", token_count=4)
    conn = sqlite3.connect(db)
    conn.executescript("DROP TABLE sessions; DROP TABLE chat_fts; DROP TABLE rollup; DROP TABLE rollup_latency;")
    conn.close()
    store = Store(db)
    try:
        from huggingplace.collector._query import parse_query

        sessions, _ = store.sessions_page("org-old", parse_query({}, ("q",)))
        found, _ = store.records_page("org-old", parse_query({"q": "before"}, ("q",)))
    finally:
        store.close()
    assert [(s["session_id"], s["records"], s["tokens"]) for s in sessions] == [("old-1", 1, 4)]
    assert [r["user_prompt"] for r in found] == ["kept from before"]
    store = Store(db)
    try:
        from huggingplace._models import utcnow
        from huggingplace._serialize import format_timestamp

        overview = store.overview("org-old", "1h", format_timestamp(utcnow()))
    finally:
        store.close()
    assert overview["records"] == 1 and overview["models"] == [{"model": "(none)", "records": 1, "tokens": 4}]


def test_without_the_viewer_extra_the_json_routes_serve_and_slash_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingplace.collector import viewer

    monkeypatch.setattr(viewer, "available", lambda: False)
    with Collector(str(tmp_path / "bare.db"), keys={"hp_bare_key_1": "org-bare"}) as c:
        page = requests.get(c.url + "/", timeout=10)
        listed = requests.get(c.url + "/v2/records", headers={"Authorization": "Bearer hp_bare_key_1"}, timeout=10)
    assert page.status_code == 501 and "pip install 'huggingplace[viewer]'" in page.text
    assert listed.status_code == 200 and listed.json()["records"] == []


def test_the_sdk_alone_imports_no_viewer_or_collector_code(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys, huggingplace; hp = huggingplace.HuggingPlace(api_key='k' * 12, org_id='o', "
            "background=True); hp.log(user_prompt='q', response='a'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jinja2', 'aiohttp_jinja2') "
            "or m.startswith('huggingplace.collector')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"HUGGINGPLACE_BASE_URL": "http://127.0.0.1:9", "HUGGINGPLACE_EXIT_TIMEOUT": "0.2",
                              "PATH": "/usr/bin:/bin", "HUGGINGPLACE_SPOOL_DIR": str(tmp_path)})
    assert out.stdout.strip() == "[]", out.stderr


@hypothesis.settings(
    max_examples=150, deadline=None, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@hypothesis.given(prompt=st.text(min_size=1, max_size=40))
def test_search_takes_any_text_and_finds_a_record_by_its_own_prompt(tmp_path: Path, prompt: str) -> None:
    from huggingplace.collector._ingest import normalize_record
    from huggingplace.collector._query import parse_query

    store = Store(str(tmp_path / f"{secrets.token_hex(6)}.db"))
    try:
        record = normalize_record({"org_id": "org-s", "user_prompt": prompt, "ai_response": "a"})
        store.insert(record)
        found, _ = store.records_page("org-s", parse_query({"q": prompt}, ("q",)))
        store.sessions_page("org-s", parse_query({"q": prompt}, ("q",)))
    finally:
        store.close()
    if any(ch.isalnum() for ch in prompt):
        assert [r["event_id"] for r in found] == [record["event_id"]]


def test_a_revoked_key_ends_the_viewer_logins_made_with_it(tmp_path: Path) -> None:
    db = str(tmp_path / "revoke.db")
    with Collector(db, keys={"hp_keep_key_1": "org-r"}) as c:
        store = Store(db)
        try:
            key = store.create_key("org-r", label="leaked")
            key_id = next(k["id"] for k in store.keys() if k["label"] == "leaked")  # noqa: SIM118
        finally:
            store.close()
        session = requests.Session()
        answer = session.post(c.url + "/login", data={"key": key, "next": "/"}, allow_redirects=False, timeout=10)
        assert answer.status_code == 303 and "Max-Age=604800" in answer.headers["Set-Cookie"]
        assert session.get(c.url + "/", allow_redirects=False, timeout=10).status_code == 200
        linked = requests.Session()
        assert linked.get(c.login_link("org-r"), allow_redirects=False, timeout=10).status_code == 303
        store = Store(db)
        try:
            assert store.revoke_key(key_id) == 1
        finally:
            store.close()
        page = session.get(c.url + "/", allow_redirects=False, timeout=10)
        assert page.status_code == 303 and page.headers["Location"].startswith("/login")
        assert linked.get(c.url + "/", allow_redirects=False, timeout=10).status_code == 200  # made by no key


def test_logins_end_when_idle_or_old_and_links_after_an_hour() -> None:
    from huggingplace.collector._logins import IDLE, LIFETIME, LINK_LIFETIME, Logins

    now = [1000.0]
    logins = Logins(clock=lambda: now[0])
    busy, idle = logins.create("org", "h1"), logins.create("org", "h2")
    link = logins.mint_link("org")
    while now[0] + IDLE / 2 - 1000.0 < LIFETIME:  # one is used twice a day, the other never
        now[0] += IDLE / 2
        assert logins.get(busy) is not None
    assert logins.get(idle) is None  # unused for longer than IDLE
    now[0] = 1000.0 + LIFETIME + 1
    assert logins.get(busy) is None  # used all along, but older than LIFETIME
    assert logins.use_link(link) is None  # opened days later
    fresh = logins.mint_link("org-x")
    now[0] += LINK_LIFETIME - 1
    assert logins.use_link(fresh) == "org-x" and logins.use_link(fresh) is None  # once, within the hour
