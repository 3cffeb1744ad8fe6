"""Canaries planted everywhere a secret can hide; none of them may reach the server."""

from __future__ import annotations

import sys

import pytest

import flawless.client

IPython = pytest.importorskip("IPython")
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402

SECRET_NAMES = ["password", "db_passwd", "pwd", "client_secret", "access_token", "api_key",
                "stripe_apikey", "auth_header", "aws_credentials", "private_key", "session_id",
                "cookie_jar", "csrf_value", "card_holder", "cvv", "ssn", "iban",
                "refresh_TOKEN", "userPassword", "Authorization"]
CANARIES = {name: f"canary-{index:02d}-{name[::-1]}" for index, name in enumerate(SECRET_NAMES)}
CARD = "4111 1111 1111 1111"
HOME_USER = "zeldacanary"

# Compiled as if it lived in a home directory, so its frames carry the user's name.
CHECKOUT = '''
def checkout(secrets, card_number, receipt_path):
    {assignments}
    config = {{"db": {{"host": "db1", "Password": "canary-nested-1"}},
              "keys": [{{"api_token": "canary-nested-2"}}],
              "url": "postgres://shop:canary-url-pw@db1/shop"}}
    note = "retry with Bearer canary-bearer-tok"
    raise PermissionError("login failed: password=canary-msg-1, key " + api_key
                          + ", card " + card_number + ", file " + receipt_path)
'''


def load_checkout():
    assignments = "\n    ".join(f"{name} = secrets[{name!r}]" for name in SECRET_NAMES)
    namespace: dict = {}
    exec(compile(CHECKOUT.format(assignments=assignments),
                 f"/home/{HOME_USER}/proj/shop/checkout.py", "exec"), namespace)
    return namespace["checkout"]


def test_no_canary_reaches_the_server(report_sink, use_client):
    use_client([report_sink.hostport], key=report_sink.key)
    checkout = load_checkout()
    try:
        checkout(dict(CANARIES), CARD, f"/Users/{HOME_USER}/receipts/r1.pdf")
    except PermissionError:
        flawless.client.record_error(None, sys.exc_info(),
                                     additional_info="retry token=canary-info-1 for " + CARD)

    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "flawless")
    try:
        shell.run_cell("canary_cell_text = 'canary-cell-1'\nraise ValueError('from a cell')",
                       store_history=True)
    finally:
        shell.run_line_magic("unload_ext", "flawless")
        InteractiveShell.clear_instance()

    assert flawless.client.flush(5)
    reports = report_sink.wait_for_reports(2)
    assert len(reports) == 2
    [shop] = [r for r in reports if r["exception_type"] == "builtins.PermissionError"]
    frame = shop["traceback"][-1]
    assert frame["filename"] == "~/proj/shop/checkout.py"  # still mappable to shop/checkout.py
    assert set(SECRET_NAMES) <= set(frame["frame_locals"])  # captured, but masked
    assert frame["frame_locals"]["config"].startswith("{'db': {'host': 'db1'")

    text = report_sink.all_text()
    planted = [*CANARIES.values(), "canary-nested-1", "canary-nested-2", "canary-url-pw",
               "canary-bearer-tok", "canary-msg-1", "canary-info-1", "canary-cell-1",
               CARD, CARD.replace(" ", ""), HOME_USER]
    leaked = [canary for canary in planted if canary in text]
    assert leaked == []
    # The emails were part of what was searched: both errors alerted, and the shop one
    # shows its (masked) locals, so a leak would have been visible there.
    mails = [message.as_string() for _, message in report_sink.smtp.messages]
    assert len(mails) == 2
    assert any("PermissionError" in mail and "card_holder" in mail for mail in mails)


def test_installed_scrubbers_mask_more_names(report_sink, use_client):
    use_client([report_sink.hostport], key=report_sink.key)
    flawless.client.install_scrubbers(r"pin_?code|maiden")

    def unlock(pin_code, mothers_maiden_name):
        raise PermissionError("locked")

    try:
        unlock("canary-pin-4711", "canary-maiden")
    except PermissionError:
        flawless.client.record_error(None, sys.exc_info())
    assert flawless.client.flush(5)
    [report] = report_sink.wait_for_reports(1)
    assert set(report["traceback"][-1]["frame_locals"]) == {"pin_code", "mothers_maiden_name"}
    assert "canary-pin" not in report_sink.all_text()
    assert "canary-maiden" not in report_sink.all_text()
