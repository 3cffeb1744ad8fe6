"""WSGI under a real wsgiref server, a real process dying of an uncaught exception, a
crashing thread and the logging handler, each reporting to a real JSON-RPC sink."""

from __future__ import annotations

import http.client
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

import flawless.client
from flawless.client.hooks import FlawlessHandler
from flawless.client.middleware import FlawlessMiddleware

ROOT = str(Path(flawless.client.__file__).resolve().parents[2])


@pytest.fixture
def sink(report_sink, use_client):
    use_client([report_sink.hostport], key=report_sink.key)
    return report_sink


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def serve(app):
    server = make_server("127.0.0.1", 0, app, WSGIServer, QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server


def get(server, path, headers):
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except (http.client.HTTPException, OSError) as error:
        return None, repr(error).encode()
    finally:
        connection.close()


class CartResponse:
    """A response that fails half-way through, or when closed."""

    def __init__(self, fail_in):
        self.fail_in = fail_in

    def __iter__(self):
        yield b"first chunk\n"
        if self.fail_in == "iteration":
            raise RuntimeError("stream broke mid-response")
        yield b"done\n"

    def close(self):
        if self.fail_in == "close":
            raise OSError("cleanup failed")


def cart_app(environ, start_response):
    fail_in = environ["PATH_INFO"].strip("/")
    if fail_in == "call":
        raise LookupError("no such cart")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return CartResponse(fail_in)


@pytest.mark.parametrize("fail_in, exception_type", [
    ("call", "builtins.LookupError"),
    ("iteration", "builtins.RuntimeError"),
    ("close", "builtins.OSError"),
])
def test_wsgi_errors_are_reported_with_the_request_and_no_credentials(sink, fail_in,
                                                                      exception_type):
    server = serve(FlawlessMiddleware(cart_app))
    try:
        get(server, f"/{fail_in}?id=7&password=hunter22", {
            "User-Agent": "pytest-agent", "Cookie": "sessionid=COOKIE-CANARY",
            "Authorization": "Bearer AUTH-CANARY-123", "X-Forwarded-For": "203.0.113.9"})
    finally:
        server.shutdown()
        server.server_close()
    assert flawless.client.flush(5)
    [report] = sink.wait_for_reports(1)
    assert report["exception_type"] == exception_type
    request = report["request"]
    assert request["method"] == "GET"
    assert request["url"] == f"http://127.0.0.1:{server.server_port}/{fail_in}?id&password"
    assert request["headers"]["User-Agent"] == "pytest-agent"
    assert {"Host", "User-Agent"} <= set(request["headers"])
    assert not {"Cookie", "Authorization", "X-Forwarded-For"} & set(request["headers"])
    text = sink.all_text()
    for canary in ("hunter22", "COOKIE-CANARY", "AUTH-CANARY", "203.0.113.9"):
        assert canary not in text


def test_a_healthy_wsgi_response_is_untouched(sink):
    server = serve(FlawlessMiddleware(cart_app))
    try:
        status, body = get(server, "/fine", {})
    finally:
        server.shutdown()
        server.server_close()
    assert (status, body) == (200, b"first chunk\ndone\n")
    assert flawless.client.flush(2)
    assert sink.wait_for_reports(1, timeout=0.2) == []


DYING = textwrap.dedent('''
    import sys
    sys.path.insert(0, sys.argv[2])
    import flawless.client
    flawless.client.install(hostports=[sys.argv[1]], key=sys.argv[3], hostname="batch-7")

    def settle(invoice):
        raise ArithmeticError("invoice does not balance: " + invoice)

    settle("INV-42")
''')


def test_a_process_dying_of_an_uncaught_exception_reports_it(report_sink):
    result = subprocess.run([sys.executable, "-c", DYING, report_sink.hostport, ROOT,
                             report_sink.key], capture_output=True, text=True, timeout=30,
                            env={k: v for k, v in os.environ.items()
                                 if not k.startswith("FLAWLESS_")})
    assert result.returncode == 1
    assert "ArithmeticError: invoice does not balance" in result.stderr  # the previous hook ran
    [report] = report_sink.wait_for_reports(1)
    assert report["exception_type"] == "builtins.ArithmeticError"
    assert report["hostname"] == "batch-7"
    assert [frame["function_name"] for frame in report["traceback"]] == ["<module>", "settle"]


def test_a_crashing_thread_is_reported_and_the_previous_hook_still_runs(report_sink):
    seen = []
    previous = threading.excepthook
    threading.excepthook = lambda args: seen.append(args.exc_type)
    try:
        flawless.client.install(hostports=[report_sink.hostport], key=report_sink.key,
                                excepthook=False, threads=True)

        def worker():
            raise FileNotFoundError("spool missing")

        thread = threading.Thread(target=worker, name="spooler")
        thread.start()
        thread.join()
        assert flawless.client.flush(5)
    finally:
        flawless.client.uninstall()
        restored = threading.excepthook
        threading.excepthook = previous
    assert seen == [FileNotFoundError]
    assert restored is not previous and restored.__name__ == "<lambda>"
    [report] = report_sink.wait_for_reports(1)
    assert report["exception_type"] == "builtins.FileNotFoundError"
    assert report["additional_info"] == "uncaught in thread spooler"
    assert report["traceback"][-1]["function_name"] == "worker"


def test_log_exception_reports_once_with_the_message(sink):
    logger = logging.getLogger("shop.checkout")
    handler = FlawlessHandler()
    logger.addHandler(handler)
    try:
        try:
            {}["basket"]
        except KeyError:
            logger.exception("checkout failed for order %s", 17)
            logger.error("again", exc_info=True)  # the same exception: not reported twice
        logger.error("no exception here")
    finally:
        logger.removeHandler(handler)
    assert flawless.client.flush(5)
    [report] = sink.wait_for_reports(1)
    assert sink.wait_for_reports(2, timeout=0.2) == [report]
    assert report["additional_info"] == "logged by shop.checkout: checkout failed for order 17"
