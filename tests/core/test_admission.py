"""The pure rules of admission: address groups, X-Forwarded-For, connection slots, the body
budget and fitting the caps into the open-file limit."""

from __future__ import annotations

import pytest

from flawless.server.core.admission import (FILES_FOR_THE_REST, ByteBudget, ConnectionTable,
                                            TrustedProxies, address_group, fit_connection_caps,
                                            wanted_open_files)


@pytest.mark.parametrize("address, group", [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("not an address", "not an address"),
    ("", ""),
])
def test_address_groups(address, group):
    assert address_group(address) == group


PROXIES = TrustedProxies(["10.9.0.0/16", "2001:db8:ffff::1"])


@pytest.mark.parametrize("peer, forwarded, client", [
    ("192.0.2.1", ["198.51.100.1"], "192.0.2.1"),              # not a proxy: ignored
    ("10.9.0.5", [], "10.9.0.5"),                               # a proxy with no header
    ("10.9.0.5", ["198.51.100.1"], "198.51.100.1"),
    ("10.9.0.5", ["203.0.113.9, 198.51.100.1"], "198.51.100.1"),  # the left is the client's
    ("10.9.0.5", ["198.51.100.1, 10.9.3.3"], "198.51.100.1"),     # through two proxies
    ("10.9.0.5", ["198.51.100.1", "10.9.3.3"], "198.51.100.1"),   # as two header lines
    ("10.9.0.5", ["[2001:db8::5]:4711"], "2001:db8::5"),
    ("10.9.0.5", ["198.51.100.1:4711"], "198.51.100.1"),
    ("10.9.0.5", ["spoofed, garbage"], "10.9.0.5"),               # garbage: stop at the proxy
    ("2001:db8:ffff::1", ["::ffff:198.51.100.1"], "198.51.100.1"),
    ("10.9.0.5", ["10.9.0.6"], "10.9.0.6"),                       # only proxies: the farthest
])
def test_the_client_address_behind_trusted_proxies(peer, forwarded, client):
    assert PROXIES.client_address(peer, forwarded) == client


def test_no_proxies_trust_nobody():
    assert not TrustedProxies() and "10.9.0.5" not in TrustedProxies()
    assert TrustedProxies().client_address("10.9.0.5", ["1.2.3.4"]) == "10.9.0.5"


def test_the_connection_table_counts_per_group_and_in_total():
    table = ConnectionTable(total=3, per_address=2)
    assert table.admit("a") is None and table.admit("a") is None
    assert table.admit("a").status == 429
    assert table.admit(None) is None            # a trusted proxy: no per-address cap
    assert table.admit("b").status == 503
    table.release("a")
    assert table.admit("b") is None and table.open == 3
    for group in ("a", "b", None):
        table.release(group)
    assert table.open == 0 and table.admit("a") is None


def test_no_limits_admit_everything():
    table, budget = ConnectionTable(0, 0), ByteBudget(0, 0)
    assert all(table.admit("a") is None for _ in range(10000))
    assert budget.reserve("a", 10**12) is None and budget.held == 0


def test_the_budget_holds_a_total_and_a_share_per_group():
    budget = ByteBudget(1000, 400)
    assert budget.reserve("a", 400) is None
    assert budget.reserve("a", 1).status == 429
    assert budget.reserve("b", 400) is None
    assert budget.reserve("c", 201).status == 503 and budget.held == 800
    budget.release("a", 400)
    assert budget.reserve("c", 201) is None and budget.held == 601


@pytest.mark.parametrize("limit, caps, fitted", [
    (100_000, (1000, 1000), (1000, 1000)),
    (1024, (1000, 1000), (384, 384)),
    (1024, (1000, 100), (698, 69)),
    (1024, (0, 100), (384, 100)),
    (10, (1000, 1000), (1, 1)),
])
def test_connection_caps_fit_in_the_open_file_limit(limit, caps, fitted):
    assert fit_connection_caps(limit, caps) == fitted
    if limit > FILES_FOR_THE_REST + 2:
        assert sum(fitted) + FILES_FOR_THE_REST <= limit


def test_the_open_files_the_caps_want():
    assert wanted_open_files((1000, 1000)) == 2000 + FILES_FOR_THE_REST
    assert wanted_open_files((1000, 0)) is None
