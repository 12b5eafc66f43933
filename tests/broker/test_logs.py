"""Logs: one startup banner with what an operator needs, a clean shutdown
line, JSON lines with CORELOG_LOG_FORMAT=json, and RUST_LOG-style
per-target levels."""

import json
import socket

from conftest import wait_until

TIMEOUT_S = 30


def test_json_logs_carry_the_banner_and_the_shutdown_line(make_broker):
    b = make_broker(env={"CORELOG_LOG_FORMAT": "json"}).start()
    wait_until(lambda: "serving" in b.log(), TIMEOUT_S, "the startup banner")
    assert b.stop() == 0
    lines = [json.loads(line) for line in b.log().splitlines() if line.strip()]
    for line in lines:
        assert set(line) == {"ts", "level", "target", "thread", "msg"}, line
        assert line["ts"].endswith("Z") and "T" in line["ts"]
        assert line["level"] in {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"}
    banners = [line["msg"] for line in lines if " serving " in line["msg"]]
    assert len(banners) == 1, banners
    banner = banners[0]
    for part in ["corelog 0.1.0", "node 0", "2 shards", f"127.0.0.1:{b.port}..={b.port + 1}",
                 "brokers 0..=1", f"data {b.data_dir}", "flush Fsync",
                 f"metrics http://127.0.0.1:{b.metrics_port}/metrics"]:
        assert part in banner, (part, banner)
    assert lines[-1]["msg"] == "stopped cleanly"
    assert any(line["thread"] == "shard-0" for line in lines), "no line from a shard"


def test_rust_log_sets_levels_per_target(make_broker):
    quiet = make_broker(shards=1).start()
    loud = make_broker(shards=1, env={"RUST_LOG": "warn,shard::conn=debug,shard::node=info"}).start()
    for b in (quiet, loud):
        with socket.create_connection(("127.0.0.1", b.port), timeout=TIMEOUT_S):
            pass
    wait_until(lambda: "connection from" in loud.log(), TIMEOUT_S, "the connection's debug line")
    assert quiet.stop() == 0 and loud.stop() == 0
    assert "connection from" not in quiet.log()
    # The banner (shard::node, info) stays; the controller's info line goes.
    assert " serving " in loud.log() and "controller:" not in loud.log()
    assert "controller:" in quiet.log()
