"""The Slack channel in-process: reports in, Block Kit messages out to a fake incoming
webhook (Slack's paths, answers and 429 with Retry-After), on a task.Clock."""

from __future__ import annotations

import pytest

from support.blockkit import block_kit_problems
from support.fake_services import SLACK_PATH, FakeSlack
from support.gitrepo import average_report
from support.pipeline import BASE_URL, Pipeline

SLACK_URL = f"https://hooks.slack.test{SLACK_PATH}"


def slack_pipeline(tmp_path, shop, slack: FakeSlack, **options) -> Pipeline:
    return Pipeline(tmp_path, shop.path, {"hooks.slack.test": slack},
                    slack_webhook_url=SLACK_URL, alert_channels="slack", **options).start()


def average(name: str = "average", message: str = "division by zero") -> dict:
    report = average_report()
    report["traceback"][-1]["function_name"] = name
    return dict(report, exception_message=message)


def texts(message: dict) -> str:
    """Every text of a message, joined."""
    found = [message["text"]]
    for block in message["blocks"]:
        for part in [block.get("text")] + block.get("fields", []) + block.get("elements", []):
            if isinstance(part, dict):
                found.append(part.get("text") if isinstance(part.get("text"), str)
                             else (part.get("text") or {}).get("text", ""))
                found.append(part.get("url", ""))
    return "\n".join(found)


def test_an_alert_is_one_block_kit_message_with_what_slack_users_need(tmp_path, shop):
    slack = FakeSlack()
    pipeline = slack_pipeline(tmp_path, shop, slack)
    pipeline.send(average())
    [message] = slack.messages
    assert block_kit_problems(message) == []
    assert message["blocks"][0]["text"]["text"] == "ZeroDivisionError in average"
    shown = texts(message)
    assert "division by zero" in shown
    assert "`shop/cart.py:14` in `average`" in shown
    sha = pipeline.query("SELECT commit_sha FROM errors")[0][0]
    assert f"`{sha[:10]}` by Bob" in shown and "Add Cart.average" in shown
    assert "*Occurrences*\n1" in shown and "*First seen*\n2025-11-21" in shown
    button = message["blocks"][3]["elements"][0]
    assert button["url"].startswith(f"{BASE_URL}/view_traceback?filename=shop%2Fcart.py")
    [entry] = pipeline.query("SELECT message_id, destination FROM outbox")
    assert entry["message_id"] in shown
    assert entry["destination"].startswith("hooks.slack.test#")
    assert SLACK_PATH not in entry["destination"]
    # The webhook path is the secret: a request went there, nothing stored names it.
    assert [request.path for request in slack.requests] == [SLACK_PATH]
    pipeline.stop()


def test_markup_and_mentions_in_a_report_stay_text(tmp_path, shop):
    slack = FakeSlack()
    pipeline = slack_pipeline(tmp_path, shop, slack)
    hostile = "<!channel> *bold* <https://evil.test|click> ```x``` & " + "y" * 5000
    pipeline.send(average(message=hostile))
    [message] = slack.messages
    assert block_kit_problems(message) == []
    shown = texts(message)
    assert "<!channel>" not in shown and "<https://evil.test" not in shown
    assert "&lt;!channel&gt;" in shown and "&amp;" in shown
    pipeline.stop()


def test_429_holds_every_message_to_the_webhook_for_as_long_as_asked(tmp_path, shop):
    slack = FakeSlack()
    slack.script(FakeSlack.rate_limited(30))
    pipeline = slack_pipeline(tmp_path, shop, slack)
    pipeline.send(*(average(f"f{index}") for index in range(3)))
    assert len(slack.requests) == 1 and slack.messages == []
    pipeline.advance(29)
    assert len(slack.requests) == 1, "a message was sent before Retry-After ran out"
    pipeline.advance(2)
    assert len(slack.messages) == 3 and len(slack.requests) == 4
    assert sorted(m["blocks"][0]["text"]["text"] for m in slack.messages) == [
        f"ZeroDivisionError in f{index}" for index in range(3)]
    assert pipeline.pending() == 0
    pipeline.stop()


@pytest.mark.parametrize("status, answer", [(400, b"invalid_payload"), (404, b"channel_not_found"),
                                            (410, b"channel_is_archived"), (500, b"rollup_error")])
def test_a_refusal_keeps_the_message_and_names_no_secret(tmp_path, shop, status, answer):
    from support.fake_services import Reply
    slack = FakeSlack()
    slack.script(Reply(status, answer + SLACK_PATH.encode()))
    pipeline = slack_pipeline(tmp_path, shop, slack)
    pipeline.send(average())
    [row] = pipeline.query("SELECT attempts, last_error, sent_at FROM outbox")
    assert row["attempts"] == 1 and row["sent_at"] is None
    assert f"HTTP {status} {answer.decode()}" in row["last_error"]
    assert SLACK_PATH not in row["last_error"] and "s3cr3t" not in row["last_error"]
    pipeline.advance(10)
    assert len(slack.messages) == 1 and pipeline.pending() == 0
    pipeline.stop()


def test_channels_yaml_sends_a_path_elsewhere_than_alert_channels(tmp_path, shop, smtp_sink):
    (tmp_path / "channels.yaml").write_text("- filepath: shop/cart.py\n  channels: [slack]\n"
                                            "- filepath: shop/other/\n  channels: [github]\n")
    slack = FakeSlack()
    pipeline = Pipeline(tmp_path, shop.path, {"hooks.slack.test": slack},
                        slack_webhook_url=SLACK_URL, smtp_host=smtp_sink.hostport).start()
    pipeline.send(average())
    assert len(slack.messages) == 1 and smtp_sink.messages == []
    assert [row["channel"] for row in pipeline.query("SELECT channel FROM outbox")] == ["slack"]
    pipeline.stop()
