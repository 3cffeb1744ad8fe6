"""git blame against real repositories: authors, revisions, hostile input, .mailmap,
ignore-revs, moved code, broken repositories, and the bounded, caching Twisted service."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
import time
from typing import Any, Callable, Optional

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from flawless.server.core.model import Blame
from flawless.server.core.redaction import redact, url_secrets
from flawless.server.git.porcelain import locate_line
from flawless.server.git.repository import BlameFailed, Repository, RepositoryUnavailable
from flawless.server.processing.blame_service import TIP_TRUSTED_SECONDS, BlameService
from flawless.server.threads import PoolService
from support.gitrepo import ALICE, BOB, CAROL, CART_V2, GitRepo, init_repo

CART_PATH = "shop/cart.py"
RAISE_LINE = 7                                  # raise ValueError("negative price"), by Alice
RAISE_TEXT = 'raise ValueError("negative price")'
AVERAGE_LINE = 14                               # return self.total() / len(...), by Bob


class ThreadedClock(Clock):
    """A `Clock` that also takes calls from worker threads and runs them when pumped."""

    def __init__(self) -> None:
        super().__init__()
        self._from_threads: queue.Queue = queue.Queue()

    def callFromThread(self, function: Callable, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        """Queue a call made by a worker thread."""
        self._from_threads.put((function, args, kwargs))

    def run_until(self, done: Callable[[], bool], timeout: float = 20.0) -> None:
        """Run queued calls until ``done()`` holds."""
        deadline = time.monotonic() + timeout
        while not done():
            function, args, kwargs = self._from_threads.get(
                timeout=max(0.0, deadline - time.monotonic()))
            function(*args, **kwargs)


def outcome(deferred: defer.Deferred, clock: ThreadedClock) -> Any:
    """The result of ``deferred`` (a Failure when it failed), pumping ``clock`` for it."""
    results: list = []
    deferred.addBoth(results.append)
    clock.run_until(lambda: bool(results))
    return results[0]


@pytest.fixture
def service_clock():
    """A started BlameService factory on a ThreadedClock; everything stopped afterwards."""
    clock = ThreadedClock()
    services: list = []

    def make(repository: Repository, max_concurrent: int = 2,
             fetch_interval: Optional[float] = None) -> BlameService:
        service = start_blame_service(repository, clock, max_concurrent, fetch_interval)
        services.append(service)
        return service

    yield make, clock
    for service in services:
        stop_blame_service(service)


def start_blame_service(repository: Repository, clock: Clock, max_concurrent: int = 2,
                        fetch_interval: Optional[float] = None,
                        commit_graph: bool = False) -> BlameService:
    """A started BlameService with its own git and fetch pools."""
    pools = [PoolService("git", max_concurrent, clock), PoolService("fetch", 1, clock)]
    for pool in pools:
        pool.startService()
    service = BlameService(repository, pools[0], pools[1], clock, cache_size=100,
                           fetch_interval=fetch_interval, commit_graph=commit_graph)
    service.pools = pools
    service.startService()
    return service


def stop_blame_service(service: BlameService) -> None:
    """Stop the service, then its pools."""
    if service.running:
        service.stopService()
    for pool in service.pools:
        if pool.running:
            pool.stopService()


def rewrite_line(repo: GitRepo, path: str, line_number: int, text: str, author, message: str,
                 date: str) -> str:
    """Commit ``path`` with one line replaced by ``text``; the new sha."""
    lines = (repo.path / path).read_text().split("\n")
    lines[line_number - 1] = text
    return repo.commit(author, {path: "\n".join(lines)}, message, date=date)


# -- authors and revisions ---------------------------------------------------------------

def test_blames_alice_and_bob_for_their_own_lines(shop):
    repository = Repository(str(shop.path))
    head = shop.head()
    alice = repository.blame_line(CART_PATH, RAISE_LINE, head)
    bob = repository.blame_line(CART_PATH, AVERAGE_LINE, head)
    pricing = repository.blame_line("shop/pricing.py", 12, head)
    assert (alice.author_name, alice.author_email) == ALICE
    assert alice.commit_summary == "Add the cart"
    assert (bob.author_name, bob.author_email) == BOB
    assert bob.commit_sha == head and bob.line_number == AVERAGE_LINE
    assert pricing.author_email == BOB[1] and pricing.commit_summary == "Add pricing"
    assert alice.revision == head and alice.commit_timestamp == 1793613600.0


def test_whole_file_blames_agree_with_one_line_blames(shop):
    moved = shop.commit(CAROL, {CART_PATH: '"""The cart."""\n' + CART_V2}, "Docstring")
    whole = Repository(str(shop.path))
    for line in range(1, 16):
        single = Repository(str(shop.path)).blame_line(CART_PATH, line, moved)
        assert whole.blame_line(CART_PATH, line, moved) == single
    assert whole.blame_line(CART_PATH, 1, moved).author_email == CAROL[1]
    assert whole.blame_line(CART_PATH, 15, moved).author_email == BOB[1]
    with pytest.raises(BlameFailed, match="has no line 16"):
        whole.blame_line(CART_PATH, 16, moved)


def test_older_revision_is_blamed_at_that_revision(shop):
    before = shop.head()
    after = rewrite_line(shop, CART_PATH, 11, "        return sum(p for _, p in self.items)",
                         CAROL, "Shorter names", "2026-11-05T10:00:00+00:00")
    repository = Repository(str(shop.path))
    assert repository.resolve_revision(before) == (before, True)
    assert repository.resolve_revision(before[:7].upper()) == (before, True)
    old = repository.blame_line(CART_PATH, 11, before)
    new = repository.blame_line(CART_PATH, 11, after)
    assert old.author_email == ALICE[1] and old.revision == before
    assert new.author_email == CAROL[1] and new.revision == after


def test_unknown_or_unsafe_revisions_fall_back_to_head(shop, tmp_path):
    head = shop.head()
    repository = Repository(str(shop.path))
    target = tmp_path / "x"
    for revision in (None, "", "0" * 40, "deadbeef", f"--output={target}", "HEAD~1",
                     "main", "-h", "abc", "a" * 41, "12345\n"):
        assert repository.resolve_revision(revision) == (head, False), revision
    assert not target.exists()


def test_configured_branch_is_the_fallback(shop):
    main = shop.head()
    shop.git("checkout", "-q", "-b", "feature")
    feature = shop.commit(CAROL, {"shop/extra.py": "x = 1\n"}, "Extra")
    shop.git("checkout", "-q", "main")
    assert Repository(str(shop.path)).resolve_revision(None) == (main, False)
    on_feature = Repository(str(shop.path), branch="feature")
    assert on_feature.resolve_revision(None) == (feature, False)
    assert "shop/extra.py" in on_feature.paths_at(feature)
    assert "shop/extra.py" not in on_feature.paths_at(main)


# -- hostile paths -----------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "../../etc/passwd", "/etc/passwd", "-rf", "--output=OUT", "shop/cart.py\0x",
    "shop/cart.py\nshop/pricing.py", "shop", "shop/../shop/cart.py", "./shop/cart.py",
    "shop/missing.py", ":(glob)**", "", "shop/cart.py ",
])
def test_paths_outside_the_tree_are_refused_before_git(shop, tmp_path, path):
    outside = tmp_path / "outside"
    outside.mkdir()
    repository = Repository(str(shop.path))
    with pytest.raises(BlameFailed, match="is not a file of the repository"):
        repository.blame_line(path.replace("OUT", str(outside / "evil")), 1, shop.head())
    assert list(outside.iterdir()) == []
    assert shop.git("status", "--porcelain") == ""


def test_bad_line_numbers_and_lines_past_the_end_fail(shop):
    repository = Repository(str(shop.path))
    head = shop.head()
    for line in (0, -3, True, "7"):
        with pytest.raises(BlameFailed, match="not a positive integer"):
            repository.blame_line(CART_PATH, line, head)  # type: ignore[arg-type]
    with pytest.raises(BlameFailed, match="has only 14 lines"):
        repository.blame_line(CART_PATH, 15, head)
    with pytest.raises(BlameFailed, match="not a full commit sha"):
        repository.blame_line(CART_PATH, 1, "--output=/tmp/x")


@pytest.mark.parametrize("path", ["checks/corrupt_rows.py", "zlib/inflate.py",
                                  "git/packfile.py", "unable to read.py"])
def test_a_line_past_the_end_fails_alone_whatever_the_file_is_called(tmp_path, path):
    repo = init_repo(tmp_path / "repo")
    head = repo.commit(ALICE, {path: "one = 1\ntwo = 2\n"}, "Two lines")
    repository = Repository(str(repo.path))
    with pytest.raises(BlameFailed, match="has only 2 lines"):
        repository.blame_line(path, 3, head)
    assert repository.blame_line(path, 2, head).author_email == ALICE[1]


# -- .mailmap and .git-blame-ignore-revs -------------------------------------------------

def test_mailmap_maps_an_old_address_to_the_current_one(tmp_path):
    repo = init_repo(tmp_path / "repo")
    first = repo.commit(("alice", "alice@old.example"), {"a.py": "one = 1\ntwo = 2\n"}, "Old")
    repository = Repository(str(repo.path))
    assert repository.blame_line("a.py", 1, first).author_email == "alice@old.example"
    repo.commit(BOB, {".mailmap": f"{ALICE[0]} <{ALICE[1]}> <alice@old.example>\n"}, "Mailmap")
    # Also at the older revision, which has no .mailmap: the branch tip's one counts,
    # whether or not a working tree holds it.
    for sha in (first, repo.head()):
        blamed = repository.blame_line("a.py", 1, sha)
        assert (blamed.author_name, blamed.author_email) == ALICE
    (repo.path / ".mailmap").unlink()
    assert repository.blame_line("a.py", 2, first).author_email == ALICE[1]
    bare = tmp_path / "bare"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(bare)], check=True)
    assert Repository(str(bare)).blame_line("a.py", 2, first).author_email == ALICE[1]


def test_ignore_revs_file_skips_a_reformat_commit(tmp_path):
    repo = init_repo(tmp_path / "repo")
    repo.commit(ALICE, {"a.py": "def f(x):\n    return x+1\n"}, "Add f")
    reformat = repo.commit(CAROL, {"a.py": "def f(x):\n    return x + 1\n"}, "Reformat")
    repository = Repository(str(repo.path))
    assert repository.blame_line("a.py", 2, reformat).author_email == CAROL[1]
    listed = repo.commit(BOB, {".git-blame-ignore-revs": f"# black\n{reformat}\n"
                               f"{'f' * 40}  # not in this repository\n"}, "Ignore reformat")
    assert repository.blame_line("a.py", 2, listed).author_email == ALICE[1]
    # The file of the blamed revision counts: before it existed, the reformat is blamed.
    assert repository.blame_line("a.py", 2, reformat).author_email == CAROL[1]


def test_blames_that_miss_the_cache_together_all_skip_the_listed_commits(tmp_path):
    """Several threads blaming at once, with a fresh cache each round, each find the
    ignore-revs list whole: none is handed a file another thread is writing."""
    repo = init_repo(tmp_path / "repo")
    files = {f"m{number}.py": "def f(x):\n    return x+1\n" for number in range(4)}
    repo.commit(ALICE, files, "Add f")
    reformat = repo.commit(CAROL, {path: "def f(x):\n    return x + 1\n" for path in files},
                           "Reformat")
    listed = repo.commit(BOB, {".git-blame-ignore-revs": f"{reformat}\n"}, "Ignore reformat")
    threads = 8
    authors: list[str] = []
    for _ in range(20):
        repository = Repository(str(repo.path))
        repository.paths_at(listed)
        barrier = threading.Barrier(threads)

        def blame(number: int) -> None:
            barrier.wait()
            authors.append(repository.blame_line(f"m{number % 4}.py", 2, listed).author_email)

        workers = [threading.Thread(target=blame, args=(number,)) for number in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert len(authors) == 20 * threads
    assert [author for author in authors if author != ALICE[1]] == []


# -- moved code --------------------------------------------------------------------------

def test_a_stale_line_number_is_corrected_by_the_frame_text(shop):
    moved = shop.commit(CAROL, {CART_PATH: '"""The cart."""\n\n\n' + CART_V2}, "Docstring")
    repository = Repository(str(shop.path))
    blamed = repository.blame_line(CART_PATH, RAISE_LINE, moved, "  " + RAISE_TEXT + " ")
    assert blamed.line_number == RAISE_LINE + 3
    assert blamed.author_email == ALICE[1]
    assert blamed.commit_summary == "Add the cart"
    stale = repository.blame_line(CART_PATH, RAISE_LINE, moved, "no such text")
    assert stale.line_number == RAISE_LINE
    # Past the end of the shortened file, the text still finds the line.
    shorter = shop.commit(BOB, {CART_PATH: CART_V2.split("\n\n    def total")[0] + "\n"}, "Cut")
    assert repository.blame_line(CART_PATH, 40, shorter, RAISE_TEXT).line_number == RAISE_LINE
    with pytest.raises(BlameFailed):
        repository.blame_line(CART_PATH, 40, shorter, "no such text")


def test_locate_line_prefers_the_nearest_and_then_the_later_line():
    lines = ["a", "x", "b", "x", "c", "x"]
    assert locate_line(lines, 3, "x") == 4
    assert locate_line(lines, 5, " x ") == 6
    assert locate_line(lines, 1, "a") == 1
    assert locate_line(lines, 60, "a") is None
    assert locate_line(lines, 3, "y") is None


# -- broken and missing repositories -----------------------------------------------------

def test_missing_repository_is_unavailable_until_it_appears(tmp_path):
    repository = Repository(str(tmp_path / "later"))
    with pytest.raises(RepositoryUnavailable, match="does not exist"):
        repository.resolve_revision(None)
    (tmp_path / "later").mkdir()
    with pytest.raises(RepositoryUnavailable, match="not a git repository"):
        repository.resolve_revision(None)
    repo = init_repo(tmp_path / "later")
    with pytest.raises(RepositoryUnavailable, match="names a commit"):
        repository.resolve_revision(None)
    head = repo.commit(ALICE, {"a.py": "a = 1\n"}, "First")
    assert repository.resolve_revision(None) == (head, False)


def test_a_directory_inside_another_repository_is_not_mistaken_for_it(shop):
    repository = Repository(str(shop.path / "shop"))
    with pytest.raises(RepositoryUnavailable, match="not a git repository"):
        repository.resolve_revision(None)


def test_garbage_head_makes_the_repository_unavailable_and_restoring_it_heals(shop):
    head = shop.head()
    repository = Repository(str(shop.path))
    head_file = shop.path / ".git" / "HEAD"
    saved = head_file.read_bytes()
    head_file.write_bytes(b"\x00garbage\n")
    with pytest.raises(RepositoryUnavailable, match="not a git repository"):
        repository.resolve_revision(None)
    with pytest.raises(RepositoryUnavailable):
        repository.blame_line(CART_PATH, RAISE_LINE, head)
    head_file.write_bytes(saved)
    assert repository.blame_line(CART_PATH, RAISE_LINE, head).author_email == ALICE[1]


def test_lost_objects_make_the_repository_unavailable_and_restoring_them_heals(shop, tmp_path):
    head = shop.head()
    objects = shop.path / ".git" / "objects"
    saved = tmp_path / "objects"
    shutil.copytree(objects, saved)
    for entry in objects.iterdir():
        if entry.name not in ("info", "pack"):
            shutil.rmtree(entry)
    repository = Repository(str(shop.path))
    with pytest.raises(RepositoryUnavailable):
        repository.resolve_revision(head)
    with pytest.raises(RepositoryUnavailable):
        repository.paths_at(head)
    shutil.rmtree(objects)
    shutil.copytree(saved, objects)
    assert repository.resolve_revision(head) == (head, True)
    assert repository.blame_line(CART_PATH, RAISE_LINE, head).author_email == ALICE[1]


def test_a_slow_git_times_out_as_unavailable(shop, tmp_path):
    slow_git = tmp_path / "slow-git"
    slow_git.write_text("#!/bin/sh\nexec sleep 10\n")
    slow_git.chmod(0o755)
    repository = Repository(str(shop.path), git_cli_path=str(slow_git), timeout=0.3)
    started = time.monotonic()
    with pytest.raises(RepositoryUnavailable, match="did not finish within 0.3 seconds"):
        repository.resolve_revision(None)
    assert time.monotonic() - started < 5
    with pytest.raises(RepositoryUnavailable, match="cannot be run"):
        Repository(str(shop.path), git_cli_path=str(tmp_path / "no-git")).paths_at("a" * 40)


# -- clone, fetch, credentials -----------------------------------------------------------

def test_clone_into_an_empty_directory_then_fetch_a_new_commit(shop, tmp_path, service_clock):
    make, clock = service_clock
    upstream = tmp_path / "upstream.git"
    shop.git("clone", "-q", "--bare", str(shop.path), str(upstream))
    repo_dir = tmp_path / "clone"
    repo_dir.mkdir()
    repository = Repository(str(repo_dir), repo_url=upstream.as_uri())
    service = make(repository, fetch_interval=60)
    clock.run_until(lambda: service.last_fetch is not None)
    assert service.last_error is None
    assert outcome(service.resolve(None), clock) == (shop.head(), False)
    blamed = outcome(service.blame(CART_PATH, AVERAGE_LINE, None), clock)
    assert blamed.author_email == BOB[1] and not blamed.at_requested_revision

    old_head = shop.head()
    newer = rewrite_line(shop, CART_PATH, AVERAGE_LINE, "        return 0", CAROL, "Safe",
                         "2026-11-06T10:00:00+00:00")
    shop.git("push", "-q", str(upstream), "main")
    assert outcome(service.resolve(newer), clock) == (old_head, False)   # not fetched yet
    first_fetch = service.last_fetch
    clock.advance(60)
    clock.run_until(lambda: service.last_fetch != first_fetch)
    assert outcome(service.resolve(None), clock) == (newer, False)
    blamed = outcome(service.blame(CART_PATH, AVERAGE_LINE, newer), clock)
    assert blamed.author_email == CAROL[1] and blamed.at_requested_revision
    repository.ensure_clone()   # a repository is there: nothing to do


def test_credentials_in_the_url_never_appear_in_errors(tmp_path, service_clock):
    make, clock = service_clock
    url = "http://flawless-user:s3cr3t-token@127.0.0.1:9/repo.git"
    repository = Repository(str(tmp_path / "clone"), repo_url=url, timeout=10)
    with pytest.raises(RepositoryUnavailable) as raised:
        repository.ensure_clone()
    assert "s3cr3t" not in str(raised.value) and "127.0.0.1" in str(raised.value)
    service = make(repository, fetch_interval=60)
    clock.run_until(lambda: service.last_error is not None)
    assert "s3cr3t" not in service.last_error and service.last_fetch is None
    assert redact("fatal: https://tok@host/x and " + url, url_secrets(url)).count("***") == 2
    assert redact("password s3cr3t-token leaked", url_secrets(url)) == "password *** leaked"
    assert redact("git fetch failed", url_secrets("ssh://git@host/repo.git")) == \
        "git fetch failed"
    # A blame that works does not hide the failing fetch from the health page.
    outcome(service.resolve(None), clock)
    assert service.last_error.startswith("fetch failed")


def test_a_non_empty_directory_is_not_cloned_into(tmp_path):
    (tmp_path / "clone").mkdir()
    (tmp_path / "clone" / "keep.txt").write_text("mine")
    repository = Repository(str(tmp_path / "clone"), repo_url="file:///nowhere")
    with pytest.raises(RepositoryUnavailable, match="neither a git repository nor empty"):
        repository.ensure_clone()
    assert os.listdir(tmp_path / "clone") == ["keep.txt"]


# -- the service -------------------------------------------------------------------------

class CountingRepository(Repository):
    """A real repository that counts its blames and how many run at once."""

    def __init__(self, *args: Any, pause: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pause = pause
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def blame_line(self, *args: Any, **kwargs: Any) -> Blame:
        """Blame, keeping count."""
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(self.pause)
            return super().blame_line(*args, **kwargs)
        finally:
            with self._lock:
                self.running -= 1


def test_concurrency_is_bounded_and_no_request_is_dropped(shop, service_clock):
    make, clock = service_clock
    repository = CountingRepository(str(shop.path), pause=0.05)
    service = make(repository, max_concurrent=2)
    head = shop.head()
    requests = [service.blame(CART_PATH, line, head) for line in range(1, 11)]
    results = outcome(defer.gatherResults(requests), clock)
    assert [blamed.line_number for blamed in results] == list(range(1, 11))
    assert repository.calls == 10
    assert repository.most_at_once == 2


def test_a_cached_blame_costs_no_git_call_and_no_thread_hop(shop, service_clock):
    make, clock = service_clock
    repository = CountingRepository(str(shop.path))
    service = make(repository)
    head = shop.head()
    first = outcome(service.blame(CART_PATH, RAISE_LINE, head, RAISE_TEXT), clock)
    assert first.author_email == ALICE[1] and first.at_requested_revision
    again: list = []
    service.blame(CART_PATH, RAISE_LINE, head, RAISE_TEXT).addBoth(again.append)
    assert again == [first]                     # fired at once, on this thread
    assert repository.calls == 1
    at_head = outcome(service.blame(CART_PATH, RAISE_LINE, None, RAISE_TEXT), clock)
    assert at_head == Blame(**{**first.__dict__, "at_requested_revision": False})
    assert repository.calls == 1


def test_identical_requests_in_flight_share_one_git_call(shop, service_clock):
    make, clock = service_clock
    repository = CountingRepository(str(shop.path), pause=0.1)
    service = make(repository, max_concurrent=4)
    head = shop.head()
    outcome(service.resolve(head), clock)
    results = outcome(defer.gatherResults(
        [service.blame(CART_PATH, AVERAGE_LINE, head) for _ in range(5)]), clock)
    assert {blamed.author_email for blamed in results} == {BOB[1]}
    assert repository.calls == 1


def test_failures_reach_the_caller_and_bad_lines_are_cached(shop, tmp_path, service_clock):
    make, clock = service_clock
    repository = CountingRepository(str(shop.path))
    service = make(repository)
    head = shop.head()
    for _ in range(2):
        failed = outcome(service.blame("../../etc/passwd", 1, head), clock)
        assert isinstance(failed, Failure) and failed.check(BlameFailed)
    assert repository.calls == 1
    missing = make(Repository(str(tmp_path / "gone")))
    failed = outcome(missing.blame(CART_PATH, 1, head), clock)
    assert isinstance(failed, Failure) and failed.check(RepositoryUnavailable)
    assert "does not exist" in missing.last_error
    index = outcome(service.index_at(head), clock)
    assert CART_PATH in index and "shop/pricing.py" in index
    assert outcome(service.index_at(head), clock) is index  # built once


def test_time_of_one_blame_in_a_long_history(tmp_path):
    """Prints (asserts nothing about) the time of a blame in a generated 3,000-line file."""
    repo = init_repo(tmp_path / "big")
    commits, file_lines = 1500, 3000
    stream = []
    lines = [f"value_{number} = {number}" for number in range(file_lines)]
    for commit in range(commits):
        if commit:
            for offset in range(3):
                changed = (commit * 7 + offset * 1013) % (file_lines - 1)
                lines[changed] = f"value_{changed} = {commit}  # changed"
        content = ("\n".join(lines) + "\n").encode()
        author = (ALICE, BOB, CAROL)[commit % 3]
        message = f"Change {commit}".encode()
        stream.append(b"commit refs/heads/main\n")
        stream.append(f"author {author[0]} <{author[1]}> {1700000000 + commit} +0000\n"
                      f"committer {author[0]} <{author[1]}> {1700000000 + commit} +0000\n"
                      .encode())
        stream.append(b"data %d\n%s\n" % (len(message), message))
        stream.append(b"M 100644 inline big.py\ndata %d\n%s\n" % (len(content), content))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo.path, input=b"".join(stream),
                   check=True)
    repository = Repository(str(repo.path))
    head, _ = repository.resolve_revision(None)
    recent = (commits - 1) * 7 % (file_lines - 1) + 1
    for label, line in (("a line of the last commit, alone", recent),
                        ("a line untouched since the first commit, with its whole file",
                         file_lines),
                        ("a further line of the same file", 1)):
        started = time.perf_counter()
        blamed = repository.blame_line("big.py", line, head, lines[line - 1])
        elapsed = time.perf_counter() - started
        print(f"\nblame of {label} ({commits} commits, {file_lines} lines): "
              f"{elapsed * 1000:.1f} ms, {blamed.commit_summary}")


def test_stopping_ends_a_slow_git_call_and_keeps_the_report_for_later(shop, tmp_path):
    slow_git = tmp_path / "slow-git"
    slow_git.write_text("#!/bin/sh\nsleep 30\n")
    slow_git.chmod(0o755)
    clock = ThreadedClock()
    service = start_blame_service(Repository(str(shop.path), git_cli_path=str(slow_git)),
                                  clock)
    results: list = []
    service.blame(CART_PATH, RAISE_LINE, None).addBoth(results.append)
    time.sleep(0.3)
    started = time.monotonic()
    stop_blame_service(service)
    assert time.monotonic() - started < 5
    clock.run_until(lambda: bool(results))
    assert isinstance(results[0], Failure) and results[0].check(RepositoryUnavailable)



class ResolveCountingRepository(Repository):
    """A real repository that counts how often a revision is looked up with git."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resolved = 0

    def resolve_revision(self, revision: Optional[str]) -> tuple[str, bool]:
        """Resolve, keeping count."""
        self.resolved += 1
        return super().resolve_revision(revision)


def test_head_is_looked_up_once_for_a_burst_and_again_after_a_commit(shop, service_clock):
    make, clock = service_clock
    repository = ResolveCountingRepository(str(shop.path))
    service = make(repository)
    first = [outcome(service.resolve(None), clock) for _ in range(5)]
    assert first == [(shop.head(), False)] * 5 and repository.resolved == 1
    old_head = shop.head()
    shop.commit(ALICE, {"shop/extra.py": "x = 1\n"}, "Add extra")
    assert outcome(service.resolve(None), clock) == (old_head, False)  # trusted briefly
    clock.advance(TIP_TRUSTED_SECONDS + 0.1)
    assert outcome(service.resolve(None), clock) == (shop.head(), False)
    assert repository.resolved == 2


def test_the_history_is_indexed_for_blames_and_a_read_only_repository_only_costs_speed(shop):
    clock = ThreadedClock()
    graphs = shop.path / ".git" / "objects" / "info" / "commit-graphs"
    service = start_blame_service(Repository(str(shop.path)), clock, commit_graph=True)
    try:
        deadline = time.monotonic() + 20
        while not (graphs.exists() and any(graphs.glob("*.graph"))):
            assert time.monotonic() < deadline, "no commit-graph was written"
            time.sleep(0.05)
        blamed = outcome(service.blame(CART_PATH, AVERAGE_LINE, None), clock)
        assert blamed.author_email == BOB[1]
    finally:
        stop_blame_service(service)
    shutil.rmtree(graphs)
    graphs.write_text("in the way")  # the graph cannot be written: blames must not mind
    failing = start_blame_service(Repository(str(shop.path)), clock, commit_graph=True)
    try:
        blamed = outcome(failing.blame(CART_PATH, RAISE_LINE, None), clock)
        assert blamed.author_email == ALICE[1] and graphs.read_text() == "in the way"
    finally:
        stop_blame_service(failing)
