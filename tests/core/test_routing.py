"""The pure routing core: path mapping, rule matching, the blamed frame, drops, known errors."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flawless.report import ChainedException, Frame, Report
from flawless.server.core.model import ErrorKey, KnownError, LineRule, RoutingSettings, Rules
from flawless.server.core.routing import (RepoIndex, is_raise_line, matches, route, route_inputs,
                                          rule_path)
from flawless.server.core.text import fold_whitespace

RUNTIME = ("site-packages", "dist-packages")
REPO = RepoIndex.from_paths([
    "shop/cart.py", "shop/validation.py", "shop/payments.py", "shop/util/money.py",
    "lib/x.py", "tools/x.py", "app.py", "src/pkg/core.py", "legacy/shop/cart.py",
    "helpers/stats.py",
])
SITE = "/home/u/venv/lib/python3.11/site-packages"


def frame(filename: str, function: str = "f", text: str = "do()", line: int = 10) -> Frame:
    return Frame(filename=filename, line_number=line, function_name=function, text=text)


def report(*frames: Frame, exception_type: str = "builtins.ValueError") -> Report:
    return Report(exception_type=exception_type, exception_message="boom", traceback=frames)


def route_of(rep: Report, rules: Rules = Rules(),
             settings: RoutingSettings = RoutingSettings()):
    return route(rep, REPO, rules, settings)


# -- RepoIndex --------------------------------------------------------------------------------

@pytest.mark.parametrize("filename, expected", [
    # the three spellings of the same file
    ("/srv/app/shop/cart.py", "shop/cart.py"),
    (f"{SITE}/shop/cart.py", "shop/cart.py"),
    ("shop/cart.py", "shop/cart.py"),
    # Windows clients
    ("C:\\deploy\\shop\\cart.py", "shop/cart.py"),
    ("C:\\Python311\\Lib\\site-packages\\shop\\cart.py", "shop/cart.py"),
    # the file whose whole path matched wins over a longer repository path with that suffix
    ("/opt/legacy/shop/cart.py", "legacy/shop/cart.py"),
    # a unique suffix of two components maps a src-layout checkout
    ("/srv/app/pkg/core.py", "src/pkg/core.py"),
    (f"{SITE}/pkg/core.py", "src/pkg/core.py"),
    ("/srv/app/./shop//cart.py", "shop/cart.py"),
    # a root-level file is matched by its whole path
    ("/srv/app/app.py", "app.py"),
    # ties: two repository files end with x.py and the frame cannot tell which
    ("x.py", None),
    ("/srv/app/x.py", None),
    # ...but one more directory decides
    ("/srv/app/lib/x.py", "lib/x.py"),
    # the basename alone is a coincidence when the directories differ
    ("/usr/lib/python3.11/json/money.py", None),
    ("/srv/other/cart.py", None),
    # an installed package's path must match in full: flask/app.py is not app.py
    ("/usr/lib/python3/dist-packages/flask/app.py", None),
    (f"{SITE}/requests/adapters.py", None),
    # an anchored path is normalised lexically (a notebook's sys.path.insert(0, ".."))
    ("/home/u/proj/notebooks/../helpers/stats.py", "helpers/stats.py"),
    ("/srv/app/../shop/cart.py", "shop/cart.py"),
    ("/srv/app/./tools/../shop/./cart.py", "shop/cart.py"),
    ("~/proj/notebooks/../helpers/stats.py", "helpers/stats.py"),
    ("C:\\proj\\notebooks\\..\\helpers\\stats.py", "helpers/stats.py"),
    (f"{SITE}/shop/../shop/cart.py", "shop/cart.py"),
    # ...but never above its anchor, and a relative path's .. is relative to nothing known
    ("/../shop/cart.py", None),
    ("/srv/../../shop/cart.py", None),
    ("~/../shop/cart.py", None),
    ("C:\\..\\shop\\cart.py", None),
    ("../shop/cart.py", None),
    ("notebooks/../shop/cart.py", None),
    ("shop/cart.py/..", None),
    # names that cannot be a repository file
    ("shop/cart.py\x00", None),
    ("shop/cart.py\nshop/cart.py", None),
    ("-rf/shop/cart.py", None),
    ("--output=shop/cart.py", None),
    ("", None),
    ("/", None),
    ("<string>", None),
    ("<frozen importlib._bootstrap>", None),
    ("/srv/app/shop/missing.py", None),
])
def test_repo_index_resolves_frame_paths(filename: str, expected: Optional[str]) -> None:
    assert REPO.resolve(filename, RUNTIME) == expected


def test_repo_index_uses_the_configured_runtime_dirs() -> None:
    index = RepoIndex.from_paths(["shop/cart.py", "vendor/shop/cart.py"])
    assert index.resolve("/opt/bundle/shop/cart.py", ("bundle",)) == "shop/cart.py"
    assert index.resolve("/x/vendor/shop/cart.py", ("site-packages",)) == "vendor/shop/cart.py"


def test_repo_index_ignores_unusable_repository_paths() -> None:
    index = RepoIndex.from_paths(["ok.py", "../escape.py", "-option.py", "dir/./ok2.py"])
    assert len(index) == 2
    assert "dir/ok2.py" in index
    assert index.resolve("/srv/dir/ok2.py", RUNTIME) == "dir/ok2.py"


def test_empty_index_resolves_nothing() -> None:
    assert RepoIndex.from_paths(()).resolve("/srv/app/shop/cart.py", RUNTIME) is None


def reference_resolve(paths: list[str], filename: str) -> Optional[str]:
    """The resolution policy written the slow, obvious way: compare with every file."""
    frame_parts = filename.strip("/").split("/")
    repo = {tuple(path.split("/")) for path in paths}
    if "site-packages" in frame_parts[:-1]:
        last = len(frame_parts) - 2 - frame_parts[:-1][::-1].index("site-packages")
        wanted = tuple(frame_parts[last + 1:])
        ending = [p for p in repo if p[-len(wanted):] == wanted and len(p) >= len(wanted)]
        if wanted in repo:
            return "/".join(wanted)
        return "/".join(ending[0]) if len(ending) == 1 else None

    def common(path: tuple[str, ...]) -> int:
        length = 0
        while length < min(len(path), len(frame_parts)) and \
                path[-length - 1] == frame_parts[-length - 1]:
            length += 1
        return length

    best = max((common(path) for path in repo), default=0)
    candidates = [path for path in repo if best and common(path) == best]
    whole = [path for path in candidates if len(path) == best]
    if whole:
        return "/".join(whole[0])
    if len(candidates) != 1 or (best == 1 and len(frame_parts) > 1):
        return None
    return "/".join(candidates[0])


components = st.sampled_from(["a", "b", "shop", "x.py", "y.py"])
repo_paths = st.lists(st.lists(components, min_size=1, max_size=4).map("/".join),
                      min_size=1, max_size=10)
frame_paths = st.lists(st.one_of(components, st.just("site-packages")), min_size=1,
                       max_size=6).map(lambda parts: "/srv/" + "/".join(parts))


@given(repo_paths, frame_paths)
def test_repo_index_agrees_with_the_obvious_slow_resolution(paths: list[str],
                                                            filename: str) -> None:
    index = RepoIndex.from_paths(paths)
    assert index.resolve(filename, ("site-packages",)) == reference_resolve(paths, filename)


def test_repo_index_keeps_few_entries_and_resolves_in_a_big_repository() -> None:
    paths = [f"pkg{i % 50}/mod{i % 7}/file{i}.py" for i in range(20000)] + \
        [f"pkg{i}/__init__.py" for i in range(50)]
    index = RepoIndex.from_paths(paths)
    assert len(index._by_suffix) < 3 * len(paths)
    assert index.resolve("/srv/app/pkg3/mod0/file10003.py", RUNTIME) == "pkg3/mod0/file10003.py"
    assert index.resolve("/srv/app/pkg7/__init__.py", RUNTIME) == "pkg7/__init__.py"
    assert index.resolve("/srv/app/__init__.py", RUNTIME) is None


@pytest.mark.parametrize("filename, repo_path, expected", [
    ("/srv/app/shop/cart.py", "shop/cart.py", "shop/cart.py"),
    (f"{SITE}/requests/adapters.py", None, "requests/adapters.py"),
    ("/usr/lib/python3/dist-packages/six.py", None, "six.py"),
    ("C:\\Py\\Lib\\site-packages\\requests\\api.py", None, "requests/api.py"),
    ("/usr/lib/python3.11/json/decoder.py", None, "/usr/lib/python3.11/json/decoder.py"),
    ("/usr/lib/python3.11/encodings/../json/decoder.py", None,
     "/usr/lib/python3.11/json/decoder.py"),
    (f"{SITE}/urllib3/../requests/adapters.py", None, "requests/adapters.py"),
    ("<string>", None, "<string>"),
])
def test_rule_path(filename: str, repo_path: Optional[str], expected: str) -> None:
    assert rule_path(filename, repo_path, RUNTIME) == expected


def test_rule_path_always_strips_site_packages_even_with_other_runtime_dirs() -> None:
    assert rule_path(f"{SITE}/requests/api.py", None, ("bundle",)) == "requests/api.py"


# -- matching ---------------------------------------------------------------------------------

@pytest.mark.parametrize("entry, path, function, text, expected", [
    (LineRule("shop/cart.py"), "shop/cart.py", "any", "anything", True),
    (LineRule("shop/cart.py"), "shop/other.py", "any", "anything", False),
    (LineRule("shop/cart.py", "add"), "shop/cart.py", "add", "x = 1", True),
    (LineRule("shop/cart.py", "add"), "shop/cart.py", "remove", "x = 1", False),
    (LineRule("shop/cart.py", None, "total  +=   price"), "shop/cart.py", "f",
     "    total += price * qty", True),
    # the line may be contained in the fragment (a shortened line, a longer fragment)
    (LineRule("shop/cart.py", None, "total += price * qty"), "shop/cart.py", "f",
     "total += price", True),
    (LineRule("shop/cart.py", None, "total += price"), "shop/cart.py", "f", "count += 1", False),
    # an empty or one-character line never matches a fragment
    (LineRule("shop/cart.py", None, "x = 1"), "shop/cart.py", "f", "", False),
    (LineRule("shop/cart.py", None, "x = 1"), "shop/cart.py", "f", "   x  ", False),
    # an empty fragment is a wildcard
    (LineRule("shop/cart.py", None, ""), "shop/cart.py", "f", "", True),
    (LineRule("shop/cart.py", None, "   "), "shop/cart.py", "f", "anything", True),
])
def test_matches(entry: LineRule, path: str, function: str, text: str, expected: bool) -> None:
    assert matches(entry, path, function, text) is expected


@pytest.mark.parametrize("text, expected", [
    ("raise ValueError('x')", True),
    ("    raise", True),
    ("raise(ValueError)", True),
    ("raised = True", False),
    ("raise_error()", False),
    ("x = 1  # raise", False),
    ("", False),
])
def test_is_raise_line(text: str, expected: bool) -> None:
    assert is_raise_line(text) is expected


texts = st.text(alphabet=st.sampled_from("ab =+()\t\n\u00a0x."), max_size=40)


@given(texts)
def test_fold_whitespace_is_idempotent(text: str) -> None:
    folded = fold_whitespace(text)
    assert fold_whitespace(folded) == folded
    assert "  " not in folded and folded == folded.strip()


@given(texts, texts, texts)
def test_a_fragment_matches_any_line_containing_it(before: str, fragment: str,
                                                   after: str) -> None:
    line = before + " " + fragment + " " + after
    entry = LineRule("a.py", None, fragment)
    if len(fold_whitespace(line)) > 1:
        assert matches(entry, "a.py", "f", line)


@given(st.sampled_from(["", " ", "x", " ( ", "\t\n", "\u00a0y\u00a0"]), texts)
def test_short_lines_never_match_a_fragment(line: str, fragment: str) -> None:
    entry = LineRule("a.py", None, fragment)
    assert matches(entry, "a.py", "f", line) is (fold_whitespace(fragment) == "")


# -- route ------------------------------------------------------------------------------------

def test_blames_the_innermost_line_of_the_repository() -> None:
    result = route_of(report(frame("/srv/app/app.py", "main", "run()"),
                             frame("/srv/app/shop/cart.py", "add_item", "total  += price"),
                             frame(f"{SITE}/requests/api.py", "get", "session.get(url)")))
    assert result.blamed_index == 1
    assert result.key == ErrorKey("shop/cart.py", "add_item", "total += price")
    assert result.dropped_reason is None and result.known_error is None
    assert [f.in_app for f in result.frames] == [True, True, False]
    assert result.frames[2].rule_path == "requests/api.py"
    assert any("blamed shop/cart.py:10 in add_item" in line for line in result.explanation)


def test_raise_lines_pass_the_blame_to_the_caller() -> None:
    result = route_of(report(frame("/srv/app/shop/cart.py", "add_item", "check(price)"),
                             frame("/srv/app/shop/validation.py", "check",
                                   "raise ValueError('negative')")))
    assert result.blamed_index == 0
    assert any("raise statement" in line for line in result.explanation)


def test_when_every_in_app_line_raises_the_innermost_is_blamed() -> None:
    result = route_of(report(frame("/srv/app/shop/cart.py", "add_item", "raise Outer()"),
                             frame("/srv/app/shop/validation.py", "check", "raise Inner()"),
                             frame(f"{SITE}/requests/api.py", "get", "raise X()")))
    assert result.blamed_index == 1


def test_building_blocks_pass_the_blame_and_say_which_entry() -> None:
    rules = Rules(building_blocks=(LineRule("shop/validation.py", "check",
                                            source="building_blocks.yaml:3"),))
    result = route_of(report(frame("/srv/app/shop/cart.py", "add_item", "check(price)"),
                             frame("/srv/app/shop/validation.py", "check", "assert price > 0")),
                      rules)
    assert result.blamed_index == 0
    assert any("building_blocks.yaml:3" in line for line in result.explanation)


def test_fallback_skips_building_blocks_but_not_raise_lines() -> None:
    rules = Rules(building_blocks=(LineRule("shop/validation.py"),))
    result = route_of(report(frame("/srv/app/shop/cart.py", "add_item", "raise Oops()"),
                             frame("/srv/app/shop/validation.py", "check", "raise Inner()")),
                      rules)
    assert result.blamed_index == 0


def test_only_building_blocks_is_unblamable() -> None:
    rules = Rules(building_blocks=(LineRule("shop/validation.py"),))
    result = route_of(report(frame("/srv/app/shop/validation.py", "check", "assert ok")), rules)
    assert result.blamed_index is None
    assert result.key == ErrorKey("shop/validation.py", "check", "assert ok")
    assert result.explanation[-1].startswith("unblamable: every line of the repository")


def test_nothing_in_the_repository_is_unblamable_and_keyed_by_the_innermost_frame() -> None:
    result = route_of(report(frame(f"{SITE}/requests/api.py", "get", "a()"),
                             frame(f"{SITE}/requests/adapters.py", "send", "raise  X(e)")))
    assert result.blamed_index is None and result.blamed is None
    assert result.key == ErrorKey("requests/adapters.py", "send", "raise X(e)")
    assert any("unblamable" in line for line in result.explanation)


def test_only_blame_patterns_restrict_the_blamable_files() -> None:
    settings = RoutingSettings(only_blame_patterns=("^shop/util/", "^app"))
    rep = report(frame("/srv/app/app.py", "main", "run()"),
                 frame("/srv/app/shop/util/money.py", "add", "a + b"),
                 frame("/srv/app/shop/cart.py", "add_item", "money.add(a, b)"))
    assert route_of(rep, settings=settings).blamed_index == 1
    assert route_of(rep, settings=RoutingSettings(only_blame_patterns=("^nothing",))) \
        .blamed_index is None


@pytest.mark.parametrize("reported, ignored, dropped", [
    ("builtins.ValueError", "ValueError", True),
    ("ValueError", "builtins.ValueError", True),
    ("exceptions.ValueError", "ValueError", True),
    ("builtins.ValueError", "exceptions.ValueError", True),
    ("builtins.ValueError", "builtins.ValueError", True),
    ("builtins.KeyError", "ValueError", False),
    ("requests.exceptions.ConnectionError", "requests.exceptions.ConnectionError", True),
    ("requests.exceptions.ConnectionError", "ConnectionError", False),
    ("builtins.ConnectionError", "requests.exceptions.ConnectionError", False),
])
def test_ignored_exceptions(reported: str, ignored: str, dropped: bool) -> None:
    rules = Rules(ignored_exceptions=(ignored,),
                  ignored_exception_sources={ignored: "ignored_exceptions.yaml:2"})
    result = route_of(report(frame("/srv/app/shop/cart.py"), exception_type=reported), rules)
    assert (result.dropped_reason is not None) is dropped
    if dropped:
        assert result.dropped_reason.startswith("ignored exception: ")
        assert "ignored_exceptions.yaml:2" in result.dropped_reason


def test_a_whitelisted_line_anywhere_drops_the_report() -> None:
    rules = Rules(third_party_whitelist=(LineRule("requests/adapters.py", "send",
                                                  "raise ConnectionError",
                                                  source="third_party_whitelist.yaml:1"),))
    result = route_of(report(frame("/srv/app/shop/cart.py", "pay", "requests.get(u)"),
                             frame(f"{SITE}/requests/adapters.py", "send",
                                   "raise ConnectionError(e, request=request)"),
                             frame(f"{SITE}/urllib3/pool.py", "urlopen", "raise X()")), rules)
    assert result.dropped_reason is not None
    assert result.dropped_reason.startswith("third-party whitelist: ")
    assert "third_party_whitelist.yaml:1" in result.dropped_reason


def test_whitelist_beats_known_error() -> None:
    known = KnownError("shop/cart.py", "pay", min_alert_threshold=1, source="known_errors.yaml:1")
    rules = Rules(known_errors=(known,),
                  third_party_whitelist=(LineRule("requests/adapters.py",
                                                  source="third_party_whitelist.yaml:1"),))
    result = route_of(report(frame("/srv/app/shop/cart.py", "pay", "requests.get(u)"),
                             frame(f"{SITE}/requests/adapters.py", "send", "raise X()")), rules)
    assert result.dropped_reason is not None
    assert result.known_error is None


def test_known_error_matches_the_blamed_frame_after_building_blocks() -> None:
    block = LineRule("shop/validation.py", source="building_blocks.yaml:1")
    known_inner = KnownError("shop/validation.py", min_alert_threshold=1,
                             source="known_errors.yaml:1")
    known_outer = KnownError("shop/cart.py", "add_item", "check(price)",
                             min_alert_threshold=5, source="known_errors.yaml:4")
    rules = Rules(building_blocks=(block,), known_errors=(known_inner, known_outer))
    result = route_of(report(frame("/srv/app/shop/cart.py", "add_item", "check(price)"),
                             frame("/srv/app/shop/validation.py", "check", "assert ok")), rules)
    assert result.blamed_index == 0
    assert result.known_error == known_outer
    assert result.explanation[-1] == "known error (known_errors.yaml:4)"


def test_first_matching_known_error_wins() -> None:
    first = KnownError("shop/cart.py", source="known_errors.yaml:1")
    second = KnownError("shop/cart.py", "add_item", source="known_errors.yaml:5")
    result = route_of(report(frame("/srv/app/shop/cart.py", "add_item")),
                      Rules(known_errors=(first, second)))
    assert result.known_error == first


def test_an_unblamable_error_matches_known_errors_by_its_innermost_frame() -> None:
    known = KnownError("requests/adapters.py", "send", source="known_errors.yaml:1")
    result = route_of(report(frame(f"{SITE}/requests/adapters.py", "send", "raise X()")),
                      Rules(known_errors=(known,)))
    assert result.blamed_index is None and result.known_error == known


def test_the_key_folds_whitespace_so_reindented_lines_stay_one_error() -> None:
    one = route_of(report(frame("/srv/app/shop/cart.py", "f", "a  =  b(c)")))
    two = route_of(report(frame("C:\\app\\shop\\cart.py", "f", "\ta = b(c)  ", line=99)))
    assert one.key == two.key


# -- chained exceptions -----------------------------------------------------------------------

def chained(exception_type: str, *frames: Frame) -> ChainedException:
    return ChainedException(exception_type, "boom", frames)


def chain_route(rep: Report, *chain: ChainedException, rules: Rules = Rules()):
    return route(replace(rep, chained=chain), REPO, rules, RoutingSettings())


MAIN = frame("/srv/app/app.py", "main", "load_config(path)", line=3)


def test_raise_from_is_blamed_on_the_line_where_the_cause_began() -> None:
    # def load_config(path): try: return parse(text) except ValueError as err:
    #     raise ConfigError(path) from err
    outer = report(MAIN, frame("/srv/app/shop/cart.py", "load_config",
                               "raise ConfigError(path) from err", line=20),
                   exception_type="shop.ConfigError")
    cause = chained("builtins.ValueError",
                    frame("/srv/app/shop/cart.py", "load_config", "return parse(text)", line=18),
                    frame("/srv/app/shop/validation.py", "parse", "return int(text)", line=5))
    result = chain_route(outer, cause)
    assert (result.blamed_exception, result.blamed_index) == (1, 1)
    assert result.blamed.repo_path == "shop/validation.py"
    assert result.key == ErrorKey("shop/validation.py", "parse", "return int(text)")
    assert [exception.exception_type for exception in result.chain] == ["builtins.ValueError"]
    assert result.explanation == (
        "shop/cart.py:20 in load_config raises shop.ConfigError while handling the chained "
        "ValueError: the blame follows the chain",
        "blamed shop/validation.py:5 in parse: innermost line of the repository in the "
        "chained ValueError, where the error began")
    # Without the chain, the re-raise passes the blame to its caller: the wrong line.
    assert route_of(outer).blamed.frame == MAIN


def test_a_handler_that_fails_in_its_own_right_is_blamed_not_its_context() -> None:
    # except KeyError: return compute(key)  -> compute divides by zero
    outer = report(MAIN, frame("/srv/app/shop/cart.py", "lookup", "return compute(key)"),
                   frame("/srv/app/shop/payments.py", "compute", "return total / count"),
                   exception_type="builtins.ZeroDivisionError")
    context = chained("builtins.KeyError",
                      frame("/srv/app/shop/cart.py", "lookup", "return cache[key]"))
    result = chain_route(outer, context)
    assert (result.blamed_exception, result.blamed_index) == (0, 2)
    assert result.key == ErrorKey("shop/payments.py", "compute", "return total / count")
    assert "it is not a raise, so it failed in its own right while handling the chained " \
           "KeyError" in result.explanation[-1]


def test_the_chain_is_followed_through_every_re_raise() -> None:
    outer = report(MAIN, frame("/srv/app/app.py", "run", "raise AppError() from err"),
                   exception_type="app.AppError")
    middle = chained("shop.ConfigError",
                     frame("/srv/app/app.py", "run", "load()"),
                     frame("/srv/app/shop/cart.py", "load", "raise ConfigError()"))
    inner = chained("builtins.KeyError",
                    frame("/srv/app/shop/cart.py", "load", "value = settings['price']"))
    result = chain_route(outer, middle, inner)
    assert (result.blamed_exception, result.blamed_index) == (2, 0)
    assert result.blamed.frame.text == "value = settings['price']"


def test_a_deliberate_raise_in_the_cause_passes_the_blame_to_its_caller_there() -> None:
    outer = report(MAIN, frame("/srv/app/shop/cart.py", "add", "raise CartError() from err"))
    cause = chained("builtins.ValueError",
                    frame("/srv/app/shop/cart.py", "add", "check(price)", line=30),
                    frame("/srv/app/shop/validation.py", "check", "raise ValueError(price)"))
    result = chain_route(outer, cause)
    assert (result.blamed_exception, result.blamed_index) == (1, 0)
    assert result.blamed.frame.line_number == 30
    assert "skipped shop/validation.py:10 in check: a raise statement, the caller is to blame" \
        in result.explanation


def test_a_chain_without_a_line_of_the_repository_leaves_the_reported_exception_to_blame():
    outer = report(MAIN, frame("/srv/app/shop/cart.py", "pay", "raise PaymentError() from e"))
    cause = chained("requests.ConnectionError",
                    frame(f"{SITE}/requests/adapters.py", "send", "raise ConnectionError(e)"))
    empty = chained("builtins.OSError")
    result = chain_route(outer, cause, empty)
    assert (result.blamed_exception, result.blamed) == (0, result.frames[0])
    assert "the chained requests.ConnectionError has no line of the repository" in \
        result.explanation


def test_building_blocks_and_the_whitelist_apply_to_the_chain_too() -> None:
    outer = report(MAIN, frame("/srv/app/shop/cart.py", "pay", "raise PaymentError() from e"))
    cause = chained("builtins.ValueError",
                    frame("/srv/app/shop/cart.py", "pay", "amount = money(text)"),
                    frame("/srv/app/shop/util/money.py", "money", "return Decimal(text)"))
    block = Rules(building_blocks=(LineRule("shop/util/money.py", source="b.yaml:1"),))
    result = chain_route(outer, cause, rules=block)
    assert result.blamed.frame.text == "amount = money(text)"
    assert "skipped shop/util/money.py:10 in money: building block (b.yaml:1)" in \
        result.explanation
    whitelist = Rules(third_party_whitelist=(LineRule("shop/util/money.py", source="w.yaml:2"),))
    dropped = chain_route(outer, cause, rules=whitelist)
    assert dropped.dropped_reason == "third-party whitelist: shop/util/money.py:10 in money " \
                                     "(w.yaml:2)"


def test_a_known_error_is_matched_by_the_line_the_chain_leads_to() -> None:
    outer = report(MAIN, frame("/srv/app/shop/cart.py", "load", "raise Wrapped() from e"))
    cause = chained("builtins.KeyError", frame("/srv/app/shop/payments.py", "fee", "x = t[k]"))
    known = KnownError("shop/payments.py", "fee", source="known_errors.yaml:7")
    result = chain_route(outer, cause, rules=Rules(known_errors=(known,)))
    assert result.known_error == known and result.blamed.repo_path == "shop/payments.py"


def test_the_chain_is_part_of_the_routing_inputs_so_a_cached_route_never_ignores_it() -> None:
    outer = report(MAIN, frame("/srv/app/shop/cart.py", "load", "raise Wrapped() from e"))
    cause = chained("builtins.KeyError", frame("/srv/app/shop/payments.py", "fee", "x = t[k]"))
    other = chained("builtins.KeyError", frame("/srv/app/shop/validation.py", "ok", "y = u[k]"))
    with_cause, with_other = replace(outer, chained=(cause,)), replace(outer, chained=(other,))
    assert len({route_inputs(outer), route_inputs(with_cause), route_inputs(with_other)}) == 3
    assert route_inputs(with_cause) == route_inputs(replace(
        with_cause, chained=(replace(cause, exception_message="another message"),)))
    assert chain_route(outer, cause).key != chain_route(outer, other).key


# -- JavaScript frames and senders' in-app flags ---------------------------------------------

def test_a_script_url_maps_to_the_repository_by_its_path() -> None:
    result = route_of(report(frame("https://shop.example:8443/static/shop/cart.py", "f", ""),
                             frame("https://cdn.example/lib/vendor.js", "g", "")))
    assert result.frames[0].repo_path == "shop/cart.py" and result.blamed_index == 0
    assert result.frames[1].repo_path is None
    assert result.frames[1].rule_path == "/lib/vendor.js"


def test_a_frame_its_sender_says_is_not_in_app_is_never_blamed() -> None:
    outer = frame("/srv/app/app.py", "main", "run()")
    vendored = Frame("/srv/app/shop/cart.py", 10, "add_item", "total += price", in_app=False)
    result = route_of(report(outer, vendored))
    assert result.blamed_index == 0 and result.frames[1].repo_path == "shop/cart.py"
    assert not result.frames[1].in_app
    unset = route_of(report(outer, Frame("/srv/app/shop/cart.py", 10, "add_item", "x()")))
    assert unset.blamed_index == 1
