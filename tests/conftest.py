"""Shared fixtures: real QPU agents as child processes on loopback, behind the PQ channel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qorch.api import QuantumNode
from qorch.channel.identity import Identity, encode_public_key
from qorch.local.agents import AgentProcess
from qorch.qpu.transport import SecureAgentClient

from .tpm_support import Swtpm


@dataclass
class OperatorKey:
    """The operator identity the test agents trust, and its files."""

    identity: Identity
    key_file: Path
    pub_file: Path


@dataclass
class RunningAgent:
    process: AgentProcess
    identity: Identity
    operator: OperatorKey
    node_file: Path | None = None
    key_file: Path | None = None  # the node's private key, which the agent follows

    def rotate_to(self, identity: Identity) -> None:
        """Replace the agent's key file with `identity` (atomically, as a kubelet updates a
        mounted Secret): the agent answers its next call with that key."""
        assert self.key_file is not None
        identity.save(self.key_file.with_suffix(""), force=True)

    @property
    def endpoint(self) -> str:
        return self.process.endpoint

    @property
    def public_key(self) -> str:
        """The node key as spec.identity.publicKey wants it."""
        return encode_public_key(self.identity.public_key)

    def client(self) -> SecureAgentClient:
        return SecureAgentClient(self.endpoint, self.operator.identity, self.identity.public_key)


@pytest.fixture(scope="session")
def operator_key(tmp_path_factory: pytest.TempPathFactory) -> OperatorKey:
    identity = Identity.generate()
    key_file, pub_file = identity.save(tmp_path_factory.mktemp("keys") / "operator")
    return OperatorKey(identity, key_file, pub_file)


@pytest.fixture
async def start_agent(
    operator_key: OperatorKey, tmp_path: Path
) -> AsyncIterator[Callable[..., Coroutine[Any, Any, RunningAgent]]]:
    """Start `qorch qpu-agent` processes with fresh node keys; all stop after the test."""
    started: list[AgentProcess] = []

    async def start(
        node: QuantumNode,
        *,
        reloadable: bool = False,
        trusted: list[Path] | None = None,
        link_files: list[Path] | None = None,
    ) -> RunningAgent:
        """With `reloadable`, the agent follows its manifest file (RunningAgent.node_file),
        as a real QPU's error rates drift without a restart. `trusted`: the files of
        operator keys it answers (the session's operator key by default). `link_files`:
        the physical state of its links, which it follows too."""
        identity = Identity.generate()
        stem = tmp_path / f"{node.metadata.name}-{len(started)}"
        key_file, _ = identity.save(stem)
        node_file = stem.with_suffix(".node.json") if reloadable else None
        process = await AgentProcess.start(
            node,
            key_file,
            trusted or [operator_key.pub_file],
            node_file=node_file,
            link_files=link_files,
        )
        started.append(process)
        return RunningAgent(process, identity, operator_key, node_file, key_file)

    yield start
    for process in started:
        await process.stop()


@pytest.fixture
def swtpm() -> Iterator[Callable[[], Swtpm]]:
    """Start TPM emulators (`swtpm`), each with its own state; all stop after the test."""
    started: list[Swtpm] = []

    def start() -> Swtpm:
        started.append(Swtpm())
        return started[-1].start()

    yield start
    for tpm in started:
        tpm.stop()
