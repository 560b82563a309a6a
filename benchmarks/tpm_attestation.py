"""What TPM attestation costs: enrolment, an agent's start, a quote, and a node check with
and without the challenge, on swtpm (a software TPM 2.0) with tpm2-tools.

    PYTHONPATH=src python benchmarks/tpm_attestation.py \
        [--output benchmarks/results/tpm_attestation.md]

The node checks run against an in-process agent over the real channel on loopback; every
TPM command is its own tpm2-tools process, as in the agent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from qorch.api import QuantumNode
from qorch.channel.attestation import qualifying_data, verify_quote
from qorch.channel.identity import Identity, encode_public_key
from qorch.pipeline.resources import check_node
from qorch.qpu.agent import QpuAgent, build_app
from qorch.qpu.attestor import Attestor, enroll
from qorch.qpu.tpm import Tpm, code_measurement
from qorch.qpu.transport import SecureAgentClient

ROUNDS = 30


def start_swtpm(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    (folder / "state").mkdir()
    sock = folder / "tpm.sock"
    proc = subprocess.Popen(
        [
            *("swtpm", "socket", "--tpm2", "--tpmstate", f"dir={folder / 'state'}"),
            *("--server", f"type=unixio,path={sock}", "--ctrl", f"type=unixio,path={sock}.ctrl"),
            *("--flags", "not-need-init,startup-clear"),
        ],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not Path(f"{sock}.ctrl").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("swtpm did not start")
        time.sleep(0.02)
    return proc, f"swtpm:path={sock}"


def timed(work: Callable[[], object], rounds: int = ROUNDS) -> list[float]:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        work()
        times.append((time.perf_counter() - began) * 1000)
    return times


async def timed_async(work: Callable[[], Awaitable[object]], rounds: int = ROUNDS) -> list[float]:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        await work()
        times.append((time.perf_counter() - began) * 1000)
    return times


def row(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"| {name} | {_ms(statistics.median(times))} | {_ms(p90)} | {len(times)} |"


def _ms(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.3f}"


async def node_checks(tcti: str, folder: Path) -> list[str]:
    operator = Identity.generate()
    manifest = {"metadata": {"name": "bench"}, "spec": {"qubits": 2}}
    node_file = folder / "checked-node.json"
    node_file.write_text(QuantumNode.model_validate(manifest).model_dump_json(by_alias=True))
    identity = Identity.generate()
    tpm = Tpm(tcti)
    enrolment = enroll(tpm, identity, node_file, folder / "checked.sealed")
    attestor, unsealed = Attestor.start(tpm, folder / "checked.sealed", node_file)
    agent = QpuAgent(QuantumNode.model_validate(manifest), node_file, attestor=attestor)
    runner = web.AppRunner(build_app(agent, unsealed, [operator.public_key]))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    endpoint = f"http://127.0.0.1:{port}"
    plain = {
        **manifest,
        "spec": {**manifest["spec"], "backend": {"type": "external", "endpoint": endpoint}},
    }
    plain["spec"]["identity"] = {"publicKey": encode_public_key(identity.public_key)}
    attested = {**plain, "spec": {**plain["spec"], "identity": enrolment.identity_fragment()}}
    client = SecureAgentClient(endpoint, operator, identity.public_key)
    rows = []
    try:
        for name, body in (
            ("node check, pinned key only", plain),
            ("node check, with TPM quote", attested),
        ):
            node = QuantumNode.model_validate(body)
            status = await check_node(node, client, endpoint, 0)
            assert status.phase == "Ready", status.conditions
            rows.append(
                row(name, await timed_async(lambda n=node: check_node(n, client, endpoint, 0)))
            )
    finally:
        await client.close()
        await runner.cleanup()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="write the Markdown report here")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    folder = Path(tempfile.mkdtemp(prefix="swtpm-"))
    proc, tcti = start_swtpm(folder)
    try:
        tpm = Tpm(tcti)
        identity = Identity.generate()
        node_file = folder / "node.json"
        node_file.write_text('{"metadata": {"name": "bench"}, "spec": {"qubits": 2}}')
        sealed = folder / "node.sealed"
        rows = [
            row(
                "enrolment (EK, AK, credential activation, seal)",
                timed(lambda: enroll(tpm, identity, node_file, sealed), 5),
            ),
            row("code measurement (hash of the qorch package)", timed(code_measurement)),
            row(
                "agent start: measure PCR 23 + unseal",
                timed(lambda: Attestor.start(tpm, sealed, node_file), 10),
            ),
        ]
        ak = enroll(tpm, identity, node_file, sealed).ak_public
        Attestor.start(tpm, sealed, node_file)
        key, nonce = identity.public_key, os.urandom(32)
        rows.append(
            row(
                "tpm2_quote of PCR 23 (with flushes)",
                timed(lambda: tpm.quote(qualifying_data(nonce, key))),
            )
        )
        message, signature, pcr = tpm.quote(qualifying_data(nonce, key))
        rows.append(
            row(
                "verify_quote (parse + RSA verify)",
                timed(
                    lambda: verify_quote(
                        message=message, signature=signature, ak_pem=ak, nonce=nonce,
                        public_key=key, expected_pcrs={23: pcr},
                    ),
                    200,
                ),
            )
        )  # fmt: skip
        rows += asyncio.run(node_checks(tcti, folder))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    tools = subprocess.run(
        ["tpm2_quote", "--version"], capture_output=True, text=True
    ).stdout.strip()
    swtpm = subprocess.run(["swtpm", "--version"], capture_output=True, text=True).stdout.strip()
    report = "\n".join(
        [
            "# TPM attestation: what it costs",
            "",
            "swtpm (software TPM 2.0) over a Unix socket, tpm2-tools as one process per command,"
            " as the agent runs them; node checks over the real channel on loopback against an"
            " in-process agent. Medians and p90 in milliseconds.",
            "",
            "Reproduce: `PYTHONPATH=src python benchmarks/tpm_attestation.py`",
            "",
            f"Machine: Python {platform.python_version()}, {os.cpu_count()} CPUs, 1-minute load"
            f" average at start {load:.1f};"
            f" {swtpm}; {tools}.",
            "",
            "| step | median ms | p90 ms | runs |",
            "|---|---:|---:|---:|",
            *rows,
            "",
        ]
    )
    print(report)
    if args.output:
        Path(args.output).write_text(report)


if __name__ == "__main__":
    sys.exit(main())
