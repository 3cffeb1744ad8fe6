"""Words: counts read as English in every subject, title and footer."""

from __future__ import annotations

from flawless.server.core.alerting import should_alert
from flawless.server.core.text import counted
from flawless.server.delivery.issue_text import digest_title


def test_one_is_singular_and_every_other_count_plural():
    assert [counted(count, "alert") for count in (0, 1, 2, 21)] == [
        "0 alerts", "1 alert", "2 alerts", "21 alerts"]


def test_a_digest_of_one_alert_and_a_threshold_of_one_say_so_in_the_singular():
    assert digest_title(1, "in the hour to 10:00 UTC").startswith("flawless: 1 alert held back")
    assert should_alert(0, 1, 1, None, False)[1] == "reached the threshold of 1 occurrence"
    assert should_alert(2, 3, 3, None, False)[1] == "reached the threshold of 3 occurrences"
