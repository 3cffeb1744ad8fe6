"""Admin pages: login, sessions, CSRF, the login rate limit and the rule forms."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from flawless.server.rules.loading import load_rules
from flawless.server.web.sessions import FREE_FAILURES

from .support import NOW, Client, DashboardApp, record, store_error

PASSWORD = "correct horse battery staple"
ERROR_LINK = ("/add_known_error?filename=shop%2Fcart.py&function_name=total&line_number=12"
              "&text=return+sum%28prices%29&timestamp=1794398400")


def hidden(page_text: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page_text)
    assert match, f"no hidden field {name}"
    return match.group(1)


def log_in(client: Client, password: str = PASSWORD, next_path: str = "/"):
    form = client.get("/login", next=next_path)
    return client.post("/login", {"password": password, "next": next_path,
                                  "login_token": hidden(form.text, "login_token")})


@pytest.fixture
def app(tmp_path: Path) -> DashboardApp:
    return DashboardApp(tmp_path, admin_password=PASSWORD)


@pytest.fixture
def admin(app: DashboardApp) -> Client:
    client = Client(app)
    assert log_in(client).status == 303
    return client


def test_without_admin_password_the_pages_explain_and_change_nothing(tmp_path):
    client = Client(DashboardApp(tmp_path))
    for path in (ERROR_LINK, "/rules", "/login"):
        page = client.request("GET", path)
        assert page.status == 403 and "admin_password" in page.text
    refused = client.post("/add_known_error", {"filename": "shop/cart.py", "csrf_token": "x"})
    assert refused.status == 403 and "admin_password" in refused.text
    assert client.post("/login", {"password": ""}).status == 403
    assert not (tmp_path / "known_errors.yaml").exists()


def test_login_sets_a_session_cookie_scripts_cannot_read(app):
    client = Client(app)
    assert client.get("/rules").status == 303  # to the login form
    answer = log_in(client, next_path="/rules")
    assert answer.status == 303 and answer.headers["location"] == "/rules"
    session_cookie = next(value for value in answer.headers.get_all("set-cookie")
                          if value.startswith("flawless_session="))
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie
    assert client.get("/rules").status == 200
    assert "Log out" in client.get("/").text


def test_a_wrong_password_is_refused_and_the_next_address_stays_local(app):
    client = Client(app)
    assert log_in(client, "guess").status == 401
    answer = log_in(client, next_path="//evil.example/")
    assert answer.headers["location"] == "/"


def test_login_without_the_forms_token_is_refused(app):
    client = Client(app)
    answer = client.post("/login", {"password": PASSWORD, "login_token": "forged"})
    assert answer.status == 403 and "flawless_session" not in client.cookies


def test_failed_logins_are_delayed_more_and_more_for_that_client_only(app):
    client = Client(app, client_host="10.0.0.7")
    for _ in range(FREE_FAILURES):
        assert log_in(client, "wrong").status == 401
    blocked = log_in(client)  # even the right password waits now
    assert blocked.status == 429 and int(blocked.headers["retry-after"]) == 1
    assert log_in(Client(app, client_host="10.0.0.8")).status == 303
    delays = []
    for _ in range(5):
        wait = int(log_in(client, "wrong").headers["retry-after"])
        app.reactor.advance(wait)
        assert log_in(client, "wrong").status == 401
        delays.append(wait)
    assert delays == [1, 2, 4, 8, 16]
    app.reactor.advance(32)
    assert log_in(client).status == 303


def test_strangers_failing_from_many_addresses_never_lock_the_admin_out(app):
    for number in range(200):
        stranger = Client(app, client_host=f"198.51.100.{number}")
        for _ in range(FREE_FAILURES + 1):
            assert log_in(stranger, "guess").status in (401, 429)
    assert log_in(Client(app, client_host="10.0.0.8")).status == 303


def test_sessions_expire_and_logout_ends_them(app, admin):
    token = hidden(admin.get("/rules").text, "csrf_token")
    assert admin.post("/logout", {"csrf_token": token}).status == 303
    assert admin.get("/rules").status == 303
    assert log_in(admin).status == 303
    app.reactor.advance(9 * 3600)
    assert admin.get("/rules").status == 303


def test_known_error_form_is_prefilled_from_the_emails_link(app, admin):
    store_error(app.store, record(), [NOW])
    page = admin.get(ERROR_LINK)
    assert page.status == 200
    assert 'name="filename" value="shop/cart.py"' in page.text
    assert 'name="function_name" value="total"' in page.text
    assert 'name="code_fragment" value="return sum(prices)"' in page.text
    assert "1 occurrence" in page.text


def test_the_known_error_form_needs_a_login_first(app):
    client = Client(app)
    answer = client.request("GET", ERROR_LINK)
    assert answer.status == 303 and answer.headers["location"].startswith("/login?next=")
    assert log_in(client, next_path=ERROR_LINK).headers["location"] == ERROR_LINK


def test_adding_a_known_error_writes_the_rule_file_and_keeps_its_comments(app, admin,
                                                                          tmp_path):
    path = tmp_path / "known_errors.yaml"
    path.write_text("# silenced on purpose\n- filename: shop/legacy.py\n")
    form = admin.get(ERROR_LINK).text
    answer = admin.post("/add_known_error", {
        "csrf_token": hidden(form, "csrf_token"), "filename": "shop/cart.py",
        "function_name": "total", "code_fragment": "return sum(prices)",
        "email_header": "Known since the 2.0 migration", "line_number": "12"})
    assert answer.status == 200 and "Added to known_errors.yaml" in answer.text
    # The server's rules follow at once, without waiting for the next poll.
    assert [entry.function_name for entry in app.rules.known_errors] == [None, "total"]
    assert path.read_text().startswith("# silenced on purpose\n- filename: shop/legacy.py\n")
    known = load_rules(str(tmp_path)).known_errors
    assert [(entry.filename, entry.function_name, entry.code_fragment, entry.email_header)
            for entry in known][1] == ("shop/cart.py", "total", "return sum(prices)",
                                       "Known since the 2.0 migration")
    again = admin.post("/add_known_error", {"csrf_token": hidden(form, "csrf_token"),
                                            "filename": "shop/cart.py",
                                            "function_name": "total",
                                            "code_fragment": "return sum(prices)",
                                            "email_header": "Known since the 2.0 migration"})
    assert again.status == 409 and len(load_rules(str(tmp_path)).known_errors) == 2


def test_state_changes_need_the_sessions_csrf_token(app, admin, tmp_path):
    for token in ("", "not-the-token"):
        answer = admin.post("/add_known_error", {"csrf_token": token,
                                                 "filename": "shop/cart.py"})
        assert answer.status == 403
        assert admin.post("/rules", {"csrf_token": token, "kind": "ignored_exceptions",
                                     "exception_type": "a.B"}).status == 403
    assert admin.post("/logout", {}).status == 403
    anonymous = Client(app)
    assert anonymous.post("/rules", {"kind": "ignored_exceptions",
                                     "exception_type": "a.B"}).status == 401
    assert list(tmp_path.glob("*.yaml")) == []


def test_an_invalid_form_is_shown_again_with_the_reason(app, admin, tmp_path):
    token = hidden(admin.get("/rules").text, "csrf_token")
    answer = admin.post("/rules", {"csrf_token": token, "kind": "watched_files",
                                   "email": "not-an-address", "filepath": "shop/"})
    assert answer.status == 400 and "must be an email address" in answer.text
    assert 'value="shop/"' in answer.text
    assert not (tmp_path / "watched_files.yaml").exists()
    assert admin.post("/rules", {"csrf_token": token, "kind": "nope"}).status == 400


@pytest.mark.parametrize("kind, form, expected", [
    ("building_blocks", {"filename": "shop/util.py", "function_name": "retry"},
     [{"filename": "shop/util.py", "function_name": "retry"}]),
    ("third_party_whitelist", {"filename": "requests/adapters.py"},
     [{"filename": "requests/adapters.py"}]),
    ("ignored_exceptions", {"exception_type": "requests.exceptions.ConnectionError"},
     ["requests.exceptions.ConnectionError"]),
    ("watched_files", {"email": "carol@example.net", "filepath": "shop",
                       "watch_all_errors": "1"},
     [{"email": "carol@example.net", "filepath": "shop", "watch_all_errors": True}]),
    ("email_remapping", {"from_address": "alice", "to_address": "al@example.com"},
     {"alice": "al@example.com"}),
    ("disownership", {"email": "bob@example.org", "filepath": "shop/legacy",
                      "designated_email": "carol@example.net"},
     [{"email": "bob@example.org", "filepath": "shop/legacy",
       "designated_email": "carol@example.net"}]),
])
def test_every_rule_file_has_a_working_form(app, admin, tmp_path, kind, form, expected):
    page = admin.get("/rules")
    assert f'value="{kind}"' in page.text
    answer = admin.post("/rules", {"csrf_token": hidden(page.text, "csrf_token"),
                                   "kind": kind, **form})
    assert answer.status == 200, answer.text
    assert yaml.safe_load((tmp_path / f"{kind}.yaml").read_text()) == expected
    load_rules(str(tmp_path))  # the server's loader accepts the file
    assert "1 entry" in admin.get("/rules").text
