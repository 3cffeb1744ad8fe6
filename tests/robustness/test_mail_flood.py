"""A client cannot flood a developer's inbox: a report's error_threshold never lowers
report_error_threshold, and past mail_max_per_recipient_per_hour / mail_max_per_hour alerts
wait for one digest per recipient at the end of the wall-clock hour, none dropped.

In-process (the real ingest, processor, outbox and SMTP delivery to a real SMTP server, on
a task.Clock), so that the hour can end without waiting for it."""

from __future__ import annotations

import re

from flawless.server.core.bounds import hour_end
from support.gitrepo import average_report
from support.pipeline import NOW, Pipeline

ERRORS = 400
PER_RECIPIENT = 20
FUNCTION = re.compile(r"\bin (flood_\d{3})\b")


def flood() -> list[dict]:
    """400 distinct errors (one function each), each asking to alert at once."""
    reports = []
    for index in range(ERRORS):
        report = average_report()
        report["traceback"][-1]["function_name"] = f"flood_{index:03d}"
        reports.append(dict(report, error_threshold=1))
    return reports


def about(message) -> set[str]:
    return set(FUNCTION.findall(message.get_body(("plain",)).get_content()))


def test_a_report_cannot_lower_the_configured_threshold(tmp_path, shop, smtp_sink, open_store):
    pipeline = Pipeline(tmp_path, shop.path, storage=open_store(), smtp_host=smtp_sink.hostport,
                        report_error_threshold=3).start()
    answers = pipeline.send(*flood())
    assert answers == [{"accepted": True}] * ERRORS
    pipeline.advance(hour_end(NOW) - NOW + 60)
    assert smtp_sink.messages == [] and pipeline.pending() == 0
    assert pipeline.query("SELECT COUNT(*) AS n FROM errors")[0]["n"] == ERRORS
    pipeline.stop()


def test_400_distinct_errors_make_at_most_the_bound_of_mails_and_one_digest(tmp_path, shop,
                                                                           smtp_sink,
                                                                           open_store):
    pipeline = Pipeline(tmp_path, shop.path, storage=open_store(), smtp_host=smtp_sink.hostport,
                        report_error_threshold=1,
                        mail_max_per_recipient_per_hour=PER_RECIPIENT,
                        mail_max_per_hour=200).start()
    for start in range(0, ERRORS, 50):   # a client sending as fast as it can
        assert pipeline.send(*flood()[start:start + 50]) == [{"accepted": True}] * 50
    within_the_hour = list(smtp_sink.messages)
    assert len(within_the_hour) == PER_RECIPIENT
    assert all(recipients == ["bob@example.org"] for recipients, _ in within_the_hour)
    pipeline.advance(hour_end(NOW) - NOW + 60)
    messages = smtp_sink.messages
    assert len(messages) == PER_RECIPIENT + 1
    _, digest = messages[-1]
    assert digest["Subject"].startswith(f"flawless: {ERRORS - PER_RECIPIENT} alerts held back")
    # Every alert is in exactly one mail: alone, or in the digest.
    seen = [name for _, message in messages for name in about(message)]
    assert sorted(seen) == [f"flood_{index:03d}" for index in range(ERRORS)]
    pipeline.advance(3 * 3600)
    assert len(smtp_sink.messages) == PER_RECIPIENT + 1 and pipeline.pending() == 0
    pipeline.stop()
