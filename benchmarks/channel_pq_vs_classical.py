"""The post-quantum control channel against the same channel on X25519 + Ed25519.

Both variants run the identical protocol code (`qorch.channel`); only the suite
differs: ML-KEM-768 + X25519 with ML-DSA-65, versus X25519 with Ed25519 (the
benchmark-only baseline the channel itself refuses). Measurements alternate
between the two variants so both see the same machine load, and the report
gives medians and PQ/classical ratios.

    PYTHONPATH=src python benchmarks/channel_pq_vs_classical.py \
        [--output benchmarks/results/channel.md]

Targets: a mutual PQ handshake <= 5 ms; per-message cost <= 1.3x classical.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import cryptography
from aiohttp import web
from cryptography.hazmat.backends.openssl.backend import backend as openssl_backend

from qorch.channel.handshake import ClientHandshake, ServerHandshake
from qorch.channel.http import ChannelClient, ChannelServer
from qorch.channel.identity import Identity
from qorch.channel.provider import ClassicalProvider, CryptographyProvider
from qorch.channel.session import Session, SessionLimits
from qorch.channel.suite import Suite, classical_benchmark_suite, hybrid_suite

HANDSHAKE_TARGET_MS = 5.0
RATIO_TARGET = 1.3
UNBOUNDED = SessionLimits(max_age_seconds=10**6, max_messages=2**31)

# A realistic dispatch: a 1.3 KB OpenQASM program out, a 64-outcome histogram (1.1 KB) back.
CIRCUIT = "\n".join(
    ["OPENQASM 2.0;", 'include "qelib1.inc";', "qreg q[8];", "creg c[8];"]
    + [f"cx q[{i % 8}],q[{(i + 3) % 8}];\nrz(0.{i:03d}) q[{i % 8}];" for i in range(40)]
    + ["measure q -> c;"]
)
COUNTS = {format(i, "08b"): 1000 - 7 * i for i in range(64)}


@dataclass(frozen=True)
class Variant:
    name: str
    suite: Suite
    operator: Identity
    node: Identity


def _variants() -> tuple[Variant, Variant]:
    pq, classical = CryptographyProvider(), ClassicalProvider()
    return (
        Variant("PQ hybrid", hybrid_suite(pq), Identity.generate(pq), Identity.generate(pq)),
        Variant(
            "classical",
            classical_benchmark_suite(),
            Identity.generate(classical),
            Identity.generate(classical),
        ),
    )


@contextmanager
def _quiet_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _interleaved(samplers: list[Callable[[], float]], rounds: int) -> list[list[float]]:
    """Run the samplers in turn, `rounds` times: every variant sees the same load."""
    results: list[list[float]] = [[] for _ in samplers]
    with _quiet_gc():
        for _ in range(rounds):
            for index, sample in enumerate(samplers):
                results[index].append(sample())
    return results


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


# --- sans-IO: handshake and records -----------------------------------------------------------


def _handshake(variant: Variant, server: ServerHandshake) -> tuple[Session, Session, list[int]]:
    client = ClientHandshake(
        variant.operator, variant.node.public_key, suite=variant.suite, limits=UNBOUNDED
    )
    hello = client.hello()
    server_hello, pending = server.respond(hello)
    finish, client_session = client.finish(server_hello)
    return client_session, pending.complete(finish), [len(hello), len(server_hello), len(finish)]


def _server(variant: Variant) -> ServerHandshake:
    return ServerHandshake(
        variant.node, [variant.operator.public_key], suite=variant.suite, limits=UNBOUNDED
    )


def bench_handshake(variants: tuple[Variant, ...], rounds: int) -> dict[str, Any]:
    servers = [_server(variant) for variant in variants]

    def sampler(variant: Variant, server: ServerHandshake) -> Callable[[], float]:
        def sample() -> float:
            start = time.perf_counter()
            _handshake(variant, server)
            return (time.perf_counter() - start) * 1000

        return sample

    for variant, server in zip(variants, servers, strict=True):
        _handshake(variant, server)  # warm up
    samples = _interleaved([sampler(v, s) for v, s in zip(variants, servers, strict=True)], rounds)
    sizes = [_handshake(v, s)[2] for v, s in zip(variants, servers, strict=True)]
    return {"samples_ms": samples, "sizes": sizes}


def bench_records(variants: tuple[Variant, ...], size: int, rounds: int, batch: int) -> list[float]:
    """Microseconds per message for seal (sender) + open (receiver) of `size` bytes."""
    payload = os.urandom(size)
    pairs = [_handshake(variant, _server(variant))[:2] for variant in variants]

    def sampler(client: Session, server: Session) -> Callable[[], float]:
        def sample() -> float:
            start = time.perf_counter()
            for _ in range(batch):
                server.open(client.seal(payload))
            return (time.perf_counter() - start) / batch * 1e6

        return sample

    samples = _interleaved([sampler(client, server) for client, server in pairs], rounds)
    return [statistics.median(values) for values in samples]


# --- loopback HTTP ----------------------------------------------------------------------------


async def _echo_counts(op: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"counts": COUNTS, "shots": payload["shots"]}


async def _plain_run(request: web.Request) -> web.Response:
    """The current plain transport: POST /v1/{op} with JSON, no channel."""
    payload = await request.json()
    return web.json_response(await _echo_counts("run", payload))


async def bench_http(
    variants: tuple[Variant, ...], calls: int, first_calls: int
) -> dict[str, list[float]]:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    servers = []
    for index, variant in enumerate(variants):
        server = ChannelServer(
            variant.node,
            [variant.operator.public_key],
            _echo_counts,
            suite=variant.suite,
            prefix=f"/{index}/v1/channel",
        )
        server.add_routes(app)
        servers.append(server)
    app.router.add_post("/v1/run", _plain_run)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    payload = {"circuit": CIRCUIT, "shots": 4000}
    try:
        async with aiohttp.ClientSession() as http:

            def client(index: int) -> ChannelClient:
                variant = variants[index]
                return ChannelClient(
                    f"{base}/{index}",
                    variant.operator,
                    variant.node.public_key,
                    suite=variant.suite,
                    http=http,
                )

            steady = [client(index) for index in range(len(variants))]

            async def plain_call() -> None:
                async with http.post(f"{base}/v1/run", json=payload) as response:
                    await response.json()

            timings: dict[str, list[float]] = {f"{v.name} call": [] for v in variants}
            timings["plain JSON call"] = []
            firsts: dict[str, list[float]] = {f"{v.name} first call": [] for v in variants}
            for index in range(len(variants)):
                await steady[index].call("run", payload)  # handshake + warm-up
            await plain_call()
            with _quiet_gc():
                for _ in range(calls):
                    for index, variant in enumerate(variants):
                        start = time.perf_counter()
                        await steady[index].call("run", payload)
                        timings[f"{variant.name} call"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    await plain_call()
                    timings["plain JSON call"].append(time.perf_counter() - start)
                for _ in range(first_calls):
                    for index, variant in enumerate(variants):
                        fresh = client(index)
                        start = time.perf_counter()
                        await fresh.call("run", payload)
                        firsts[f"{variant.name} first call"].append(time.perf_counter() - start)
                        await fresh.close()
    finally:
        await runner.cleanup()
    return {name: [t * 1000 for t in values] for name, values in (timings | firsts).items()}


# --- report -----------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def report(args: argparse.Namespace) -> str:
    variants = _variants()
    pq, classical = variants
    lines: list[str] = []
    out = lines.append

    handshake = bench_handshake(variants, args.handshakes)
    pq_hs, cl_hs = handshake["samples_ms"]
    pq_median, cl_median = statistics.median(pq_hs), statistics.median(cl_hs)
    out("## Mutual handshake (sans-IO, both sides' CPU, one process)\n")
    out("| suite | median ms | p90 ms | ClientHello / ServerHello / Finish bytes |")
    out("|---|---:|---:|---|")
    for variant, samples, sizes in zip(
        variants, handshake["samples_ms"], handshake["sizes"], strict=True
    ):
        out(
            f"| {variant.name} | {statistics.median(samples):.2f} | {_p90(samples):.2f} "
            f"| {' / '.join(map(str, sizes))} |"
        )
    out(
        f"\nPQ / classical: **{pq_median / cl_median:.1f}x**; PQ median {pq_median:.2f} ms "
        f"vs target <= {HANDSHAKE_TARGET_MS:.0f} ms: "
        f"**{_verdict(pq_median <= HANDSHAKE_TARGET_MS)}**.\n"
    )

    out("## Per message: seal + open of one record (AES-256-GCM, sans-IO)\n")
    out("| payload | PQ hybrid us | classical us | PQ / classical |")
    out("|---|---:|---:|---:|")
    record_ratios = []
    for size, label in ((1024, "1 KiB"), (64 * 1024, "64 KiB")):
        pq_us, cl_us = bench_records(variants, size, args.record_rounds, args.record_batch)
        record_ratios.append(pq_us / cl_us)
        out(f"| {label} | {pq_us:.1f} | {cl_us:.1f} | {pq_us / cl_us:.2f}x |")
    out(
        f"\nWorst ratio {max(record_ratios):.2f}x vs target <= {RATIO_TARGET}x: "
        f"**{_verdict(max(record_ratios) <= RATIO_TARGET)}**.\n"
    )

    http = asyncio.run(bench_http(variants, args.http_calls, args.first_calls))
    out(
        "## Loopback HTTP: one dispatch call (1.3 KB of OpenQASM out, 1.1 KB of counts back; "
        "client and node in one process)\n"
    )
    out("| call | median ms | p90 ms |")
    out("|---|---:|---:|")
    for name, values in http.items():
        out(f"| {name} | {statistics.median(values):.3f} | {_p90(values):.3f} |")
    pq_call = statistics.median(http[f"{pq.name} call"])
    cl_call = statistics.median(http[f"{classical.name} call"])
    plain = statistics.median(http["plain JSON call"])
    out(
        f"\nSteady-state call PQ / classical: **{pq_call / cl_call:.2f}x** "
        f"(target <= {RATIO_TARGET}x: **{_verdict(pq_call / cl_call <= RATIO_TARGET)}**). "
        f"Channel cost over the plain JSON transport: PQ {1000 * (pq_call - plain):+.0f} us, "
        f"classical {1000 * (cl_call - plain):+.0f} us per call.\n"
    )
    pq_first = statistics.median(http[f"{pq.name} first call"])
    cl_first = statistics.median(http[f"{classical.name} first call"])
    out(
        f"First call on a new client (two handshake round trips + the call): PQ "
        f"{pq_first:.2f} ms, classical {cl_first:.2f} ms. A session then carries up to "
        "10,000 calls or 10 minutes (the defaults of `SessionLimits`).\n"
    )
    return "\n".join(lines)


def environment() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"Python {platform.python_version()}, cryptography {cryptography.__version__} "
        f"({openssl_backend.openssl_version_text()}), aiohttp {aiohttp.__version__}, "
        f"{os.cpu_count()} CPUs, 1-minute load average at start {load:.1f}."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="PQ hybrid channel vs classical, side by side")
    parser.add_argument("--handshakes", type=int, default=300, help="handshakes per suite")
    parser.add_argument("--record-rounds", type=int, default=30, help="batches per payload size")
    parser.add_argument("--record-batch", type=int, default=200, help="messages per batch")
    parser.add_argument("--http-calls", type=int, default=400, help="steady-state calls each")
    parser.add_argument("--first-calls", type=int, default=40, help="fresh-client calls each")
    parser.add_argument("--output", help="also write the report (markdown) to this file")
    args = parser.parse_args()
    env = environment()
    body = report(args)
    options = [
        f" --{name.replace('_', '-')} {value}"
        for name, value in vars(args).items()
        if name != "output" and value != parser.get_default(name)
    ]
    command = "PYTHONPATH=src python benchmarks/channel_pq_vs_classical.py" + "".join(options)
    document = (
        "# Control channel: post-quantum hybrid vs classical\n\n"
        "Same protocol code, two suites: ML-KEM-768 + X25519 key agreement with ML-DSA-65 "
        "signatures (the channel's only suite) against X25519 with Ed25519 (a baseline the "
        "channel refuses). Runs alternate between the suites so both see the same load; "
        "figures are medians.\n\n"
        f"Reproduce: `{command}`\n\n"
        f"Machine: {env}\n\n{body}"
    )
    print(document)
    if args.output:
        with open(args.output, "w") as file:
            file.write(document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
