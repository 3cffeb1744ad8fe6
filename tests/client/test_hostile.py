"""The client cannot hurt the program it watches: hostile objects in its locals, a client
that fails outright, and every entry point; the program's own exception always propagates
unchanged, and no exception of the client's ever reaches it."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading

import pytest

import flawless.client
from flawless.client import core, hooks
from flawless.client.decorators import wrap_class, wrap_function
from flawless.client.hooks import FlawlessHandler
from flawless.client.middleware import FlawlessMiddleware


@pytest.fixture
def sink(rpc_sink, use_client):
    use_client([rpc_sink.hostport])
    return rpc_sink


def one_report(sink):
    assert flawless.client.flush(5)
    reports = sink.wait_for_reports(1)
    assert len(reports) == 1, reports
    return reports[0]


class RaisingDict:
    """The issue's case: ``self.__dict__`` raises."""

    @property
    def __dict__(self):
        raise RuntimeError("no __dict__ for you")

    @wrap_function
    def divide(self, amount):
        return amount / 0


def test_a_self_whose_dict_raises_still_raises_the_users_error_and_is_reported(sink):
    with pytest.raises(ZeroDivisionError) as raised:
        RaisingDict().divide(3)
    assert raised.value.__context__ is None  # not raised while handling one of ours
    report = one_report(sink)
    assert report["exception_type"] == "builtins.ZeroDivisionError"
    assert report["traceback"][-1]["frame_locals"]["amount"] == "3"


class Everything:
    """Every attribute lookup raises, ``__dict__`` and ``__class__`` included."""

    def __getattribute__(self, name):
        raise RuntimeError(f"no {name}")

    def __getattr__(self, name):
        raise RuntimeError(f"no {name}")


class BadRepr:
    def __repr__(self):
        raise ValueError("no repr")


class BadEquality:
    def __eq__(self, other):
        raise RuntimeError("no eq")

    def __hash__(self):
        raise RuntimeError("no hash")

    def __len__(self):
        raise RuntimeError("no len")


class LyingClass:
    """Claims to be a dict; is not one."""

    @property
    def __class__(self):
        return dict


class RaisingClass:
    @property
    def __class__(self):
        raise RuntimeError("no class")


class HostileKey(str):
    """Hashes once (to go into a dict), then never again."""

    hashed = False

    def __hash__(self):
        if HostileKey.hashed:
            raise RuntimeError("no hash")
        HostileKey.hashed = True
        return str.__hash__(self)

    def __eq__(self, other):
        raise RuntimeError("no eq")


class HostileMeta(type):
    def __hash__(cls):
        raise RuntimeError("no hash")

    def __eq__(cls, other):
        raise RuntimeError("no eq")

    def __getattribute__(cls, name):
        if name in ("__qualname__", "__module__"):
            raise RuntimeError(f"no {name}")
        return super().__getattribute__(name)


class HostileError(ZeroDivisionError, metaclass=HostileMeta):
    def __str__(self):
        raise RuntimeError("no str")

    def __getattribute__(self, name):
        if name in ("__cause__", "__context__", "__flawless_reported__"):
            raise RuntimeError(f"no {name}")
        return super().__getattribute__(name)


class Slotted:
    __slots__ = ("a",)

    def __getattr__(self, name):
        raise RuntimeError(f"no {name}")


def recursive_list():
    items = [1]
    items.append(items)
    return items


def recursive_dict():
    mapping = {"a": 1}
    mapping["self"] = mapping
    return mapping


HOSTILE = {
    "every_attribute": Everything,
    "bad_repr": BadRepr,
    "bad_equality": BadEquality,
    "lying_class": LyingClass,
    "raising_class": RaisingClass,
    "hostile_key": lambda: {HostileKey("k"): 1},
    "recursive_list": recursive_list,
    "recursive_dict": recursive_dict,
    "huge_list": lambda: list(range(5_000_000)),
    "huge_text": lambda: "x" * 50_000_000,
    "huge_int": lambda: 10 ** 20000,
    "slotted": Slotted,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_locals_cost_their_value_never_the_report_nor_the_error(sink, name):
    hostile = HOSTILE[name]()

    class Holder:
        def __init__(self):
            self.value = hostile

        @wrap_function
        def fail(self, value):
            return 1 / 0

    error = None
    try:
        Holder().fail(hostile)
    except ZeroDivisionError as raised:
        error = raised
    assert error is not None and error.__context__ is None
    frame = one_report(sink)["traceback"][-1]
    assert frame["function_name"] == "fail"
    assert len(frame["frame_locals"]["value"]) <= 256


def test_an_exception_whose_type_str_and_attributes_raise_is_reported_as_what_it_is(sink):
    @wrap_function
    def fail():
        raise HostileError()

    with pytest.raises(HostileError):
        fail()
    report = one_report(sink)
    assert report["exception_type"] == "builtins.Exception"
    assert report["exception_message"] == "<str failed: RuntimeError>"
    assert report["traceback"][-1]["function_name"] == "fail"


# -- a client that fails outright: every entry point swallows it -------------------------

@pytest.fixture
def broken(monkeypatch, use_client, rpc_sink):
    """A client whose capture and configuration both raise."""
    use_client([rpc_sink.hostport])

    def bug(*args, **kwargs):
        raise RuntimeError("a bug of flawless")

    monkeypatch.setattr(core, "capture", bug)
    monkeypatch.setattr(core, "capture_message", bug)
    monkeypatch.setattr(flawless.client.scope, "set_tag", bug)
    monkeypatch.setattr(flawless.client.scope, "set_context", bug)
    monkeypatch.setattr(flawless.client.scope, "set_user", bug)
    return bug


class UserError(Exception):
    pass


def test_decorators_raise_the_users_error(broken):
    error = UserError("mine")

    @wrap_function
    def sync():
        raise error

    @wrap_function
    async def coroutine():
        raise error

    @wrap_class
    class Service:
        def run(self):
            raise error

    for call in (sync, lambda: asyncio.run(coroutine()), Service().run):
        with pytest.raises(UserError) as raised:
            call()
        assert raised.value is error and error.__context__ is None


def test_decorators_without_reraise_return_none(broken):
    assert wrap_function(reraise_exception=False)(lambda: 1 / 0)() is None


def test_wsgi_middleware_raises_the_users_error(broken):
    error = UserError("wsgi")

    def app(environ, start_response):
        raise error

    with pytest.raises(UserError) as raised:
        FlawlessMiddleware(app)({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, None)
    assert raised.value is error


def test_hooks_still_call_the_previous_hook(broken, monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *info: seen.append(info[1]))
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    hooks.install_excepthook()
    hooks.install_threading_excepthook()
    try:
        error = UserError("hook")
        sys.excepthook(UserError, error, None)
        thread = threading.Thread(target=lambda: (_ for _ in ()).throw(error))
        thread.start()
        thread.join()
    finally:
        hooks.uninstall_excepthook()
        hooks.uninstall_threading_excepthook()
    assert seen == [error, error]


def test_logging_handler_swallows_quietly(broken, capsys):
    logger = logging.getLogger("hostile.test")
    logger.propagate = False  # only our handler sees the record
    handler = FlawlessHandler()
    logger.addHandler(handler)
    try:
        try:
            raise UserError("logged")
        except UserError:
            logger.exception("failed %s", BadRepr())  # a message that cannot be formatted
    finally:
        logger.removeHandler(handler)
    assert "Logging error" not in capsys.readouterr().err


def test_the_public_functions_never_raise(broken, monkeypatch):
    try:
        raise UserError("recorded")
    except UserError:
        assert flawless.client.record_error(None, sys.exc_info()) is None
    flawless.client.record_message("hello", level="warning")
    flawless.client.set_tag("a", "b")
    flawless.client.set_context("order", {"id": 7})
    flawless.client.set_user(id=42)
    monkeypatch.setattr(flawless.client, "get_client", broken)
    flawless.client.record_message("hello")
    assert flawless.client.flush(0.1) is None


def test_a_misconfigured_environment_never_raises_into_the_program(monkeypatch):
    flawless.client.uninstall()
    monkeypatch.setenv("FLAWLESS_HOSTPORTS", "not a host port")
    error = UserError("still mine")

    @wrap_function
    def fail():
        raise error

    with pytest.raises(UserError) as raised:
        fail()
    assert raised.value is error
    flawless.client.record_message("nothing to send to")
