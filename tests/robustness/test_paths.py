"""Paths are data, not commands: hostile filenames and revisions never read or write outside
the repository nor reach git as options; such frames are simply not in-app."""

from __future__ import annotations

import pytest

from support.gitrepo import init_repo, shop_repo
from support.server import start_server
from support.smtp import SmtpSink

from .common import ALICE_LINE, record_body, report

MALLORY = ("Mallory", "mallory@evil.example")
CANARY = "canary-4711"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The shop repository, a git repository beside it that must never be read, a mail
    sink and a server blaming the shop."""
    root = tmp_path_factory.mktemp("paths")
    shop = shop_repo(root / "shop-repo")
    outside = init_repo(root / "outside")
    outside.commit(MALLORY, {"secret.py": f"TOKEN = '{CANARY}'\n" * 20}, "secret")
    sink = SmtpSink().start()
    # Each hostile report's alert is looked at, so none may wait for an hourly digest.
    server = start_server(root / "server", repo_dir=shop.path, smtp_hostport=sink.hostport,
                          report_error_threshold=1, mail_max_per_recipient_per_hour=0)
    yield root, shop, server, sink
    server.stop()
    sink.stop()


def hostile_filenames(root, shop) -> list[str]:
    """Names that try to escape the repository or pass as git options."""
    pwned = root / "pwned"
    return [
        "../../etc/passwd", "/etc/passwd", "../outside/secret.py",
        str(root / "outside" / "secret.py"), f"{shop.path}/../outside/secret.py",
        f"{shop.path}/shop/../../outside/secret.py", "shop/../../outside/secret.py",
        f"--output={pwned}", f"-o{pwned}", "--help", "-", "shop/-cart.py",
        f"shop/cart.py\n--output={pwned}", f"shop/cart.py\r\n--output={pwned}",
        "shop/\x00../../outside/secret.py", f"\x00--output={pwned}",
        f"shop/cart.py --output={pwned}", f"$(touch {pwned})", f"`touch {pwned}`",
        f"shop/cart.py;touch {pwned}", "~/.ssh/id_rsa", "\\\\server\\share\\secret.py",
        "C:\\..\\..\\outside\\secret.py", "shop/cart.py/..", ".git/config", "shop/./../../x",
    ]


def test_hostile_filenames_are_not_in_app_and_touch_nothing(world):
    root, shop, server, sink = world
    names = hostile_filenames(root, shop)
    reports = [report(dict(ALICE_LINE, filename=name, function_name=f"hostile_{index}",
                           text=f"TOKEN = '{CANARY}'" if "secret" in name else "x"))
               for index, name in enumerate(names)]
    status, _, _ = server.post(record_body(reports))
    assert status == 200
    assert server.wait_until(lambda: server.inbox_depth() == 0, timeout=60)
    rows = server.query("SELECT function_name, blamed, author_email FROM errors "
                        "WHERE function_name LIKE 'hostile_%'")
    assert len(rows) == len(names)
    assert [row for row in rows if row[1] or row[2]] == [], "a hostile path was blamed"
    assert not (root / "pwned").exists()
    mails = sink.wait_for(len(names), where=lambda to, _: "hostile_" in str(_.get_body()))
    assert {tuple(recipients) for recipients, _ in sink.messages} <= {("oncall@example.com",)}
    assert len(mails) == len(names)
    for _, message in sink.messages:
        assert "Mallory" not in message.as_string()


def test_hostile_revisions_never_reach_git_as_options(world):
    root, shop, server, sink = world
    pwned = root / "pwned-revision"
    revisions = [f"--output={pwned}", "-h", f"HEAD --output={pwned}", "HEAD\n--all",
                 "../../outside", f"$(touch {pwned})", "HEAD~99999", "@{-1}", ":/secret",
                 "refs/../../outside", "0" * 40, "ffffffffffff"]
    reports = [report(dict(ALICE_LINE, function_name=f"revision_{index}"), revision=revision)
               for index, revision in enumerate(revisions)]
    status, _, _ = server.post(record_body(reports))
    assert status == 200
    assert server.wait_until(lambda: server.inbox_depth() == 0, timeout=60)
    assert not pwned.exists()
    rows = server.query("SELECT author_email FROM errors WHERE function_name LIKE 'revision_%'")
    # The line exists at the default branch: blamed there, on its real author.
    assert sorted(rows) == [("alice@example.com",)] * len(revisions)


def test_the_same_line_by_its_real_path_is_in_app(world):
    root, shop, server, sink = world
    frame = dict(ALICE_LINE, filename=str(shop.path / "shop" / "cart.py"),
                 function_name="control")
    assert server.record(report(frame))["result"] == {"accepted": True}
    assert server.wait_until(lambda: server.query(
        "SELECT author_email FROM errors WHERE function_name = 'control'") == [
        ("alice@example.com",)], timeout=30)


def test_an_absolute_path_through_a_parent_directory_is_normalised_and_blamed(world):
    root, shop, server, sink = world
    # a notebook in shop/notebooks/ that did sys.path.insert(0, "..")
    through_parent = str(shop.path / "notebooks" / ".." / "shop" / "cart.py")
    frame = dict(ALICE_LINE, filename=through_parent, function_name="through_parent")
    assert server.record(report(frame))["result"] == {"accepted": True}
    assert server.wait_until(lambda: server.query(
        "SELECT author_email FROM errors WHERE function_name = 'through_parent'") == [
        ("alice@example.com",)], timeout=30)
