"""Marking an error resolved, fixed in a commit of a real repository, from its page and from
/api/; reopening it; what its page says of a fix, a regression and old deployments."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import pytest
from twisted.internet import defer

from flawless.server.core.model import Resolution
from flawless.server.git.repository import Repository
from support.gitrepo import BOB, init_repo

from .support import NOW, Client, DashboardApp, record, store_error
from .test_admin import PASSWORD, hidden, log_in

ERROR = {"filename": "shop/cart.py", "function_name": "total", "line_number": "12",
         "text": "return sum(prices)"}


@pytest.fixture
def fix(tmp_path: Path) -> str:
    """A repository with Bob's fix commit; its sha."""
    repo = init_repo(tmp_path / "repo")
    repo.commit(BOB, {"shop/cart.py": "def total(prices):\n    return sum(prices)\n"}, "Cart")
    return repo.commit(BOB, {"shop/cart.py": "def total(prices):\n    return sum(map(int, "
                                             "prices))\n"}, "Sum prices given as text")


@pytest.fixture
def app(tmp_path: Path, fix: str) -> DashboardApp:
    app = DashboardApp(tmp_path, admin_password=PASSWORD)
    repository = Repository(str(tmp_path / "repo"))
    app.commits = lambda revision: defer.maybeDeferred(repository.commit_info, revision)
    store_error(app.store, record(), [NOW - 60])
    return app


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"script:{password}".encode()).decode()}


def resolution_of(app: DashboardApp):
    error_id = app.store.find_error(record().key).error_id
    return app.store.resolutions([error_id]).get(error_id)


def admin_client(app: DashboardApp) -> Client:
    client = Client(app)
    assert log_in(client).status == 303
    return client


def resolve_form(client: Client, **fields: str) -> dict:
    page = client.get("/view_traceback", **ERROR)
    return {**ERROR, "csrf_token": hidden(page.text, "csrf_token"), **fields}


def test_an_admin_marks_an_error_fixed_in_a_commit_from_its_page(app, fix):
    client = admin_client(app)
    answer = client.post("/resolve_error", resolve_form(client, fix_commit=fix[:10].upper()))
    assert answer.status == 303 and answer.headers["location"].startswith("/view_traceback?")
    saved = resolution_of(app)
    assert saved == Resolution(resolved_at=NOW, source="the dashboard", fix_commit=fix,
                               fix_author_name=BOB[0], fix_author_email=BOB[1])
    page = client.get("/view_traceback", **ERROR).text
    assert "resolved" in page and f"fixed in <code class=\"sha\">{fix[:12]}</code> by " \
                                  "Bob Builder" in page
    assert "Reopen" in page and "Mark resolved" not in page
    assert client.post("/reopen_error", resolve_form(client)).status == 303
    reopened = resolution_of(app)
    assert not reopened.resolved and reopened.fix_commit == fix
    assert client.post("/reopen_error", resolve_form(client)).status == 409


@pytest.mark.parametrize("fix_commit, status, says", [
    ("not-a-sha", 400, "4 to 40 hex digits"),
    ("--output=x", 400, "4 to 40 hex digits"),
    ("deadbeef" * 5, 400, "is not a commit of the repository"),
])
def test_a_fix_commit_must_be_a_commit_of_the_repository(app, fix_commit, status, says):
    client = admin_client(app)
    answer = client.post("/resolve_error", resolve_form(client, fix_commit=fix_commit))
    assert answer.status == status and says in answer.text
    assert resolution_of(app) is None


def test_without_a_repository_an_error_is_resolved_without_a_commit(app, fix):
    app.commits = None
    client = admin_client(app)
    refused = client.post("/resolve_error", resolve_form(client, fix_commit=fix))
    assert refused.status == 400 and "No repository is configured" in refused.text
    assert client.post("/resolve_error", resolve_form(client)).status == 303
    page = client.get("/view_traceback", **ERROR).text
    assert "No fix commit was named: when it happens again, it is a regression." in page


def test_resolving_needs_the_admin_and_the_forms_token(app, fix):
    anonymous = Client(app)
    page = anonymous.get("/view_traceback", **ERROR).text
    assert "Not marked resolved" in page and "Mark resolved" not in page
    assert "Fixes: /view_traceback?filename=shop%2Fcart.py&amp;function_name=total" in page
    assert anonymous.post("/resolve_error", {**ERROR, "csrf_token": "x"}).status == 401
    client = admin_client(app)
    assert client.post("/resolve_error", {**ERROR, "csrf_token": "forged"}).status == 403
    assert resolution_of(app) is None


def test_the_api_resolves_with_the_admin_password_over_http_basic(app, fix):
    client = Client(app)
    query = "&".join(f"{name}={value.replace(' ', '+')}" for name, value in ERROR.items())
    wrong = client.request("POST", f"/api/resolve?{query}&fix_commit={fix}",
                           headers=basic("guess"))
    assert wrong.status == 401 and json.loads(wrong.body)["error"]
    answer = client.request("POST", f"/api/resolve?{query}&fix_commit={fix}",
                            headers=basic(PASSWORD))
    assert answer.status == 200
    data = json.loads(answer.body)
    assert data["resolution"]["resolved"] and data["resolution"]["fix_commit"] == fix
    assert data["resolution"]["source"] == "the API"
    assert data["error"]["function_name"] == "total"
    shown = json.loads(client.get("/api/error", **ERROR).body)["resolution"]
    assert shown["fix_author_email"] == BOB[1]
    reopened = client.request("POST", f"/api/reopen?{query}",
                              headers=basic(PASSWORD))
    assert json.loads(reopened.body)["resolution"]["resolved"] is False
    missing = client.request("POST", "/api/resolve?filename=x.py&function_name=f",
                             headers=basic(PASSWORD))
    assert missing.status == 404


def test_the_page_says_what_became_of_a_fix(app, fix):
    error_id = app.store.find_error(record().key).error_id
    resolved = Resolution(resolved_at=NOW - 3600, source="a Fixes: trailer in " + fix[:12],
                          fix_commit=fix, fix_author_name=BOB[0], fix_author_email=BOB[1],
                          old_deployments=3, old_deployment_revision="a" * 40,
                          old_deployment_seen=NOW - 60)
    with app.store.transaction() as transaction:
        transaction.save_resolution(error_id, resolved)
    page = " ".join(Client(app).get("/view_traceback", **ERROR).text.split())
    assert "3 occurrences came from old deployments (revisions without the fix)" in page
    assert f"<code>{'a' * 12}</code>" in page and "counted, no alert" in page
    with app.store.transaction() as transaction:
        transaction.save_resolution(error_id, replace(resolved, resolved_at=None,
                                                      regressed_at=NOW, regressed_in="b" * 40))
    page = " ".join(Client(app).get("/view_traceback", **ERROR).text.split())
    assert f"regressed</span> 2026-11-11 12:00 UTC in <code>{'b' * 12}</code>" in page
    assert f"by the fix <code class=\"sha\">{fix[:12]}</code> by Bob Builder" in page


def test_the_viewers_password_reads_but_never_resolves(tmp_path, fix):
    app = DashboardApp(tmp_path, admin_password=PASSWORD, viewer_password="viewer pass")
    store_error(app.store, record(), [NOW - 60])
    client = Client(app)
    query = "&".join(f"{name}={value.replace(' ', '+')}" for name, value in ERROR.items())
    assert client.request("GET", f"/api/error?{query}", headers=basic("viewer pass")).status \
        == 200
    refused = client.request("POST", f"/api/resolve?{query}", headers=basic("viewer pass"))
    assert refused.status == 401 and resolution_of(app) is None
