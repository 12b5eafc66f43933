"""A cluster of real `corelog serve` processes on loopback: every node in
the metadata quorum (combined mode) unless told otherwise. Nodes start
together (a cluster forms once every controller's node has registered);
every wait is bounded."""

import os
import signal
import threading

from conftest import BINARY, START_TIMEOUT_S, STOP_TIMEOUT_S, free_port_range

import subprocess


class Node:
    def __init__(self, node_id, data_dir, shards, quorum, extra_args=(), host="127.0.0.1", netns=None,
                 listener="PLAINTEXT"):
        """`netns`: the network namespace the node runs in (its `host` is
        an address there); `listener`: the protocol of its one listener."""
        self.node_id = node_id
        self.data_dir = str(data_dir)
        self.shards = shards
        self.quorum = quorum
        self.extra_args = list(extra_args)
        self.host = host
        self.netns = netns
        self.listener = listener
        self.port = free_port_range(shards)
        self.proc = None
        self.lines = []
        self.ready = threading.Event()

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    def brokers(self):
        return [self.node_id * 1000 + s for s in range(self.shards)]

    def spawn(self):
        if self.listener == "PLAINTEXT":
            where = ["--host", self.host, "--port", str(self.port)]
        else:
            where = ["--listener", f"{self.listener}://{self.host}:{self.port}"]
        args = [BINARY, "serve", "--node-id", str(self.node_id), "--controller-quorum", self.quorum,
                "--data-dir", self.data_dir, *where,
                "--shards", str(self.shards), "--metrics-port", "0"] + self.extra_args
        if self.netns:
            # `ip netns exec` execs the node: signals reach it directly.
            args = ["ip", "netns", "exec", self.netns] + args
        self.ready = threading.Event()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc, ready, lines = self.proc, self.ready, self.lines

        def out():
            for line in proc.stdout:
                if line.strip() == "ready":
                    ready.set()

        def err():
            for line in proc.stderr:
                lines.append(f"[node {self.node_id}] {line}")

        threading.Thread(target=out, daemon=True).start()
        threading.Thread(target=err, daemon=True).start()
        return self

    def wait_ready(self):
        if not self.ready.wait(START_TIMEOUT_S):
            raise RuntimeError(f"node {self.node_id} did not start:\n" + self.log())

    def start(self):
        self.spawn().wait_ready()
        return self

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        self.proc.kill()
        self.proc.wait(STOP_TIMEOUT_S)
        self.proc = None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(STOP_TIMEOUT_S)
        self.proc = None
        return code

    def log(self):
        return "".join(self.lines)


class Cluster:
    def __init__(self, base_dir, nodes=3, shards=1, voters=None, hosts=None, netns=None,
                 extra_args=(), listener="PLAINTEXT", node_args=None):
        """`nodes` nodes with ids 1..nodes; the first `voters` (all by
        default) run controllers. `hosts` and `netns` map a node id to its
        address and network namespace (127.0.0.1 and the test's own by
        default); `node_args` to flags of its own, after `extra_args`."""
        voters = nodes if voters is None else voters
        hosts = hosts or {}
        netns = netns or {}
        host = lambda n: hosts.get(n, "127.0.0.1")
        self.controller_ports = {n: free_port_range(1) for n in range(1, voters + 1)}
        self.quorum = ",".join(f"{n}@{host(n)}:{p}" for n, p in self.controller_ports.items())
        node_args = node_args or {}
        self.nodes = {n: Node(n, os.path.join(base_dir, f"node{n}"), shards, self.quorum,
                              [*extra_args, *node_args.get(n, [])], host=host(n), netns=netns.get(n),
                              listener=listener)
                      for n in range(1, nodes + 1)}

    def start(self):
        for n in self.nodes.values():
            n.spawn()
        for n in self.nodes.values():
            n.wait_ready()
        return self

    def running(self):
        return [n for n in self.nodes.values() if n.proc is not None]

    def bootstraps(self):
        return ",".join(n.bootstrap for n in self.running())

    def log(self):
        return "".join(n.log() for n in self.nodes.values())

    def stop(self):
        codes = {}
        for n in self.running():
            n.signal(signal.SIGCONT)
            codes[n.node_id] = n.stop()
        return codes

    def kill_all(self):
        for n in self.running():
            n.signal(signal.SIGCONT)
            n.kill()
