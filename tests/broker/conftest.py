"""Fixtures for the broker tests: a real `corelog serve` process on loopback
ports and a temporary data directory, stopped with SIGTERM afterwards.

Every wait is bounded; nothing sleeps to synchronise: the broker prints
`ready` on stdout once every shard listens."""

import os
import random
import signal
import socket
import subprocess
import threading
import time

import pytest
from confluent_kafka import KafkaException

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("CORELOG_BIN", os.path.join(ROOT, "target", "debug", "corelog"))
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60


# Every port handed out by this test process: a port is free when it is
# checked but taken only when its node binds it, so without this two
# nodes of one cluster started together could be given the same one.
_HANDED_OUT = set()


def free_port_range(n):
    """A base port with n free consecutive ports after it, none of them
    handed out before by this process."""
    for _ in range(200):
        # Below Linux's ephemeral range (32768-60999 by default), where the
        # clients' own outgoing connections could take a port between our
        # check and the broker's bind.
        base = random.randint(10000, 32000 - n)
        ports = range(base, base + n)
        if _HANDED_OUT.intersection(ports):
            continue
        socks = []
        try:
            for p in ports:
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            _HANDED_OUT.update(ports)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


class Broker:
    """One `corelog serve` process."""

    def __init__(self, data_dir, shards=2, extra_args=(), env=None, listeners=None):
        self.data_dir = str(data_dir)
        self.env = None if env is None else {**os.environ, **env}
        self.shards = shards
        self.extra_args = list(extra_args)
        # Each listener's shards' ports (one PLAINTEXT from --port without
        # `listeners`, else `--listener NAME://...` each), then the metrics port.
        names = listeners or ("PLAINTEXT",)
        base = free_port_range(shards * len(names) + 1)
        self.listener_ports = {name: base + i * shards for i, name in enumerate(names)}
        self.explicit_listeners = listeners is not None
        self.port = base
        self.metrics_port = base + shards * len(names)
        self.proc = None
        self.stderr_lines = []

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self):
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def bootstrap_of(self, listener):
        return f"127.0.0.1:{self.listener_ports[listener]}"

    def start(self):
        if self.explicit_listeners:
            where = [a for name, port in self.listener_ports.items()
                     for a in ("--listener", f"{name}://127.0.0.1:{port}")]
        else:
            where = ["--port", str(self.port)]
        args = [BINARY, "serve", "--data-dir", self.data_dir, *where,
                "--shards", str(self.shards), "--metrics-port", str(self.metrics_port)] + self.extra_args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=self.env)
        threading.Thread(target=self._drain_stderr, args=(self.proc,), daemon=True).start()
        ready = threading.Event()

        def wait_ready(proc):
            for line in proc.stdout:
                if line.strip() == "ready":
                    ready.set()
            # stdout closed: the process ended.

        threading.Thread(target=wait_ready, args=(self.proc,), daemon=True).start()
        if not ready.wait(START_TIMEOUT_S):
            self.proc.kill()
            raise RuntimeError("broker did not start:\n" + "".join(self.stderr_lines))
        return self

    def _drain_stderr(self, proc):
        for line in proc.stderr:
            self.stderr_lines.append(line)

    def stop(self, sig=signal.SIGTERM):
        """Stops the broker; returns its exit code."""
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self.proc = None
        return code

    def restart(self):
        assert self.stop() == 0, "".join(self.stderr_lines)
        return self.start()

    def log(self):
        return "".join(self.stderr_lines)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "data").start()
    yield b
    # Shown by pytest when the test failed.
    print("---- broker log ----\n" + b.log())
    if b.proc is not None:
        code = b.stop()
        assert code == 0, "broker did not stop cleanly:\n" + b.log()


@pytest.fixture
def make_broker(tmp_path):
    """A factory for brokers with custom flags; all are stopped at the end."""
    made = []

    def make(shards=2, extra_args=(), data_dir=None, env=None, listeners=None):
        b = Broker(data_dir or tmp_path / f"data{len(made)}", shards=shards, extra_args=extra_args, env=env,
                   listeners=listeners)
        made.append(b)
        return b

    yield make
    for b in made:
        print(f"---- broker log ({b.data_dir}) ----\n" + b.log())
        if b.proc is not None:
            b.stop(signal.SIGKILL)


def error_codes(futures, timeout_s=30):
    """An admin call's futures by key as {key: None, or the Kafka error
    code it failed with}."""
    out = {}
    for key, f in futures.items():
        try:
            f.result(timeout_s)
            out[key] = None
        except KafkaException as e:
            out[key] = e.args[0].code()
    return out


def wait_until(predicate, timeout_s=30, what="condition"):
    """Polls `predicate` until true, failing after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
