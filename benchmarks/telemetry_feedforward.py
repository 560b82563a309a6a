"""Feedforward latency measured across an emulated network, against the delay configured.

Two "edge sites" are network namespaces joined to this one by veth pairs whose egress (both
ends) `tc netem` delays by D_A and D_B. In each site an echo server answers over the real
post-quantum channel (ChannelServer + `echo_reply`). From here,
`measure_feedforward_latency` should find one-way feedforward ~ D_A + D_B (half of each
round trip, 2 D_A and 2 D_B), plus the declared latency.

    sudo python benchmarks/telemetry_feedforward.py [--delays-ms 2 5] [--samples 20]

Needs root, iproute2 and netem; the namespaces are removed at the end. Results go to
benchmarks/results/telemetry_feedforward.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qorch.channel.identity import Identity
from qorch.qpu.transport import SecureAgentClient
from qorch.telemetry.feedforward import measure_feedforward_latency

RESULTS = Path(__file__).parent / "results" / "telemetry_feedforward.md"
PORT = 18480

SERVER = """
import asyncio, sys
from aiohttp import web
from qorch.channel.http import ChannelServer
from qorch.channel.identity import Identity, load_public_key
from qorch.agent_protocol import EchoRequest
from qorch.telemetry.feedforward import echo_reply

async def handle(op, payload):
    return echo_reply(EchoRequest.from_wire(payload)).wire()

async def main():
    app = web.Application()
    trusted = [load_public_key(sys.argv[2])]
    ChannelServer(Identity.load(sys.argv[1]), trusted, handle).add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, sys.argv[3], int(sys.argv[4])).start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def make_site(name: str, subnet: int, delay_ms: float) -> str:
    """A namespace at 10.231.<subnet>.2, reached from here through a delayed veth."""
    host, peer = f"qff{subnet}h", f"qff{subnet}p"
    sh("ip", "netns", "add", name)
    sh("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
    sh("ip", "link", "set", peer, "netns", name)
    sh("ip", "addr", "add", f"10.231.{subnet}.1/30", "dev", host)
    sh("ip", "link", "set", host, "up")
    sh("ip", "netns", "exec", name, "ip", "addr", "add", f"10.231.{subnet}.2/30", "dev", peer)
    sh("ip", "netns", "exec", name, "ip", "link", "set", peer, "up")
    sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
    if delay_ms > 0:
        sh("tc", "qdisc", "add", "dev", host, "root", "netem", "delay", f"{delay_ms}ms")
        sh("ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", peer, "root", "netem",
           "delay", f"{delay_ms}ms")  # fmt: skip
    return f"10.231.{subnet}.2"


def netem_available() -> bool:
    """Whether this kernel has the netem qdisc (some sandboxes do not)."""
    subprocess.run(["ip", "link", "del", "qffprobe"], capture_output=True)
    sh("ip", "link", "add", "qffprobe", "type", "veth", "peer", "name", "qffprobep")
    try:
        probe = ["tc", "qdisc", "add", "dev", "qffprobe", "root", "netem", "delay", "1ms"]
        return subprocess.run(probe, capture_output=True).returncode == 0
    finally:
        subprocess.run(["ip", "link", "del", "qffprobe"], capture_output=True)


def remove_site(name: str, subnet: int) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "link", "del", f"qff{subnet}h"], capture_output=True)


async def measure(delays: list[float], samples: int) -> tuple[list[float], float]:
    operator = Identity.generate()
    folder = Path(tempfile.mkdtemp(prefix="qorch-ff-"))
    _, operator_pub = operator.save(folder / "operator")
    procs, clients = [], []
    try:
        for i, delay in enumerate(delays):
            name, subnet = f"qorch-ff-{i}", 200 + i
            remove_site(name, subnet)
            address = make_site(name, subnet, delay)
            node = Identity.generate()
            key, _ = node.save(folder / f"node{i}")
            proc = subprocess.Popen(
                ["ip", "netns", "exec", name, sys.executable, "-c", SERVER, str(key),
                 str(operator_pub), address, str(PORT)],
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            procs.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            clients.append(SecureAgentClient(f"http://{address}:{PORT}", operator, node.public_key))
        started = time.perf_counter()
        result = await measure_feedforward_latency(clients[0], clients[1], samples=samples)
        elapsed = time.perf_counter() - started
        return list(result.samples_seconds), elapsed
    finally:
        for client in clients:
            await client.close()
        for proc in procs:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for i in range(len(delays)):
            remove_site(f"qorch-ff-{i}", 200 + i)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--write", action="store_true", help=f"append the results to {RESULTS}")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces and netem)", file=sys.stderr)
        return 2
    rows = []
    plan = [[0.0, 0.0], [1.0, 1.0], [2.0, 5.0], [10.0, 10.0]]
    note = ""
    if not netem_available():
        plan = plan[:1]
        note = (
            "\n\nThis kernel has no `netem` qdisc (`tc qdisc add ... netem` answers"
            " 'Specified qdisc kind is unknown'), so only the undelayed row ran here: the"
            " probe's own floor over veth and the channel."
        )
        print(note.strip(), file=sys.stderr)
    for delays in plan:
        got, seconds = asyncio.run(measure(delays, args.samples))
        got_ms = sorted(s * 1e3 for s in got)
        median = got_ms[len(got_ms) // 2]
        expected = sum(delays)
        rows.append(
            f"| {delays[0]:g} / {delays[1]:g} | {expected:.2f} | {median:.3f} |"
            f" {got_ms[0]:.3f}–{got_ms[-1]:.3f} | {median - expected:+.3f} | {seconds:.2f} |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(
        [
            "| netem delay A / B (ms, each way) | expected one-way (ms) | measured median (ms)"
            " | range (ms) | error (ms) | probe time (s) |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
        ]
    )
    print(table)
    if args.write:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(
            "# Feedforward latency measured across emulated edge sites\n\n"
            "`python benchmarks/telemetry_feedforward.py --write` (root): two network"
            " namespaces behind veth pairs delayed by `tc netem` on both ends, an echo server"
            " in each over the post-quantum channel; the probe's one-way estimate is"
            " (rtt(a) + rtt(b)) / 2, so it should find delay A + delay B. "
            f"{args.samples} samples per row, 2 cores.\n\n" + table + note + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
