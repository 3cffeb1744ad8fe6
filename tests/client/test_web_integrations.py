"""The web integrations in process (the live tests under gunicorn and uvicorn are in
tests/test_frameworks.py): statuses asked for, no double report, a scope per request, the
user id only when asked, and no framework imported until used."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import flawless.client


@pytest.fixture
def sink(rpc_sink, use_client):
    use_client([rpc_sink.hostport])
    return rpc_sink


def received(sink, count):
    assert flawless.client.flush(5)
    reports = sink.wait_for_reports(count, timeout=2)
    assert len(reports) == count, [r["exception_type"] for r in reports]
    return reports


def test_importing_an_integration_imports_no_framework():
    code = ("import sys, flawless.client.flask, flawless.client.asgi, flawless.client.django, "
            "flawless.client.run, flawless.client.middleware; "
            "print(sorted({'flask', 'django', 'starlette', 'fastapi'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def flask_app(**options):
    from flask import Flask, abort

    from flawless.client.flask import Flawless

    app = Flask("shop")
    Flawless(app, **options)

    @app.get("/fail")
    def fail():
        flawless.client.set_tag("request", "fail")
        return 1 / 0

    @app.get("/gone")
    def gone():
        abort(410)

    @app.get("/teapot")
    def teapot():
        return "short and stout", 418

    @app.get("/tagless")
    def tagless():
        try:
            raise KeyError("sku")
        except KeyError:
            flawless.client.record_error(None, sys.exc_info())
        return "ok"

    return app


def test_flask_reports_unhandled_errors_only_unless_statuses_are_asked(sink):
    client = flask_app().test_client()
    assert [client.get(path).status_code for path in ("/gone", "/teapot", "/nowhere",
                                                      "/fail", "/tagless")] == \
        [410, 418, 404, 500, 200]
    fail, handled = received(sink, 2)
    assert fail["exception_type"] == "builtins.ZeroDivisionError"
    assert fail["context"] == {"view": "fail"} and fail["tags"] == {"request": "fail"}
    assert "user" not in fail
    # The tag was the first request's: the next request's report does not carry it.
    assert handled["exception_type"] == "builtins.KeyError" and "tags" not in handled
    assert handled["request"]["route"] == "/tagless"


def test_flask_reports_the_statuses_asked_for_once(sink):
    client = flask_app(report_http_status=[410, 418, 500],
                       user_id=lambda: 42).test_client()
    for path in ("/gone", "/teapot", "/fail", "/nowhere"):
        client.get(path)
    gone, teapot, fail = received(sink, 3)
    assert (gone["exception_type"], gone["level"]) == ("werkzeug.exceptions.Gone", "warning")
    assert [frame["function_name"] for frame in gone["traceback"]][-3:-1] == ["gone", "abort"]
    assert (teapot["exception_type"], teapot["exception_message"], teapot["level"]) == \
        ("message", "HTTP 418 I'm a Teapot", "warning")
    assert teapot["traceback"][-1]["function_name"] == "teapot"  # blamed on the view
    assert fail["exception_type"] == "builtins.ZeroDivisionError" and "level" not in fail
    assert {report["user"]["id"] for report in (gone, teapot, fail)} == {"42"}


def starlette_app(**options):
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, WebSocketRoute

    from flawless.client.asgi import FlawlessASGIMiddleware

    async def fail(request):
        flawless.client.set_tag("request", "fail")
        return 1 / 0

    async def gone(request):
        raise HTTPException(410)

    async def fine(request):
        try:
            raise KeyError("sku")
        except KeyError:
            flawless.client.record_error(None, sys.exc_info())
        return PlainTextResponse("ok")

    async def socket(websocket):
        await websocket.accept()
        raise ConnectionResetError("socket broke")

    app = Starlette(routes=[Route("/fail", fail), Route("/gone", gone), Route("/fine", fine),
                            WebSocketRoute("/socket", socket)])
    return FlawlessASGIMiddleware(app, **options)


def test_asgi_reports_http_and_websocket_errors_reraised_unchanged(sink):
    from starlette.testclient import TestClient

    client = TestClient(starlette_app(user_id=lambda scope: "u-9"))
    with pytest.raises(ZeroDivisionError):
        client.get("/fail?email=ann@example.com")
    assert client.get("/gone").status_code == 410
    assert client.get("/fine").status_code == 200
    with pytest.raises(ConnectionResetError):
        with client.websocket_connect("/socket?token=t-123") as socket:
            socket.receive_text()
    fail, fine, socket = received(sink, 3)
    assert fail["request"]["url"] == "http://testserver/fail?email"
    assert fail["request"]["route"] == "/fail" and fail["user"] == {"id": "u-9"}
    assert fail["tags"] == {"request": "fail"} and "tags" not in fine
    assert fine["request"]["route"] == "/fine"
    assert socket["exception_type"] == "builtins.ConnectionResetError"
    assert socket["request"]["url"] == "ws://testserver/socket?token"
    assert "method" not in socket["request"]


def test_asgi_reports_the_statuses_asked_for(sink):
    from starlette.testclient import TestClient

    client = TestClient(starlette_app(report_http_status=range(400, 600)),
                        raise_server_exceptions=False)
    assert client.get("/gone").status_code == 410
    assert client.get("/fail").status_code == 500
    gone, fail = received(sink, 2)
    assert (gone["exception_message"], gone["level"]) == ("HTTP 410 Gone", "warning")
    assert gone["traceback"][-1]["function_name"] == "gone"
    assert fail["exception_type"] == "builtins.ZeroDivisionError"  # not a second "HTTP 500"


DJANGO = textwrap.dedent('''
    import json, sys
    from django.conf import settings
    settings.configure(
        DEBUG=False, SECRET_KEY="x" * 50, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth",
                        "flawless.client.django"],
        MIDDLEWARE=["flawless.client.django.middleware.FlawlessMiddleware"],
        FLAWLESS={"hostports": [sys.argv[1]], "report_http_status": [403, 410],
                  "excepthook": False, "threads": False})
    import django
    django.setup()
    from django.core.exceptions import PermissionDenied
    from django.http import Http404, HttpResponse
    from django.test import Client
    from django.urls import path
    import flawless.client

    def forbidden(request):
        raise PermissionDenied("not yours")

    def missing(request):
        raise Http404("no such cart")

    def gone(request):
        return HttpResponse("gone", status=410)

    def handled(request, cart):
        try:
            raise KeyError("sku")
        except KeyError:
            flawless.client.record_error(None, sys.exc_info())
        return HttpResponse("ok")

    urlpatterns = [path("forbidden", forbidden), path("missing", missing),
                   path("gone", gone), path("handled/<int:cart>", handled)]
    client = Client()
    print(json.dumps([client.get(p).status_code for p in
                      ("/forbidden", "/missing", "/gone", "/handled/7")]))
    assert flawless.client.flush(5)
''')


def test_django_reports_asked_statuses_and_gives_record_error_the_route(sink):
    result = subprocess.run([sys.executable, "-c", DJANGO, sink.hostport], capture_output=True,
                            text=True, timeout=60)
    assert json.loads(result.stdout) == [403, 404, 410, 200], result.stderr
    forbidden, gone, handled = received(sink, 3)
    assert (forbidden["exception_type"], forbidden["level"]) == \
        ("django.core.exceptions.PermissionDenied", "warning")
    assert forbidden["context"] == {"view": "__main__.forbidden"}
    assert (gone["exception_message"], gone["traceback"][-1]["function_name"]) == \
        ("HTTP 410 Gone", "gone")
    assert handled["request"]["route"] == "handled/<int:cart>"
    assert handled["request"]["url"] == "http://testserver/handled/7"
