"""Revision discovery from .git files, and configuration from the environment."""

from __future__ import annotations

import sys
from pathlib import Path

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


# -- the interpreter's directories are never the program's revision ---------------------

import json  # noqa: E402
import subprocess  # noqa: E402
import sysconfig  # noqa: E402
import textwrap  # noqa: E402

from flawless.client.paths import LibraryFiles, interpreter_directories, normalise  # noqa: E402
from support.gitrepo import BOB  # noqa: E402


def fake_pyenv(tmp_path):
    """A Python installed inside a git work tree, as pyenv does, and its json module."""
    pyenv = init_repo(tmp_path / "pyenv")
    prefix = pyenv.path / "versions" / "3.99.0"
    stdlib = sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix),
                                       "installed_base": str(prefix),
                                       "installed_platbase": str(prefix)})["stdlib"]
    relative = str(Path(stdlib, "json", "decoder.py").relative_to(pyenv.path))
    pyenv_sha = pyenv.commit(BOB, {relative: "def raw_decode(s):\n    raise ValueError(s)\n"},
                             "pyenv")
    return prefix, Path(stdlib, "json", "decoder.py"), pyenv_sha


def test_a_stdlib_inside_a_git_work_tree_never_gives_the_revision(tmp_path):
    prefix, decoder, pyenv_sha = fake_pyenv(tmp_path)
    app = init_repo(tmp_path / "app")
    app_sha = app.commit(ALICE, {"shop/loader.py": "x = 1\n"}, "app")
    is_library = LibraryFiles(interpreter_directories([str(prefix)]))
    assert is_library(str(decoder)) and not is_library(str(app.path / "shop" / "loader.py"))
    fresh_caches()
    innermost_first = [str(decoder), str(app.path / "shop" / "loader.py")]
    assert revision.revision_of_frames(innermost_first, is_library) == app_sha
    # Before: the innermost frame with a .git won, and that was pyenv's commit.
    assert revision.revision_of_frames(innermost_first, lambda name: False) == pyenv_sha
    assert revision.revision_of_frames([str(decoder)], is_library) is None


def test_the_running_interpreters_files_are_library_files_and_the_programs_are_not():
    import json as json_module

    assert LibraryFiles()(json_module.decoder.__file__)
    assert LibraryFiles()(pytest_file())
    assert LibraryFiles()("<frozen importlib._bootstrap>")
    assert not LibraryFiles()(__file__)
    assert not LibraryFiles()("<stdin>")
    assert not LibraryFiles()("/srv/app/site_packages_report.py")
    assert LibraryFiles()("/opt/app/venv/lib/python3.11/site-packages/requests/api.py")
    # A prefix shared with other software counts only through its Python directories.
    shared = interpreter_directories(["/usr"])
    assert "/usr/" not in shared and not LibraryFiles(shared)("/usr/src/app/shop/cart.py")
    assert LibraryFiles(shared)("/usr/lib/python3.11/json/decoder.py".replace(
        "python3.11", Path(sysconfig.get_paths()["stdlib"]).name))


def pytest_file():
    import _pytest

    return _pytest.__file__


def test_paths_are_normalised_lexically():
    assert normalise("/home/u/proj/notebooks/../helpers/stats.py") == \
        "/home/u/proj/helpers/stats.py"
    assert normalise("/srv/./app//shop/cart.py") == "/srv/app/shop/cart.py"
    assert normalise("notebooks/../helpers/stats.py") == "helpers/stats.py"
    assert normalise("<ipython-input-3-abc>") == "<ipython-input-3-abc>"
    assert normalise("/srv/app/shop/cart.py") == "/srv/app/shop/cart.py"


NOTEBOOK_HELPER = textwrap.dedent('''
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import flawless.client
    flawless.client.install(hostports=[sys.argv[2]], excepthook=False, threads=False)
    from stats import mean
    try:
        mean([])
    except ZeroDivisionError:
        flawless.client.record_error(None, sys.exc_info())
    assert flawless.client.flush(10)
''')


def test_a_helper_imported_through_dotdot_is_reported_at_its_real_path_and_revision(
        tmp_path, rpc_sink):
    project = init_repo(tmp_path / "proj")
    stats = "def mean(xs):\n    return sum(xs) / len(xs)\n"
    sha = project.commit(ALICE, {"helpers/stats.py": stats, "notebooks/README": "notes\n"},
                         "stats")
    subprocess.run([sys.executable, "-c", NOTEBOOK_HELPER,
                    str(project.path / "notebooks" / ".." / "helpers"), rpc_sink.hostport],
                   check=True, cwd=project.path / "notebooks", timeout=60)
    [report] = rpc_sink.wait_for_reports(1)
    assert report["traceback"][-1]["filename"].endswith("/proj/helpers/stats.py")
    assert "/../" not in json.dumps(report)
    assert report["revision"] == sha
