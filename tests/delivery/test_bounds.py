"""The hourly bounds in-process: past them alerts are held, and when the wall-clock hour is
over they go out as one digest per destination; nothing is dropped or sent twice."""

from __future__ import annotations

import json
import re

from flawless.server.core.bounds import hour_end
from support.blockkit import block_kit_problems
from support.fake_services import SLACK_PATH, FakeSlack
from support.gitrepo import average_report
from support.pipeline import NOW, Pipeline

FUNCTION = re.compile(r"\bin (f\d{3})\b")


def report(index: int) -> dict:
    report = average_report()
    report["traceback"][-1]["function_name"] = f"f{index:03d}"
    return report


def functions_in(message) -> list[str]:
    """The functions a mail is about (an alert names one, a digest several)."""
    return sorted(set(FUNCTION.findall(message.get_body(("plain",)).get_content())))


def mailed_functions(sink) -> list[str]:
    return [name for _, message in sink.messages for name in functions_in(message)]


def test_alerts_past_the_recipient_bound_arrive_in_one_digest_after_the_hour(tmp_path, shop,
                                                                            smtp_sink):
    pipeline = Pipeline(tmp_path, shop.path, smtp_host=smtp_sink.hostport,
                        mail_max_per_recipient_per_hour=3).start()
    pipeline.send(*(report(index) for index in range(10)))
    assert len(smtp_sink.messages) == 3
    assert pipeline.query("SELECT COUNT(*) FROM outbox WHERE held_until IS NOT NULL")[0][0] == 7
    pipeline.advance(hour_end(NOW) - NOW - 10)
    assert len(smtp_sink.messages) == 3, "the digest came before the hour was over"
    pipeline.advance(15)
    assert len(smtp_sink.messages) == 4
    recipients, digest = smtp_sink.messages[-1]
    assert recipients == ["bob@example.org"]
    assert digest["Subject"].startswith("flawless: 7 alerts held back since 2025-11-21")
    listed = functions_in(digest)
    assert sorted(mailed_functions(smtp_sink)) == [f"f{index:03d}" for index in range(10)]
    assert len(listed) == 7
    content = digest.get_content()
    assert "1 occurrence" in content and "1 occurrences" not in content
    assert "/view_traceback?" in content
    pipeline.advance(7200)
    assert len(smtp_sink.messages) == 4 and pipeline.pending() == 0
    # In the next hour the bound starts again.
    pipeline.send(*(report(index) for index in range(10, 14)))
    assert len(smtp_sink.messages) == 7
    pipeline.stop()


def test_the_channel_bound_counts_every_recipient_together(tmp_path, shop, smtp_sink):
    (tmp_path / "watched_files.yaml").write_text(
        "- {email: carol@example.net, filepath: shop/, watch_all_errors: true}\n")
    pipeline = Pipeline(tmp_path, shop.path, smtp_host=smtp_sink.hostport,
                        mail_max_per_recipient_per_hour=100, mail_max_per_hour=5).start()
    pipeline.send(*(report(index) for index in range(4)))   # 8 mails are due: 5 go
    assert len(smtp_sink.messages) == 5
    pipeline.advance(hour_end(NOW) - NOW + 5)
    digests = [message for _, message in smtp_sink.messages[5:]]
    assert len(digests) <= 2 and all("held back" in m["Subject"] for m in digests)
    for address in ("bob@example.org", "carol@example.net"):
        got = [name for recipients, message in smtp_sink.messages if recipients == [address]
               for name in functions_in(message)]
        assert sorted(got) == [f"f{index:03d}" for index in range(4)], address
    pipeline.stop()


def test_slack_gets_the_same_bound_and_a_block_kit_digest(tmp_path, shop):
    slack = FakeSlack()
    pipeline = Pipeline(tmp_path, shop.path, {"hooks.slack.test": slack},
                        slack_webhook_url=f"https://hooks.slack.test{SLACK_PATH}",
                        alert_channels="slack", mail_max_per_recipient_per_hour=2).start()
    pipeline.send(*(report(index) for index in range(6)))
    assert len(slack.messages) == 2
    pipeline.advance(hour_end(NOW) - NOW + 5)
    assert len(slack.messages) == 3
    digest = slack.messages[-1]
    assert block_kit_problems(digest) == []
    assert digest["blocks"][0]["text"]["text"].startswith("4 alerts held back since")
    shown = json.dumps(digest)
    assert all(f"f{index:03d}" in shown for index in range(2, 6))
    pipeline.stop()
