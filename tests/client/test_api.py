"""The API error-tracker users expect: record_message, set_tag, set_context, set_user (per
thread, task and request), tunable masking, library locals left out, emails masked."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

import flawless.client
from flawless.client.core import default_scrubber
from flawless.client.decorators import wrap_function


@pytest.fixture
def sink(rpc_sink, use_client):
    use_client([rpc_sink.hostport])
    return rpc_sink


@pytest.fixture(autouse=True)
def default_patterns():
    """Tests change the shared scrubber; put it back."""
    patterns, kinds = default_scrubber._patterns, default_scrubber.kinds
    yield
    default_scrubber._compile(patterns)
    default_scrubber.kinds = kinds


def reports(sink, count):
    assert flawless.client.flush(5)
    received = sink.wait_for_reports(count)
    assert len(received) == count, received
    return received


def fail(note=None):
    raise ValueError("failed")


def fail_with(message):
    raise ValueError(message)


def record(function=fail, *args):
    try:
        function(*args)
    except Exception:
        flawless.client.record_error(None, sys.exc_info())


def test_tags_context_and_user_go_with_every_report_of_the_thread(sink):
    flawless.client.set_tag("component", "billing")
    flawless.client.set_tag("dropped", "x")
    flawless.client.set_tag("dropped", None)
    flawless.client.set_context("order", {"id": 7, "total": 12.5, "items": ["a", "b"],
                                          "api_token": "ctx-canary-token"})
    flawless.client.set_user(id=42, email="ann@example.com", ip_address="203.0.113.7")
    record()
    [report] = reports(sink, 1)
    assert report["tags"] == {"component": "billing"}
    assert report["context"] == {"order.id": 7, "order.total": 12.5,
                                 "order.items": "['a', 'b']", "order.api_token": "<scrubbed>"}
    assert report["user"] == {"id": "42"}
    text = str(sink.bodies)
    assert "ann@example.com" not in text and "203.0.113.7" not in text
    assert "ctx-canary-token" not in text


def test_each_thread_and_each_task_has_its_own_scope(sink):
    flawless.client.set_tag("where", "main")

    def in_thread():
        flawless.client.set_tag("where", "thread")
        record(fail, "thread")

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()

    async def task(name):
        flawless.client.set_user(id=name)
        await asyncio.sleep(0)
        try:
            raise KeyError(name)
        except KeyError:
            flawless.client.record_error(None, sys.exc_info())

    async def both():
        await asyncio.gather(task("u1"), task("u2"))

    asyncio.run(both())
    record()
    received = reports(sink, 4)
    assert sorted(str(r.get("tags")) for r in received if r["exception_type"] ==
                  "builtins.ValueError") == ["{'where': 'main'}", "{'where': 'thread'}"]
    assert sorted(r["user"]["id"] for r in received if r["exception_type"] ==
                  "builtins.KeyError") == ["u1", "u2"]


def test_record_message_sends_the_callers_stack_and_groups_by_call_site(sink):
    def check_cache(misses):
        for attempt in range(6):
            flawless.client.record_message(f"cache miss storm {attempt}", level="warning")

    check_cache(misses=91)
    # One error whatever the text: occurrences 1 to 4 sent one by one (the first three,
    # then a power of two), 5 and 6 held back and sent as one at the flush.
    received = reports(sink, 5)
    assert [r.get("error_count", 1) for r in received] == [1, 1, 1, 1, 2]
    first = received[0]
    assert first["exception_type"] == "message" and first["level"] == "warning"
    assert first["exception_message"] == "cache miss storm 0"
    frame = first["traceback"][-1]
    assert frame["function_name"] == "check_cache"
    assert frame["text"].startswith("flawless.client.record_message(")
    assert frame["frame_locals"]["misses"] == "91"
    assert first["traceback"][-2]["function_name"] == \
        "test_record_message_sends_the_callers_stack_and_groups_by_call_site"
    flawless.client.record_message("an unknown level is an error", level="fatal")
    assert reports(sink, 6)[-1].get("level") is None  # "error", the default, is not sent


def test_the_mask_text_and_the_default_patterns_are_the_users_to_choose(rpc_sink, use_client):
    use_client([rpc_sink.hostport], mask="[redacted]")
    flawless.client.remove_scrubbers("session", "emails")
    with pytest.raises(ValueError, match="'sesion'"):
        flawless.client.remove_scrubbers("sesion")

    def login(session_id, password, contact):
        raise PermissionError(f"login failed for {contact}")

    record(login, "s-kept-123", "pw-masked-456", "ann@example.com")
    [report] = reports(rpc_sink, 1)
    frame_locals = report["traceback"][-1]["frame_locals"]
    assert frame_locals == {"session_id": "'s-kept-123'", "password": "[redacted]",
                            "contact": "'ann@example.com'"}
    assert report["exception_message"] == "login failed for ann@example.com"


def test_before_send_sees_each_report_last_and_may_change_or_drop_it(rpc_sink, use_client):
    def before_send(report):
        if "drop me" in report["exception_message"]:
            return None
        if "break me" in report["exception_message"]:
            raise RuntimeError("a bug in the callback")
        report["tags"] = {"checked": "yes"}
        report["traceback"][-1].pop("frame_locals", None)
        return report

    use_client([rpc_sink.hostport], before_send=before_send)
    for message in ("keep me", "drop me", "break me"):
        record(fail_with, message)
    [report] = reports(rpc_sink, 1)
    assert report["exception_message"] == "keep me" and report["tags"] == {"checked": "yes"}
    assert "frame_locals" not in report["traceback"][-1]
    assert flawless.client.stats()["dropped_before_send"] == 2


LIBRARY = '''
def library_call(callback, payload):
    cache_of_library = "library-canary-1"
    return callback(payload)
'''


def load_library():
    namespace = {}
    exec(compile(LIBRARY, "/opt/venv/lib/python3.11/site-packages/somelib/core.py", "exec"),
         namespace)
    return namespace["library_call"]


@pytest.mark.parametrize("library_locals", [False, True])
def test_library_frames_carry_no_locals_unless_asked(rpc_sink, use_client, library_locals):
    use_client([rpc_sink.hostport], library_locals=library_locals)
    library_call = load_library()

    def handler(payload):
        raise KeyError("missing")

    def view(order_id):
        return library_call(handler, {"order": order_id})

    record(view, 17)
    [report] = reports(rpc_sink, 1)
    frames = {frame["function_name"]: frame for frame in report["traceback"]}
    assert frames["view"]["frame_locals"]["order_id"] == "17"
    assert "payload" in frames["handler"]["frame_locals"]
    library = frames["library_call"].get("frame_locals")
    if library_locals:
        assert library["cache_of_library"] == "'library-canary-1'"
    else:
        assert library is None and "library-canary-1" not in str(rpc_sink.bodies)


def test_email_addresses_are_masked_in_messages_locals_tags_and_urls(sink):
    flawless.client.set_tag("customer", "bob@example.org")
    flawless.client.set_user(id="carol@example.net")

    @wrap_function(reraise_exception=False)
    def notify(address, url):
        raise ValueError(f"cannot mail {address}")

    people = {"ann": "ann.lee+shop@mail.example.com"}  # from a database, not the code
    notify(people["ann"], "/unsubscribe/" + "%40".join(["dan", "example.com"]) + "/now")
    [report] = reports(sink, 1)
    text = str(sink.bodies)
    for address in ("ann.lee+shop@mail.example.com", "bob@example.org", "carol@example.net",
                    "dan%40example.com"):
        assert address not in text
    assert report["traceback"][-1]["frame_locals"]["url"] == "'/unsubscribe/<scrubbed>/now'"
    assert report["exception_message"] == "cannot mail <scrubbed>"
