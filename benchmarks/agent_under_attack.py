"""A QPU agent under attack by a peer without any key, as its operator sees it.

A real `qorch qpu-agent` listens on 127.0.0.1. The operator it trusts calls it from this
process; an attacker process, bound to 127.0.0.2 so that the agent sees another peer,
attacks it:

    large      8 connections POSTing 100 MB bodies to the channel's endpoints, over and over
    hello      16 connections sending ClientHellos that name the operator's (public) key:
               half replay one captured hello, half are fresh; a hello answered with a
               cookie is sent again with it, as a client following the protocol would
    slowloris  1000 connections sending a request head, or a handshake body, a byte a second

Phases alternate idle and attack (idle, large, idle, hello, idle, slowloris; `--rounds`
times), so that the two see the same machine. In every phase the operator makes
back-to-back `health` calls on its pooled session, and a few times a second a first call
on a fresh client (handshake included). The agent and the operator share CPU 0, the
attacker has CPU 1 (`--no-pin` leaves scheduling alone).

    PYTHONPATH=src python benchmarks/agent_under_attack.py \
        [--rounds 3] [--seconds 6] [--output benchmarks/results/agent_under_attack.md]

Target: under each attack the operator's p99 stays within 2x its idle p99.
Attack traffic goes to 127.0.0.1 only, with bounded connections, and stops with its phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from qorch.api import QuantumNode
from qorch.channel.handshake import (
    CLIENT_HELLO,
    HELLO_RETRY,
    SERVER_HELLO,
    ClientHandshake,
    decode_message,
    encode_message,
)
from qorch.channel.identity import Identity, load_public_key
from qorch.local.agents import AgentProcess
from qorch.qpu.transport import AgentError, SecureAgentClient

RESULTS = Path(__file__).parent / "results" / "agent_under_attack.md"
TARGET_RATIO = 2.0
ATTACKER_ADDRESS = "127.0.0.2"  # another peer, as far as the agent can tell
ATTACKS = ("large", "hello", "slowloris")
HANDSHAKE_PATH, CALL_PATH = "/v1/channel/handshake", "/v1/channel/call"

LARGE_CONNECTIONS, LARGE_BODY_BYTES = 8, 100 * 1024 * 1024
HELLO_CONNECTIONS = 16
SLOWLORIS_CONNECTIONS = 1000
FRESH_CLIENTS_PER_SECOND = 4


# --- the attacker (a child process) -------------------------------------------------------


def _pin(pid: int, cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(pid, {cpu})


async def _connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port, local_addr=(ATTACKER_ADDRESS, 0))


async def _status(reader: asyncio.StreamReader) -> str:
    line = await reader.readline()
    if not line:
        raise ConnectionResetError("closed before a response")
    return line.split()[1].decode()


async def attack_large(host: str, port: int, until: float, stats: Counter[str]) -> None:
    chunk = bytes(1024 * 1024)

    async def worker(index: int) -> None:
        path = (CALL_PATH, HANDSHAKE_PATH)[index % 2]
        while time.monotonic() < until:
            try:
                reader, writer = await _connect(host, port)
            except OSError:
                stats["connect failed"] += 1
                await asyncio.sleep(0.05)
                continue
            stats["requests"] += 1
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/octet-stream\r\n"
                f"Content-Length: {LARGE_BODY_BYTES}\r\n\r\n"
            )
            writer.write(head.encode())
            response = asyncio.ensure_future(_status(reader))
            sent = 0
            try:
                while sent < LARGE_BODY_BYTES and not response.done():
                    if time.monotonic() >= until:
                        break
                    writer.write(chunk)
                    await writer.drain()
                    sent += len(chunk)
                async with asyncio.timeout(max(0.1, until - time.monotonic())):
                    stats[f"HTTP {await response}"] += 1
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                stats["reset or unanswered"] += 1
            finally:
                stats["MB sent"] += sent // (1024 * 1024)
                response.cancel()
                writer.close()

    await asyncio.gather(*(worker(i) for i in range(LARGE_CONNECTIONS)))


def _hello_factory(node_key: bytes, operator_key: bytes) -> Callable[[], bytes]:
    """ClientHellos naming the trusted operator key, as anyone who knows it can write them
    (the key is public; its private half is needed only for the Finish)."""
    stranger = Identity.generate()
    operator_digest = hashlib.sha256(operator_key).digest()

    def hello() -> bytes:
        fields = decode_message(ClientHandshake(stranger, node_key).hello(), CLIENT_HELLO)
        fields[-2] = operator_digest
        return encode_message(CLIENT_HELLO, fields)

    return hello


async def attack_hello(
    host: str, port: int, until: float, stats: Counter[str], node_key: bytes, operator_key: bytes
) -> None:
    fresh = _hello_factory(node_key, operator_key)
    captured = fresh()
    url = f"http://{host}:{port}{HANDSHAKE_PATH}"
    connector = aiohttp.TCPConnector(local_addr=(ATTACKER_ADDRESS, 0), limit=HELLO_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def post(body: bytes) -> tuple[int, bytes]:
            async with http.post(url, data=body) as response:
                return response.status, await response.read()

        async def worker(index: int) -> None:
            sent = 0
            while time.monotonic() < until:
                hello = captured if sent % 2 == 0 else fresh()
                sent += 1
                try:
                    status, body = await post(hello)
                    stats["hellos"] += 1
                    if status == 200 and body[:1] == bytes([HELLO_RETRY]):
                        stats["cookies received"] += 1
                        cookie = decode_message(body, HELLO_RETRY)[-1]
                        fields = decode_message(hello, CLIENT_HELLO)
                        status, body = await post(encode_message(CLIENT_HELLO, [*fields, cookie]))
                        stats["hellos"] += 1
                    if status == 200 and body[:1] == bytes([SERVER_HELLO]):
                        stats["signed ServerHellos"] += 1
                    elif status != 200:
                        stats[f"HTTP {status}"] += 1
                except (aiohttp.ClientError, OSError):
                    stats["connection errors"] += 1
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(worker(i) for i in range(HELLO_CONNECTIONS)))


async def attack_slowloris(host: str, port: int, until: float, stats: Counter[str]) -> None:
    lifetimes: list[float] = []
    live = 0

    async def one(index: int) -> None:
        nonlocal live
        await asyncio.sleep(index * 0.002)  # ramp up over two seconds
        while time.monotonic() < until:
            try:
                reader, writer = await _connect(host, port)
            except OSError:
                stats["connect failed"] += 1
                await asyncio.sleep(0.5)
                continue
            opened = time.monotonic()
            stats["connections opened"] += 1
            live += 1
            stats["most open at once"] = max(stats["most open at once"], live)
            head = f"POST {HANDSHAKE_PATH} HTTP/1.1\r\nHost: {host}\r\n"
            if index % 2:  # a slow body after a complete head
                head += "Content-Type: application/octet-stream\r\nContent-Length: 16000\r\n\r\n"
                drip = b"\x01"
            else:  # a head that never ends
                head += "X-Slow: "
                drip = b"a"
            closed = asyncio.ensure_future(reader.read(1))
            try:
                writer.write(head.encode())
                while time.monotonic() < until and not closed.done():
                    await asyncio.wait([closed], timeout=1.0)
                    if not closed.done():
                        writer.write(drip)
                if closed.done():
                    stats["closed by the agent"] += 1
                    lifetimes.append(time.monotonic() - opened)
            except OSError:
                stats["closed by the agent"] += 1
                lifetimes.append(time.monotonic() - opened)
            finally:
                live -= 1
                closed.cancel()
                writer.close()

    await asyncio.gather(*(one(i) for i in range(SLOWLORIS_CONNECTIONS)))
    if lifetimes:
        stats["median seconds before the agent closed one"] = round(statistics.median(lifetimes), 1)


async def attacker(args: argparse.Namespace) -> dict[str, Any]:
    _pin(0, args.cpu)
    host, port = args.target.rsplit(":", 1)
    until = time.monotonic() + args.seconds
    stats: Counter[str] = Counter()
    if args.attack == "large":
        await attack_large(host, int(port), until, stats)
    elif args.attack == "hello":
        node_key, operator_key = load_public_key(args.node_key), load_public_key(args.operator_key)
        await attack_hello(host, int(port), until, stats, node_key, operator_key)
    else:
        await attack_slowloris(host, int(port), until, stats)
    return dict(stats)


# --- the operator and the phases ------------------------------------------------------------


@dataclass
class Phase:
    name: str
    calls_ms: list[float] = field(default_factory=list)
    first_calls_ms: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    peak_rss_mb: float = 0.0
    agent_cpu_seconds: float = 0.0
    seconds: float = 0.0
    attacker: dict[str, Any] = field(default_factory=dict)


def _rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of the process so far."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _open_connections(pid: int) -> int:
    with contextlib.suppress(OSError):
        return sum(
            1
            for entry in os.scandir(f"/proc/{pid}/fd")
            if os.readlink(entry.path).startswith("socket:")
        )
    return -1


async def _timed(client: SecureAgentClient, into: list[float], phase: Phase) -> None:
    began = time.perf_counter()
    try:
        await client.call("health", {}, timeout=30)
    except AgentError as exc:
        phase.failures[exc.code] += 1
    into.append((time.perf_counter() - began) * 1000)


async def operator_phase(
    phase: Phase, seconds: float, pooled: SecureAgentClient, fresh: Callable[[], SecureAgentClient]
) -> None:
    """Back-to-back calls on the pooled session; every 1/FRESH_CLIENTS_PER_SECOND s a first
    call on a new client instead (handshake included)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    next_fresh = loop.time()
    while loop.time() < end:
        if loop.time() >= next_fresh:
            next_fresh += 1 / FRESH_CLIENTS_PER_SECOND
            client = fresh()
            try:
                await _timed(client, phase.first_calls_ms, phase)
            finally:
                await client.close()
        else:
            await _timed(pooled, phase.calls_ms, phase)


async def _watch_rss(pid: int, phase: Phase) -> None:
    while True:
        phase.peak_rss_mb = max(phase.peak_rss_mb, _rss_mb(pid))
        await asyncio.sleep(0.05)


async def run_phases(args: argparse.Namespace, keys: Path) -> tuple[list[Phase], dict[str, Any]]:
    operator, node_identity = Identity.generate(), Identity.generate()
    _, operator_pub = operator.save(keys / "operator")
    node_key, node_pub = node_identity.save(keys / "node")
    node = QuantumNode.model_validate({"metadata": {"name": "target"}, "spec": {"qubits": 4}})
    agent = await AgentProcess.start(node, node_key, [operator_pub])
    pid = agent.proc.pid
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    if pin:
        _pin(pid, 0)
        _pin(0, 0)
    info: dict[str, Any] = {"pinned": pin, "rss_start_mb": _rss_mb(pid)}

    def fresh() -> SecureAgentClient:
        return SecureAgentClient(agent.endpoint, operator, node_identity.public_key)

    pooled = fresh()
    phases: list[Phase] = []
    try:
        for _ in range(200):  # warm-up: sessions, code paths, allocator
            await pooled.call("health", {}, timeout=30)
        schedule = [p for _ in range(args.rounds) for a in args.attacks for p in ("idle", a)]
        for name in schedule:
            phase = Phase(name)
            child = None
            seconds = args.seconds
            if name == "slowloris":  # long enough to see the agent close half-open connections
                seconds = max(seconds, args.slowloris_seconds)
            if name != "idle":
                child = await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--attack",
                    name,
                    "--target",
                    agent.endpoint.removeprefix("http://"),
                    "--seconds",
                    str(seconds + args.ramp),
                    "--node-key",
                    str(node_pub),
                    "--operator-key",
                    str(operator_pub),
                    *(["--cpu", "1"] if pin else []),
                    stdout=subprocess.PIPE,
                )
                await asyncio.sleep(args.ramp)  # measure the attack in full swing
            watcher = asyncio.create_task(_watch_rss(pid, phase))
            cpu_before = _cpu_seconds(pid)
            try:
                await operator_phase(phase, seconds, pooled, fresh)
                phase.agent_cpu_seconds = _cpu_seconds(pid) - cpu_before
                phase.seconds = seconds
                if name == "slowloris":
                    phase.attacker["sockets the agent held at the end"] = _open_connections(pid)
                if child is not None:
                    out, _ = await child.communicate()
                    phase.attacker.update(json.loads(out or b"{}"))
            finally:
                watcher.cancel()
                if child is not None and child.returncode is None:
                    child.kill()
                    await child.wait()
            phases.append(phase)
            print(_phase_line(phase), file=sys.stderr, flush=True)
        info["rss_end_mb"] = _rss_mb(pid)
    finally:
        await pooled.close()
        await agent.stop()
    return phases, info


# --- report -----------------------------------------------------------------------------------


def _p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _phase_line(phase: Phase) -> str:
    return (
        f"{phase.name:>9}: {len(phase.calls_ms)} calls p99 {_p(phase.calls_ms, 0.99):.2f} ms, "
        f"{len(phase.first_calls_ms)} first calls p99 {_p(phase.first_calls_ms, 0.99):.1f} ms, "
        f"failures {dict(phase.failures)}, RSS {phase.peak_rss_mb:.0f} MB {phase.attacker}"
    )


def _pooled(phases: list[Phase], name: str) -> Phase:
    total = Phase(name)
    for phase in phases:
        if phase.name != name:
            continue
        total.calls_ms += phase.calls_ms
        total.first_calls_ms += phase.first_calls_ms
        total.failures.update(phase.failures)
        total.peak_rss_mb = max(total.peak_rss_mb, phase.peak_rss_mb)
        total.agent_cpu_seconds += phase.agent_cpu_seconds
        total.seconds += phase.seconds
        for key, value in phase.attacker.items():
            if key.startswith(("median", "most", "sockets")):  # not additive
                total.attacker[key] = max(total.attacker.get(key, 0), value)
            else:
                total.attacker[key] = total.attacker.get(key, 0) + value
    return total


def report(args: argparse.Namespace, phases: list[Phase], info: dict[str, Any]) -> str:
    idle = _pooled(phases, "idle")
    lines: list[str] = []
    out = lines.append
    out("## Operator latency, idle vs under attack\n")
    out(
        "| phase | calls | p50 ms | p99 ms | p99 / idle | first calls | first-call p50 ms "
        "| first-call p99 ms | p99 / idle | failed calls | agent CPU % | agent peak RSS MB |"
    )
    out("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    idle_p99, idle_first_p99 = _p(idle.calls_ms, 0.99), _p(idle.first_calls_ms, 0.99)
    verdicts = []
    for name in ("idle", *args.attacks):
        phase = idle if name == "idle" else _pooled(phases, name)
        p99, first_p99 = _p(phase.calls_ms, 0.99), _p(phase.first_calls_ms, 0.99)
        ratio, first_ratio = p99 / idle_p99, first_p99 / idle_first_p99
        if name != "idle":
            verdicts.append((name, ratio, first_ratio, sum(phase.failures.values())))
        out(
            f"| {name} | {len(phase.calls_ms)} | {_p(phase.calls_ms, 0.5):.2f} | {p99:.2f} "
            f"| {ratio:.2f}x | {len(phase.first_calls_ms)} | {_p(phase.first_calls_ms, 0.5):.1f} "
            f"| {first_p99:.1f} | {first_ratio:.2f}x | {sum(phase.failures.values())} "
            f"| {100 * phase.agent_cpu_seconds / max(phase.seconds, 1e-9):.0f} "
            f"| {phase.peak_rss_mb:.0f} |"
        )
    out("")
    for name, ratio, first_ratio, failed in verdicts:
        ok = ratio <= TARGET_RATIO and first_ratio <= TARGET_RATIO and failed == 0
        out(
            f"- {name}: p99 {ratio:.2f}x idle (pooled session), {first_ratio:.2f}x idle "
            f"(first call on a new client), {failed} failed calls: "
            f"**{'meets' if ok else 'MISSES'} the target** (<= {TARGET_RATIO:g}x, no failure)."
        )
    out("\n## What the attacker got (all phases of each attack, summed)\n")
    for name in args.attacks:
        attacker = _pooled(phases, name).attacker
        shown = ", ".join(f"{key} {value}" for key, value in sorted(attacker.items()))
        out(f"- {name}: {shown or 'nothing recorded'}")
    out(
        f"\nAgent RSS: {info['rss_start_mb']:.0f} MB after start, "
        f"{info.get('rss_end_mb', float('nan')):.0f} MB at the end.\n"
    )
    return "\n".join(lines)


def environment(pinned: bool, load: float) -> str:
    placement = (
        "agent and operator on CPU 0, attacker on CPU 1"
        if pinned
        else "processes not pinned to CPUs"
    )
    return (
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
        f"{os.cpu_count()} CPUs ({placement}), 1-minute load average at start {load:.1f}."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="A QPU agent's latency under attack")
    parser.add_argument("--rounds", type=int, default=3, help="idle/attack pairs per attack")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per phase")
    parser.add_argument(
        "--slowloris-seconds",
        type=float,
        default=25.0,
        help="measured seconds of a slowloris phase (beyond the agent's header timeout)",
    )
    parser.add_argument("--ramp", type=float, default=1.0, help="attack seconds before measuring")
    parser.add_argument("--attacks", nargs="+", choices=ATTACKS, default=list(ATTACKS))
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--output", help="also write the report (markdown) to this file")
    # The attacker child's arguments.
    parser.add_argument("--attack", choices=ATTACKS, help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--node-key", help=argparse.SUPPRESS)
    parser.add_argument("--operator-key", help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attack:
        print(json.dumps(asyncio.run(attacker(args))))
        return 0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory() as keys:
        phases, info = asyncio.run(run_phases(args, Path(keys)))
    body = report(args, phases, info)
    options = [
        f" --{name.replace('_', '-')} {' '.join(value) if isinstance(value, list) else value}"
        for name, value in vars(args).items()
        if name in ("rounds", "seconds", "slowloris_seconds", "ramp", "attacks")
        and value != parser.get_default(name)
    ]
    command = "PYTHONPATH=src python benchmarks/agent_under_attack.py" + "".join(options)
    document = (
        "# A QPU agent under attack\n\n"
        "A real `qorch qpu-agent` on 127.0.0.1; its operator calls `health` back to back on a "
        f"pooled session and, {FRESH_CLIENTS_PER_SECOND} times a second, on a fresh client "
        "(handshake included). An attacker process holding no key, bound to 127.0.0.2, "
        f"attacks in turn: `large` ({LARGE_CONNECTIONS} connections POSTing "
        f"{LARGE_BODY_BYTES // 2**20} MB bodies), `hello` ({HELLO_CONNECTIONS} connections "
        "of ClientHellos naming the operator's public key, half replayed, half fresh, "
        f"following any cookie round trip), `slowloris` ({SLOWLORIS_CONNECTIONS} connections "
        "dripping a request head or a handshake body a byte a second). Idle and attack "
        f"phases alternate, {args.rounds} rounds; an attack runs {args.ramp:g} s before its "
        "phase is measured. Percentiles are over all phases of a kind.\n\n"
        f"Reproduce: `{command}`\n\n"
        f"Machine: {environment(info['pinned'], load)}\n\n{body}\n"
    )
    print(document)
    if args.output:
        Path(args.output).write_text(document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
