"""Capture: frames, bounded reprs, self attributes, chained exceptions."""

from __future__ import annotations

import sys
import time
import traceback

from flawless.client.capture import (BoundedRepr, CaptureOptions, capture, grouping_key,
                                     is_notebook_cell)
from flawless.client.scrub import MASK, Scrubber
from flawless.report import parse_report, report_to_dict

OPTIONS = CaptureOptions()
IS_SENSITIVE = Scrubber().is_sensitive_name


def caught(function, *args):
    try:
        function(*args)
    except Exception:
        return sys.exc_info()
    raise AssertionError("did not raise")


def test_bounded_repr_of_ten_million_items_is_fast_and_short():
    huge = list(range(10_000_000))
    nested = {"rows": huge, "index": set(range(1_000_000)), "blob": b"x" * 50_000_000}
    values = [huge, nested, tuple(huge), "y" * 10**8]
    bounded = BoundedRepr(OPTIONS, IS_SENSITIVE)
    started = time.perf_counter()
    texts = [bounded(value) for value in values]
    elapsed = time.perf_counter() - started
    assert elapsed < 0.01
    assert all(len(text) <= OPTIONS.repr_chars for text in texts)
    assert texts[0] == "[0, 1, 2, 3, 4, 5, 6, 7, ... 9999992 more]"


def test_bounded_repr_limits_depth_and_survives_broken_reprs():
    class Broken:
        def __repr__(self):
            raise RuntimeError("no")

    bounded = BoundedRepr(OPTIONS, IS_SENSITIVE)
    assert bounded([[[[["deep"]]]]]) == "[[[[...]]]]"
    assert bounded(Broken()) == "<repr failed: RuntimeError>"
    assert bounded(10**5000) == "<int of 16610 bits>"


def test_bounded_repr_masks_values_of_sensitive_keys_at_any_depth_and_remembers_them():
    bounded = BoundedRepr(OPTIONS, IS_SENSITIVE)
    text = bounded({"user": "bob", "nested": {"Session_Id": "s-9f8e7d"}})
    assert text == f"{{'user': 'bob', 'nested': {{'Session_Id': {MASK}}}}}"
    assert bounded.secrets == {"s-9f8e7d"}


class Cart:
    def __init__(self):
        self.items = [("pen", "two")]
        self.owner_password = "pa55word!"
        self.discount = 0

    def total(self, currency="EUR"):
        subtotal = 0
        for name, price in self.items:
            subtotal += price
        return subtotal


def test_frames_carry_file_line_function_source_and_locals_with_self_attributes():
    captured = capture(caught(Cart().total), OPTIONS, IS_SENSITIVE)
    report = captured.report
    assert report.exception_type == "builtins.TypeError"
    assert "unsupported operand" in report.exception_message
    inner = report.traceback[-1]
    assert inner.filename == __file__
    assert inner.function_name == "total"
    assert inner.text == "subtotal += price"
    assert inner.line_number == Cart.total.__code__.co_firstlineno + 3
    assert inner.frame_locals["currency"] == "'EUR'"
    assert inner.frame_locals["price"] == "'two'"
    assert inner.frame_locals["self.items"] == "[('pen', 'two')]"
    assert inner.frame_locals["self.owner_password"] == MASK
    assert captured.secrets == {"pa55word!"}
    assert report.timestamp is not None and abs(report.timestamp - time.time()) < 5
    parse_report(report_to_dict(report))


def test_only_the_innermost_frames_carry_locals():
    def recurse(depth):
        if depth == 0:
            raise ValueError("bottom")
        recurse(depth - 1)

    report = capture(caught(recurse, 10), CaptureOptions(locals_frames=3), IS_SENSITIVE).report
    with_locals = [frame for frame in report.traceback if frame.frame_locals is not None]
    assert len(with_locals) == 3 and report.traceback[-3:] == tuple(with_locals)


def test_chained_exceptions_are_sent_nearest_first_with_their_frames():
    def lookup():
        return {}["sku"]

    def load():
        try:
            lookup()
        except KeyError as error:
            raise LookupError("no product") from error

    def handle():
        try:
            load()
        except LookupError:
            raise RuntimeError("page failed")

    report = capture(caught(handle), OPTIONS, IS_SENSITIVE).report
    assert report.exception_type == "builtins.RuntimeError"
    assert [(item.exception_type, item.exception_message) for item in report.chained] == [
        ("builtins.LookupError", "no product"), ("builtins.KeyError", "'sku'")]
    innermost = report.chained[-1].traceback
    assert [frame.function_name for frame in innermost] == ["load", "lookup"]
    assert innermost[-1].filename == __file__ and innermost[-1].text == 'return {}["sku"]'
    assert all(frame.frame_locals is None for item in report.chained for frame in item.traceback)
    assert report_to_dict(parse_report(report_to_dict(report)))["chained"] == \
        report_to_dict(report)["chained"]


def test_a_chain_that_loops_or_suppresses_its_context_ends_there():
    def suppressed():
        try:
            {}["sku"]
        except KeyError:
            raise ValueError("clean") from None

    assert capture(caught(suppressed), OPTIONS, IS_SENSITIVE).report.chained == ()
    first, second = ValueError("a"), KeyError("b")
    first.__cause__, second.__cause__ = second, first
    report = capture((ValueError, first, None), OPTIONS, IS_SENSITIVE).report
    assert [item.exception_type for item in report.chained] == ["builtins.KeyError"]


def test_preceding_stack_from_extract_stack_or_a_live_frame_goes_first():
    def outer():
        return inner()

    def inner():
        try:
            raise ValueError("x")
        except ValueError:
            return (capture(sys.exc_info(), OPTIONS, IS_SENSITIVE,
                            preceding_stack=traceback.extract_stack()[:-1]).report,
                    capture(sys.exc_info(), OPTIONS, IS_SENSITIVE,
                            preceding_stack=sys._getframe(1)).report)

    for report in outer():
        names = [frame.function_name for frame in report.traceback]
        assert names[-3:] == ["outer", "inner", "inner"][-3:] or names[-2:] == ["outer", "inner"]
        assert "outer" in names and names[-1] == "inner"
        assert report.traceback[-1].frame_locals is not None


def test_notebook_cells_lose_their_text_and_locals_unless_opted_in():
    namespace = {}
    code = compile("def cell():\n    canary = 'CELL-SECRET'\n    raise ValueError('x')\n",
                   "<ipython-input-7-0123456789ab>", "exec")
    exec(code, namespace)
    hidden = capture(caught(namespace["cell"]), OPTIONS, IS_SENSITIVE).report.traceback[-1]
    assert hidden.text == "" and hidden.frame_locals is None
    assert is_notebook_cell("/tmp/ipykernel_123/456.py")
    assert not is_notebook_cell("/srv/shop/cart.py")


def test_grouping_key_tells_repeats_from_other_errors():
    def fail(kind):
        raise kind("x")

    first, again, other = (grouping_key(*caught(fail, ValueError)[::2]),
                           grouping_key(*caught(fail, ValueError)[::2]),
                           grouping_key(*caught(fail, KeyError)[::2]))
    assert first == again and first != other
