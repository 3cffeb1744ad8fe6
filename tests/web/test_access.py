"""Who may read: with viewer_password every read page and /api/ needs a login (the viewer's
or the admin's), /check_health stays open without error data; cookies are Secure behind a
TLS proxy; an answer whose header cannot be encoded still gets sent."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from flawless.server.web.http import Answer, Endpoint

from .support import NOW, Client, DashboardApp, record, store_error
from .test_admin import PASSWORD, hidden, log_in

VIEWER = "a viewer's long passphrase"
SECRET_TEXT = "return sum(secret_prices)"
READ_PAGES = ["/", "/get_weekly_error_report?timestamp=1794398400",
              "/view_traceback?filename=shop%2Fcart.py&function_name=total&text=return+sum"
              "%28secret_prices%29&line_number=12", "/developer?email=alice%40example.com"]
API = ["/api/", "/api/weekly_report", "/api/developer?email=alice%40example.com",
       "/api/error?filename=shop%2Fcart.py&function_name=total&text=return+sum"
       "%28secret_prices%29", "/api/health"]


@pytest.fixture
def app(tmp_path: Path) -> DashboardApp:
    app = DashboardApp(tmp_path, admin_password=PASSWORD, viewer_password=VIEWER)
    store_error(app.store, record(text=SECRET_TEXT), [NOW])
    return app


def test_every_read_page_and_the_api_need_a_login(app):
    stranger = Client(app)
    for path in READ_PAGES:
        answer = stranger.request("GET", path)
        assert answer.status == 303 and answer.headers["location"].startswith("/login?next=")
        assert SECRET_TEXT not in answer.text
    for path in API:
        answer = stranger.request("GET", path)
        assert answer.status == 401 and "Basic" in answer.headers["www-authenticate"]
        assert "secret_prices" not in answer.text
    assert stranger.get("/static/dashboard.css").status == 200
    assert stranger.get("/login").status == 200


def test_check_health_stays_open_and_shows_no_error_data(app):
    answer = Client(app).get("/check_health")
    assert answer.status == 200 and json.loads(answer.text)["status"] == "ok"
    assert "secret_prices" not in answer.text and VIEWER not in answer.text


@pytest.mark.parametrize("password", [VIEWER, PASSWORD])
def test_the_viewers_or_the_admins_password_opens_them(app, password):
    client = Client(app)
    assert log_in(client, password, next_path=READ_PAGES[2]).headers["location"] == \
        READ_PAGES[2]
    for path in READ_PAGES + API:
        answer = client.request("GET", path)
        assert answer.status == 200, (path, answer.status)
    assert SECRET_TEXT in client.request("GET", READ_PAGES[2]).text


def test_a_viewer_cannot_change_rules(app, tmp_path):
    viewer = Client(app)
    log_in(viewer, VIEWER)
    page = viewer.get("/rules")
    assert page.status == 403 and "needs the admin password" in page.text
    token = hidden(viewer.get("/").text, "csrf_token")
    answer = viewer.post("/rules", {"csrf_token": token, "kind": "ignored_exceptions",
                                    "exception_type": "a.B"})
    assert answer.status == 403 and not list(tmp_path.glob("*.yaml"))
    assert viewer.post("/logout", {"csrf_token": token}).status == 303
    assert viewer.get("/").status == 303


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"any:{password}".encode()).decode()}


def test_the_api_takes_http_basic_with_either_password_and_delays_guessing(app):
    client = Client(app, client_host="10.0.0.7")
    assert client.request("GET", API[1], headers=basic(VIEWER)).status == 200
    assert client.request("GET", API[1], headers=basic(PASSWORD)).status == 200
    answers = [client.request("GET", API[1], headers=basic("guess")).status
               for _ in range(5)]
    assert answers == [401, 401, 401, 429, 429]
    assert Client(app, client_host="10.0.0.8").request(
        "GET", API[1], headers=basic(VIEWER)).status == 200


def test_without_a_viewer_password_reading_needs_no_login(tmp_path):
    app = DashboardApp(tmp_path, admin_password=PASSWORD)
    client = Client(app)
    assert all(client.request("GET", path).status in (200, 404) for path in READ_PAGES + API)


@pytest.mark.parametrize("hostname, secure", [("https://flawless.example.com", True),
                                              ("http://flawless.example.com:8080", False)])
def test_session_cookies_are_secure_behind_a_tls_proxy(tmp_path, hostname, secure):
    client = Client(DashboardApp(tmp_path, admin_password=PASSWORD, hostname=hostname))
    form = client.get("/login")
    answer = log_in(client)
    cookies = form.headers.get_all("set-cookie") + answer.headers.get_all("set-cookie")
    assert len(cookies) == 3
    assert all(("; Secure" in value) is secure for value in cookies), cookies


def test_a_next_address_in_any_script_comes_back_percent_encoded(app):
    client = Client(app)
    answer = log_in(client, VIEWER, next_path="/café-€?q=ünïcode")
    assert answer.status == 303
    assert answer.headers["location"] == "/caf%C3%A9-%E2%82%AC?q=%C3%BCn%C3%AFcode"


def test_an_answer_whose_header_cannot_be_written_is_still_answered(app):
    async def broken(request):  # type: ignore[no-untyped-def]
        return Answer(200, b"ok", headers=(("x-bad", "\ud800"),))

    client = Client(app)
    client.root.putChild(b"broken", Endpoint(lambda status, text: Answer(status, text.encode()),
                                             get=broken))
    assert client.get("/broken").status == 500
