"""The dashboard behind viewer_password, against the real server: a stranger reads nothing
but /check_health; a login comes back to any address, whatever its script; cookies are
Secure behind a TLS proxy."""

from __future__ import annotations

import http.client
import re
import urllib.parse

from support.server import start_server

from .common import get_page, report

VIEWER = "viewer passphrase"


def request(port: int, method: str, path: str, body: str = "",
            headers: dict[str, str] = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, body, headers or {})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_a_stranger_reads_nothing_and_a_viewer_comes_back_where_they_were(tmp_path):
    server = start_server(tmp_path, viewer_password=VIEWER, admin_password="admin phrase",
                          hostname="https://flawless.example.com")
    try:
        assert server.record(report(exception_message="do not show"))["result"] == {
            "accepted": True}
        assert server.wait_until(lambda: server.inbox_depth() == 0)
        assert request(server.http_port, "GET", "/").status == 303
        assert request(server.http_port, "GET", "/api/weekly_report").status == 401
        status, health = get_page(server.web_url + "/check_health")
        assert status == 200 and "do not show" not in health and VIEWER not in health
        target = "/café-€"
        form = request(
            server.http_port, "GET", "/login?next=" + urllib.parse.quote(target))
        login_cookie = form.getheader("set-cookie")
        assert "; Secure" in login_cookie
        page = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
        page.request("GET", "/login?next=" + urllib.parse.quote(target))
        answer = page.getresponse()
        text = answer.read().decode()
        token = re.search(r'name="login_token" value="([^"]*)"', text).group(1)
        next_field = re.search(r'name="next" value="([^"]*)"', text).group(1)
        cookie = answer.getheader("set-cookie").split(";")[0]
        logged_in = request(server.http_port, "POST", "/login", urllib.parse.urlencode(
            {"password": VIEWER, "login_token": token, "next": next_field}),
            {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
        assert logged_in.status == 303
        assert logged_in.getheader("location") == urllib.parse.quote(target)
        session = next(value.split(";")[0] for value in logged_in.headers.get_all("set-cookie")
                       if value.startswith("flawless_session=") and "; Secure" in value)
        assert request(server.http_port, "GET", "/", headers={"Cookie": session}).status == 200
    finally:
        server.stop()
