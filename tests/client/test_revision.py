"""Revision discovery from .git files, and configuration from the environment."""

from __future__ import annotations

import sys

import flawless.client
from flawless.client import revision
from flawless.client.core import settings_from_environment
from support.gitrepo import ALICE, init_repo


def fresh_caches():
    revision.git_dir_of.cache_clear()
    revision.head_revision.cache_clear()


def test_the_commit_of_a_branch_from_loose_refs_then_packed_refs(tmp_path):
    repo = init_repo(tmp_path / "repo")
    sha = repo.commit(ALICE, {"shop/cart.py": "x = 1\n"}, "cart")
    target = str(repo.path / "shop" / "cart.py")
    fresh_caches()
    assert revision.revision_of(target) == sha
    repo.git("pack-refs", "--all")
    assert not (repo.path / ".git" / "refs" / "heads" / "main").exists()
    fresh_caches()
    assert revision.revision_of(target) == sha


def test_a_detached_head_and_files_outside_any_repository(tmp_path):
    repo = init_repo(tmp_path / "repo")
    first = repo.commit(ALICE, {"a.py": "a = 1\n"}, "one")
    repo.commit(ALICE, {"a.py": "a = 2\n"}, "two")
    repo.git("checkout", "-q", first)
    fresh_caches()
    assert revision.revision_of(str(repo.path / "a.py")) == first
    assert revision.revision_of("/nonexistent/place/a.py") is None
    assert revision.revision_of("<ipython-input-1-abc>") is None
    assert revision.revision_of_frames(["/x/site-packages/requests/api.py",
                                        str(repo.path / "a.py")]) == first


def test_reports_carry_the_revision_of_the_code_that_raised(shop, report_sink, use_client,
                                                           monkeypatch):
    use_client([report_sink.hostport], key=report_sink.key)
    monkeypatch.syspath_prepend(str(shop.path))
    fresh_caches()
    from shop.pricing import parse_price
    try:
        parse_price("twelve")
    except ValueError:
        flawless.client.record_error(None, sys.exc_info())
    assert flawless.client.flush(5)
    [report] = report_sink.wait_for_reports(1)
    assert report["revision"] == shop.head()
    assert report["traceback"][-1]["filename"].endswith("shop/pricing.py")


def test_configuration_from_the_environment():
    settings = settings_from_environment({
        "FLAWLESS_HOSTPORTS": "a.example.com:9028, b.example.com:9029",
        "FLAWLESS_KEY": "k1", "FLAWLESS_REVISION": "abc123", "FLAWLESS_HOSTNAME": "web-3"})
    assert settings.hostports == ("a.example.com:9028", "b.example.com:9029")
    assert (settings.key, settings.revision, settings.hostname) == ("k1", "abc123", "web-3")
    assert settings_from_environment({}).hostports == ()
    assert settings_from_environment({}).hostname is None


def test_install_reads_the_environment_and_arguments_win(monkeypatch, use_client):
    monkeypatch.setenv("FLAWLESS_HOSTPORTS", "env.example.com:1")
    monkeypatch.setenv("FLAWLESS_REVISION", "from-env")
    client = use_client(None)
    assert client.settings.hostports == ("env.example.com:1",)
    assert client.settings.revision == "from-env"
    client = use_client(["arg.example.com:2"], revision="from-arg")
    assert client.settings.hostports == ("arg.example.com:2",)
    assert client.settings.revision == "from-arg"
    flawless.client.set_hostports(["other.example.com:3"])
    assert flawless.client.get_client().settings.hostports == ("other.example.com:3",)
