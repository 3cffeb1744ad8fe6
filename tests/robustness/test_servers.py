"""Several servers on one PostgreSQL database, as users run them behind a load balancer.

Under load from several clients, with one of the servers SIGKILLed and restarted at random
moments, every acknowledged occurrence is counted once, every error past its threshold is
alerted exactly once (one Message-ID) and nothing stays stuck; a server that dies while it
delivers an alert loses it to another server, which delivers it; while the database is down
reports are refused (503), never accepted and lost.
"""

from __future__ import annotations

import json
import random
import time

from support.pgcluster import PostgresCluster
from support.server import start_server
from support.smtp import SmtpSink

from .common import (assert_nothing_lost_or_doubled, get_page, kill_at_random_moments,
                     loader_results, record_body, report, start_loaders, stored_total)

THRESHOLD = 5
FUNCTIONS = [f"load_{index:02d}" for index in range(12)]
SERVERS = 3
LOADERS_PER_SERVER = 2
LEASE_SECONDS = 3   # outbox_lease_seconds: the default 30 would make the test wait as long


def options(shop, sink, url, **extra):
    return dict(repo_dir=shop.path, smtp_hostport=sink.hostport, storage="postgresql",
                database_url=url, rate_limit_per_key=0, rate_limit_per_address=0, **extra)


def test_three_servers_one_killed_at_random_moments_lose_nothing_and_double_no_alert(
        tmp_path, shop, smtp_sink, postgres_url, soak):
    rounds = 20 if soak else 3
    rng = random.Random(20261130)
    servers = [start_server(tmp_path / f"server-{number}", report_error_threshold=THRESHOLD,
                            **options(shop, smtp_sink, postgres_url))
               for number in range(SERVERS)]
    seconds = rounds * 1.6 + 2
    loaders = [loader for number, server in enumerate(servers)
               for loader in start_loaders(server, LOADERS_PER_SERVER, seconds, FUNCTIONS,
                                           shop.head(), first_seed=number * LOADERS_PER_SERVER)]
    try:
        kill_at_random_moments(servers, rounds, seconds - 1.5, rng)
        assert_nothing_lost_or_doubled(servers[0], loader_results(loaders), smtp_sink,
                                       FUNCTIONS, THRESHOLD)
        status, text = get_page(servers[-1].web_url + "/check_health")
        health = json.loads(text)
        assert status == 200 and health["database"]["backend"] == "postgresql"
        assert {server.process.pid for server in servers} <= \
            {server["pid"] for server in health["servers"]}
        assert health["inbox_depth"] == 0 and health["outbox_depth"] == 0
    finally:
        for loader in loaders:
            if loader.poll() is None:
                loader.kill()
        for server in servers:
            server.stop()


def test_a_server_that_dies_delivering_an_alert_loses_it_to_another(tmp_path, shop,
                                                                   postgres_url):
    sink = SmtpSink().start()
    sink.hold_next()   # the first delivery is taken in and never answered
    first, second = (start_server(tmp_path / name, report_error_threshold=1,
                                  outbox_lease_seconds=LEASE_SECONDS,
                                  **options(shop, sink, postgres_url))
                     for name in ("first", "second"))
    try:
        assert first.record(report())["result"] == {"accepted": True}
        assert first.wait_until(lambda: sink.held, timeout=30)
        [(holder,)] = first.query("SELECT locked_by FROM outbox WHERE sent_at IS NULL")
        dying, living = (first, second) if f":{first.process.pid}:" in holder \
            else (second, first)
        assert f":{dying.process.pid}:" in holder
        dying.kill()
        # Its lease runs out (LEASE_SECONDS after it was last extended: the holder extended it
        # every third of that while it waited on SMTP), and the other takes over.
        [(recipients, delivered)] = sink.wait_for(1, timeout=90)
        assert recipients == ["alice@example.com"]
        assert living.query("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL") == [(0,)]
        # Had the SMTP server answered the first delivery, it would be the one repeat a
        # crash allows: the same message, recognisable by its Message-ID.
        assert sink.held[0][1]["Message-ID"] == delivered["Message-ID"]
        time.sleep(1.0)
        assert len(sink.messages) == 1
    finally:
        first.stop()
        second.stop()
        sink.stop()


def test_while_the_database_is_down_reports_are_refused_and_then_taken_again(
        tmp_path, shop, smtp_sink, postgres_cluster):
    cluster = PostgresCluster(postgres_cluster.binaries).start()   # its own: to be stopped
    server = start_server(tmp_path / "server", report_error_threshold=1,
                          **options(shop, smtp_sink, cluster.create_schema()))
    try:
        assert server.record(report())["result"] == {"accepted": True}
        assert server.wait_until(lambda: server.inbox_depth() == 0)
        cluster.pause()
        status, headers, body = server.post(record_body([report()]))
        assert status == 503 and headers["Retry-After"].isdigit(), (status, body)
        health = get_page(server.web_url + "/check_health")
        assert health[0] == 503 and "PostgreSQL" in health[1]
        cluster.resume()
        assert server.wait_until(lambda: server.post(record_body([report()]))[0] == 200,
                                 timeout=30, interval=0.5)
        assert server.wait_until(lambda: server.inbox_depth() == 0, timeout=30)
        assert stored_total(server) == 2
        assert server.process is not None and server.process.poll() is None
    finally:
        server.stop()
        cluster.stop()
