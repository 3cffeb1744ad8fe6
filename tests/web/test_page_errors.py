"""Errors of real pages in a real headless Chromium, reported to the real server: through
/flawless.js from a committed script and from an esbuild bundle of committed TypeScript
(resolved through its uploaded source map), and through @sentry/browser bundled by esbuild.
Each is mailed to the author of the original line; a page of an origin that is not allowed
is refused; a page throwing in headless Firefox ESR reaches the author too. The pages are
served from other loopback ports than the server's."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Iterator

import pytest

from support.chromium import NOT_INSTALLED, have_chromium
from support.gitrepo import ALICE, BOB, CAROL, GitRepo, init_repo
from support.server import FlawlessProcess, start_server
from support.smtp import SmtpSink

playwright = pytest.importorskip("playwright.sync_api")

TESTS = Path(__file__).resolve().parents[1]
WEBAPP = TESTS / "data" / "webapp"
NODE_MODULES = TESTS / "browser_js" / "node_modules"
ESBUILD = NODE_MODULES / ".bin" / "esbuild"
# Sentry's browser SDK reads a DSN's key as letters, digits and "_" only (its keys are hex).
KEY = "pagekey2b9d"

pytestmark = [
    pytest.mark.skipif(not have_chromium(), reason=NOT_INSTALLED),
    pytest.mark.skipif(not ESBUILD.exists(),
                       reason="esbuild is not installed: run `npm ci` in tests/browser_js"),
]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>shop</title>
<script src="http://127.0.0.1:{port}/flawless.js" data-key="{key}" data-release="{release}">
</script></head>
<body>
<button id="plain">plain</button> <button id="rejection">rejection</button>
<button id="bundled">bundled</button>
<script src="/static/app.js"></script>
<script src="/dist/main.js"></script>
</body></html>
"""

# No fetch (an old browser): flawless.js sends with navigator.sendBeacon; two reports at most.
BEACON_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>old browser</title>
<script>window.fetch = undefined;</script>
<script src="http://127.0.0.1:{port}/flawless.js" data-key="{key}" data-release="{release}"
        data-max-reports="2"></script></head>
<body><button id="plain">plain</button><script src="/static/app.js"></script></body></html>
"""

SENTRY_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>shop with sentry</title>
<script>window.SENTRY_DSN = "http://{key}@127.0.0.1:{port}/1"; window.RELEASE = "{release}";
</script></head>
<body><button id="sentry">sentry</button><script src="/dist/with-sentry.js"></script></body>
</html>
"""


class Site:
    """A directory served over HTTP on its own loopback port (its own origin)."""

    def __init__(self, directory: Path):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def webapp_repo(path: Path) -> GitRepo:
    """Alice wrote the plain script and the entry points, Carol the checkout, Bob the
    discount."""
    repo = init_repo(path)
    read = lambda name: (WEBAPP / name).read_text()  # noqa: E731
    repo.commit(ALICE, {name: read(name) for name in ("static/app.js", "src/main.ts",
                                                      "src/with-sentry.ts")}, "The shop page")
    repo.commit(CAROL, {"src/checkout.ts": read("src/checkout.ts")}, "Checkout")
    repo.commit(BOB, {"src/discount.ts": read("src/discount.ts")}, "Discounts")
    return repo


def bundle(repo: GitRepo, out: Path) -> None:
    """esbuild's minified bundles of the entry points, with source maps."""
    subprocess.run([str(ESBUILD), "src/main.ts", "src/with-sentry.ts", "--bundle", "--minify",
                    "--sourcemap", f"--outdir={out}", "--log-level=warning"],
                   cwd=repo.path, check=True, env={**os.environ, "NODE_PATH": str(NODE_MODULES)})


@contextlib.contextmanager
def shop(directory: Path, sites: int = 1
         ) -> Iterator[tuple[FlawlessProcess, SmtpSink, list[Site], GitRepo, Path]]:
    """The shop's repository, its static files served by ``sites`` sites (the first allowed)
    and a server taking the first site's reports, mailing to an SMTP sink."""
    repo = webapp_repo(directory / "repo")
    site_dir = directory / "site"
    shutil.copytree(repo.path / "static", site_dir / "static")
    served = [Site(site_dir) for _ in range(sites)]
    sink = SmtpSink().start()
    server = start_server(directory / "server", repo_dir=repo.path,
                          smtp_hostport=sink.hostport, ingest_keys=KEY,
                          allowed_origins=served[0].origin)
    try:
        yield server, sink, served, repo, site_dir
    finally:
        server.stop()
        sink.stop()
        for site in served:
            site.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[tuple[FlawlessProcess, SmtpSink, Site, Site, GitRepo]]:
    with shop(tmp_path_factory.mktemp("pages"), sites=2) as (server, sink, sites, repo,
                                                               site_dir):
        release = repo.head()
        bundle(repo, site_dir / "dist")
        uploaded = subprocess.run(
            [sys.executable, "-m", "flawless", "sourcemaps", "-conf", str(server.config_path),
             "--release", release, "--url-prefix", "/dist/", str(site_dir / "dist")],
            capture_output=True, text=True)
        assert uploaded.returncode == 0, uploaded.stderr
        for name, template in (("page.html", PAGE), ("sentry.html", SENTRY_PAGE),
                               ("beacon.html", BEACON_PAGE)):
            (site_dir / name).write_text(template.format(port=server.port, key=KEY,
                                                         release=release))
        yield server, sink, sites[0], sites[1], repo


FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")

# Firefox is driven by its own command line (headless, one screenshot, then it quits), so
# the error happens while the page loads: a click on the button, from a script.
FIREFOX_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>shop in firefox</title>
<script src="http://127.0.0.1:{port}/flawless.js" data-key="{key}" data-release="{release}">
</script></head>
<body><button id="plain">plain</button> <button id="rejection">rejection</button>
<script src="/static/app.js"></script>
<script>document.getElementById("plain").click();</script></body></html>
"""


@pytest.mark.skipif(FIREFOX is None, reason="Firefox is not installed (Debian: firefox-esr)")
def test_firefox_reports_an_error_of_a_committed_script_to_the_author_of_its_line(tmp_path):
    """Firefox writes stacks its own way (``lineTotal@URL:2:15``); its error reaches the
    author of the line as Chromium's does."""
    with shop(tmp_path) as (server, sink, [site], repo, site_dir):
        (site_dir / "firefox.html").write_text(FIREFOX_PAGE.format(
            port=server.port, key=KEY, release=repo.head()))
        home = tmp_path / "home"
        (home / "profile").mkdir(parents=True)
        subprocess.run([FIREFOX, "--headless", "--no-remote", "--profile", str(home / "profile"),
                        "--screenshot", str(home / "page.png"), site.origin + "/firefox.html"],
                       capture_output=True, timeout=120, check=False,
                       env={**os.environ, "HOME": str(home), "MOZ_HEADLESS": "1"})
        assert_line_total_alert(sink)
        assert server.query("SELECT COUNT(*) FROM errors") == [(1,)]


def mail_to(sink: SmtpSink, address: str) -> tuple[str, EmailMessage]:
    found = sink.wait_for(1, where=lambda recipients, _: recipients == [address])
    assert found, f"no mail to {address}: {[r for r, _ in sink.messages]}"
    return found[0][1].get_body(("plain",)).get_content(), found[0][1]


def assert_line_total_alert(sink: SmtpSink) -> None:
    """The alert of the committed script's error (static/app.js, line 2) reached Alice."""
    text, message = mail_to(sink, "alice@example.com")
    assert "TypeError" in message["Subject"] and "static/app.js:2" in message["Subject"]
    assert 'static/app.js", line 2, column' in text and "in lineTotal" in text
    assert "The shop page" in text


def test_an_error_in_a_committed_script_is_mailed_to_the_author_of_its_line(world, page):
    server, sink, allowed, _, _ = world
    page.goto(allowed.origin + "/page.html")
    page.click("#plain")
    assert_line_total_alert(sink)


def test_an_error_in_a_bundle_is_mailed_to_the_author_of_the_typescript_line(world, page):
    server, sink, allowed, _, _ = world
    page.goto(allowed.origin + "/page.html")
    page.click("#bundled")
    text, message = mail_to(sink, "carol@example.net")
    assert "src/checkout.ts:7" in message["Subject"] and "lineTotal" in message["Subject"]
    assert "return item.price * quantity;" in text and "Checkout" in text
    assert "/dist/main.js:1:" in text and "through its source map to repo/src/checkout.ts:7" in text


def test_a_rejection_with_no_error_is_reported_with_its_value(world, page):
    server, _, allowed, _, _ = world
    page.goto(allowed.origin + "/page.html")
    page.click("#rejection")
    assert server.wait_until(lambda: server.query(
        "SELECT exception_type FROM errors WHERE exception_type = 'UnhandledRejection'"))
    [(report,)] = server.query("SELECT last_report FROM errors "
                               "WHERE exception_type = 'UnhandledRejection'")
    assert "out of stock" in report and "/page.html" in report


def test_a_page_of_an_origin_that_is_not_allowed_is_refused(world, page):
    server, _, _, other, _ = world
    before = server.query("SELECT COALESCE(SUM(count), 0) FROM errors")
    page.goto(other.origin + "/page.html")
    # The server answers 403 without the origin in Access-Control-Allow-Origin, so the
    # browser fails the request (and the page learns nothing of the answer).
    with page.expect_event("requestfailed",
                           lambda request: "/browser" in request.url) as failed:
        page.click("#plain")
    assert failed.value.failure
    assert server.inbox_depth() == 0
    assert server.query("SELECT COALESCE(SUM(count), 0) FROM errors") == before


def test_sentry_browser_sdk_errors_are_mailed_to_the_author_of_the_original_line(world, page):
    server, sink, allowed, _, _ = world
    page.goto(allowed.origin + "/sentry.html")
    page.click("#sentry")
    text, message = mail_to(sink, "bob@example.org")
    assert "src/discount.ts:4" in message["Subject"] and "discounted" in message["Subject"]
    assert "return item.price * (1 - rate);" in text and "Discounts" in text


def test_without_fetch_reports_go_by_beacon_and_at_most_data_max_reports(world, page):
    server, _, allowed, _, _ = world
    count = "SELECT COALESCE(SUM(count), 0) FROM errors WHERE filename = 'static/app.js'"
    [(before,)] = server.query(count)
    sent = []
    page.on("request", lambda request: sent.append(request) if "/browser" in request.url
            else None)
    page.goto(allowed.origin + "/beacon.html")
    for _ in range(3):
        page.click("#plain")
    assert server.wait_until(lambda: server.query(count) == [(before + 2,)])
    assert len(sent) == 2
    assert all(request.resource_type == "ping" for request in sent)  # sendBeacon's type
