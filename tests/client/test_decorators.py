"""wrap_function and wrap_class, reporting to a real JSON-RPC sink."""

from __future__ import annotations

import asyncio

import pytest

import flawless.client
from flawless.client.decorators import wrap_class, wrap_function


@pytest.fixture
def sink(report_sink, use_client):
    use_client([report_sink.hostport], key=report_sink.key)
    return report_sink


def reports_after_flush(sink, expected):
    assert flawless.client.flush(5)
    reports = sink.wait_for_reports(expected, timeout=2)
    assert len(reports) == expected
    return reports


def test_bare_wrap_function_reports_and_reraises(sink):
    @wrap_function
    def divide(a, b):
        return a / b

    assert divide(6, 3) == 2
    with pytest.raises(ZeroDivisionError):
        divide(1, 0)
    [report] = reports_after_flush(sink, 1)
    assert report["exception_type"] == "builtins.ZeroDivisionError"
    assert report["traceback"][-1]["function_name"] == "divide"
    assert report["traceback"][-1]["frame_locals"] == {"a": "1", "b": "0"}
    caller = report["traceback"][-2]["function_name"]
    assert caller == "test_bare_wrap_function_reports_and_reraises"
    assert not any("flawless/client" in frame["filename"] for frame in report["traceback"])


def test_options_threshold_and_no_reraise(sink):
    @wrap_function(error_threshold=7, reraise_exception=False)
    def fail():
        raise ValueError("quiet")

    assert fail() is None
    [report] = reports_after_flush(sink, 1)
    assert report["error_threshold"] == 7 and report["exception_message"] == "quiet"


def test_nested_wrapped_calls_report_once(sink):
    @wrap_function
    def inner():
        raise KeyError("once")

    @wrap_function
    def middle():
        return inner()

    @wrap_function(reraise_exception=False)
    def outer():
        return middle()

    outer()
    [report] = reports_after_flush(sink, 1)
    names = [frame["function_name"] for frame in report["traceback"]]
    assert names[-3:] == ["outer", "middle", "inner"]


def test_wrap_class_keeps_methods_classmethods_and_staticmethods_working(sink):
    @wrap_class
    class Shop:
        rate = 2

        def __init__(self, name):
            self.name = name

        def price(self, amount):
            return amount * self.rate

        @classmethod
        def create(cls, name):
            return cls(name)

        @staticmethod
        def parse(text):
            return int(text)

        def __repr__(self):
            return f"Shop({self.name!r})"

    shop = Shop.create("corner")
    assert isinstance(shop, Shop) and shop.price(3) == 6 and Shop.parse("12") == 12
    assert shop.parse("4") == 4 and repr(shop) == "Shop('corner')"
    assert Shop.price.__name__ == "price"
    with pytest.raises(ValueError):
        Shop.parse("twelve")
    with pytest.raises(TypeError):
        Shop.create("a").price(None)
    reports = reports_after_flush(sink, 2)
    assert {r["traceback"][-1]["function_name"] for r in reports} == {"parse", "price"}


def test_wrap_class_with_options(sink):
    @wrap_class(reraise_exception=False, error_threshold=2)
    class Quiet:
        def explode(self):
            raise RuntimeError("boom")

    assert Quiet().explode() is None
    [report] = reports_after_flush(sink, 1)
    assert report["error_threshold"] == 2


def test_keyboard_interrupt_is_not_an_error(sink):
    @wrap_function(reraise_exception=False)
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert flawless.client.flush(2)
    assert sink.wait_for_reports(1, timeout=0.3) == []


def test_coroutines_are_wrapped_too(sink):
    @wrap_function
    async def fetch():
        raise ConnectionError("upstream")

    with pytest.raises(ConnectionError):
        asyncio.run(fetch())
    [report] = reports_after_flush(sink, 1)
    assert report["exception_type"] == "builtins.ConnectionError"
