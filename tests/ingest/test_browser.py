"""``/browser`` and ``/flawless.js`` in-process: CORS, keys, rates, bodies, what is stored."""

from __future__ import annotations

import json

import pytest

from support.reportport import ReportPort

SHOP = "http://shop.example"
STACK = "TypeError: x is undefined\n    at lineTotal (http://shop.example/static/cart.js?v=2:12:23)"


def payload(**extra) -> bytes:
    return json.dumps({"type": "TypeError", "message": "x is undefined", "stack": STACK,
                       "page": "http://shop.example/cart?user=ann", "release": "9fceb02",
                       "kind": "error", **extra}).encode()


@pytest.fixture
def port(tmp_path) -> ReportPort:
    return ReportPort(tmp_path, allowed_origins=(SHOP, "https://admin.example"))


def post(port: ReportPort, origin: str = SHOP, path: str = "/browser", body: bytes = None,
         **headers: str):
    return port.send("POST", path, payload() if body is None else body,
                     {"Content-Type": "text/plain", **({"Origin": origin} if origin else {}),
                      **headers})


def test_an_allowed_page_reports_and_gets_its_origin_back(port):
    response = post(port)
    assert response.status == 200 and port.json(response) == {"accepted": True}
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    assert response.headers["Vary"] == "Origin"
    report = port.stored_reports()[0]
    assert report.exception_type == "TypeError" and report.revision == "9fceb02"
    frame = report.traceback[0]
    assert (frame.filename, frame.line_number, frame.column_number, frame.function_name) == \
        ("http://shop.example/static/cart.js", 12, 23, "lineTotal")
    assert report.context == {"kind": "error", "page": "http://shop.example/cart"}


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://shop.example:8080",
                                    "https://shop.example", ""])
def test_other_origins_and_requests_without_one_are_refused(port, origin):
    response = post(port, origin)
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    assert response.headers["Vary"] == "Origin"
    assert port.storage.inbox_depth() == 0


def test_origins_compare_without_case_or_trailing_slash(tmp_path):
    port = ReportPort(tmp_path, allowed_origins=("HTTP://Shop.Example/",))
    assert post(port).status == 200


def test_a_star_allows_every_origin(tmp_path):
    port = ReportPort(tmp_path, allowed_origins=("*",))
    response = post(port, "http://anything.example")
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://anything.example"


def test_without_allowed_origins_no_page_may_report(tmp_path):
    assert post(ReportPort(tmp_path)).status == 403


def test_the_preflight_answers_allowed_origins_only(port):
    allowed = port.send("OPTIONS", "/browser", b"", {"Origin": SHOP})
    assert allowed.status == 204 and "POST" in allowed.headers["Access-Control-Allow-Methods"]
    assert port.send("OPTIONS", "/browser", b"", {"Origin": "http://evil.example"}).status == 403


def test_the_key_must_be_an_ingest_key_when_keys_are_set(tmp_path):
    port = ReportPort(tmp_path, keys=("page-key",), allowed_origins=(SHOP,))
    assert post(port, path="/browser?key=page-key").status == 200
    assert post(port, path="/browser?key=guess").status == 401
    assert post(port).status == 401
    assert port.storage.inbox_depth() == 1


def test_rates_per_address_without_keys_and_per_key_with_them(tmp_path):
    port = ReportPort(tmp_path, per_address=2, allowed_origins=(SHOP,))
    assert [post(port).status for _ in range(3)] == [200, 200, 429]
    assert port.send("POST", "/browser", payload(), {"Origin": SHOP},
                     client_host="10.0.0.9").status == 200
    (tmp_path / "2").mkdir()
    port = ReportPort(tmp_path / "2", keys=("page-key",), per_key=1, allowed_origins=(SHOP,))
    assert post(port, path="/browser?key=page-key").status == 200
    limited = port.send("POST", "/browser?key=page-key", payload(), {"Origin": SHOP},
                        client_host="10.0.0.9")
    assert limited.status == 429 and limited.headers["Retry-After"] == "1"


@pytest.mark.parametrize("body", [b"not json", b"[1]", b"[" * 100_000, b"\xff\xfe",
                                  json.dumps({"type": 3, "line": "x"}).encode()[:-1]])
def test_bad_bodies_are_400_and_keep_serving(port, body):
    assert post(port, body=body).status == 400
    assert post(port).status == 200


def test_a_body_over_the_browser_limit_is_413(port):
    assert post(port, body=payload(message="x" * 300_000)).status == 413


def test_what_a_page_sends_is_scrubbed(port):
    post(port, body=payload(message="token=abcdef123456 card 4111 1111 1111 1111"))
    stored = port.storage._query("SELECT payload FROM inbox")[0]["payload"].decode()
    assert "abcdef123456" not in stored and "4111 1111" not in stored and "user=ann" not in stored


def test_the_client_script_is_served(port):
    response = port.send("GET", "/flawless.js")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/javascript")
    assert b"unhandledrejection" in response.body and b"sendBeacon" in response.body
