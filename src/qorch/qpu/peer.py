"""Agent to agent: the classical messages of an LOCC wire cut, sent directly, never through
the operator.

The operator names each side's peer in the `run` request (`RunRequest.locc`): the sender
gets the receiver's endpoint and pinned ML-DSA key, the receiver the sender's pinned key.
Each agent serves a second channel (the same post-quantum channel as the operator's, under
`PEER_PREFIX`) whose only operation is `peer_bits`, and which admits only the keys of
senders the operator named for a live exchange: a peer can never `run` anything, and the
operator's channel never carries `peer_bits`.

The channel authenticates a trusted peer; each message is also signed by the sender's
identity, so that it is bound to the exchange's pinned sender (the handler does not learn
which trusted key opened the session). Messages carry a sequence number from 0; the
receiver accepts exactly the next one (a repeat of the last one, as a retried call sends,
is acknowledged again and not used twice).

The same channel carries `peer_echo`, with which one agent of a link measures the latency
of the classical path to the other (`measure_latency`): the operator first has the
answering agent admit the measuring agent's pinned key for one exchange (`answer_echoes`),
then asks the measuring agent to echo; no message of the measurement passes the operator.

A receiver fails its program with a named ErrorCode, and never returns partial data, when a
message does not come within `wait_seconds` (PeerMessageMissing), is not signed by the
pinned sender (PeerBadSignature) or is not the next one (PeerOutOfOrder); a sender fails
with the receiver's code, or PeerUnreachable when the receiver does not take its messages
within `wait_seconds`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError
from qiskit import QuantumCircuit

from qorch.agent_protocol import (
    PEER_REQUESTS,
    AgentError,
    ErrorCode,
    LoccReceipt,
    LoccReceive,
    LoccSend,
    PeerBitsReply,
    PeerBitsRequest,
    PeerEchoReply,
    PeerEchoRequest,
    RunRequest,
    RunResult,
    field_errors,
)
from qorch.channel import (
    ChannelError,
    ChannelTimeout,
    RemoteError,
    decode_public_key,
    get_provider,
)
from qorch.channel.http import ChannelClient, ChannelServer, ServerLimits
from qorch.channel.identity import Identity
from qorch.channel.pins import KeyPins, PinnedKey

if TYPE_CHECKING:
    from qorch.telemetry.agent import AgentTelemetry

log = logging.getLogger(__name__)

PEER_PREFIX = "/v1/peer"
SIGNATURE_CONTEXT = b"qorch-locc-bits-v1"
# Between attempts to deliver a message the receiver is not ready for yet (its `run` may
# come after the sender's first message: both are sent at once).
RETRY_SECONDS = 0.1
# Codes a receiver refuses a message with that end the exchange (the sender fails with it).
_FATAL = {
    ErrorCode.PEER_BAD_SIGNATURE,
    ErrorCode.PEER_OUT_OF_ORDER,
    ErrorCode.PEER_MESSAGE_MISSING,
    ErrorCode.BAD_REQUEST,
}

RunCircuit = Callable[[QuantumCircuit, int, int | None], Awaitable[dict[str, int]]]


def expand_counts(counts: Mapping[str, int], rng: np.random.Generator) -> list[str]:
    """Counts as a list of shots in a random order (the shots of a circuit are exchangeable,
    so this is how they could have come)."""
    shots = [key for key in sorted(counts) for _ in range(int(counts[key]))]
    return [shots[i] for i in rng.permutation(len(shots))]


def stratified_shifts(
    shots: int, probabilities: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A shift for each shot, shift r on shots * p_r of them on average and within one of
    it always (systematic sampling), in a random order: the estimate stays unbiased, and
    no variance comes from how many shots each shift happened to get."""
    offset = rng.random()
    edges = np.ceil(np.concatenate([[0.0], np.cumsum(probabilities)]) * shots - offset)
    edges[0], edges[-1] = 0, shots
    counts = np.maximum(np.diff(edges).astype(np.int64), 0)
    counts[-1] = shots - counts[:-1].sum()
    return rng.permutation(np.repeat(np.arange(len(probabilities)), counts))


def cut_bits(outcome: str, wires: int) -> int:
    """The wires' outcome from a bitstring whose clbits 0..wires-1 are the cut wires."""
    flat = outcome.replace(" ", "")
    return int(flat[len(flat) - wires :], 2)


def sign_bits(message: PeerBitsRequest, identity: Identity) -> PeerBitsRequest:
    signature = identity.sign(message.signed_bytes(), SIGNATURE_CONTEXT)
    return message.model_copy(update={"signature": base64.b64encode(signature).decode()})


def signed_by(message: PeerBitsRequest, public_keys: Sequence[bytes]) -> bool:
    """Whether one of `public_keys` signed the message."""
    try:
        raw = base64.b64decode(message.signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    signed = message.signed_bytes()
    return any(get_provider().verify(k, raw, signed, SIGNATURE_CONTEXT) for k in public_keys)


def decode_keys(texts: Sequence[str], where: str = "run.locc.peerPublicKeys") -> tuple[bytes, ...]:
    """The pinned keys of a run request's `locc` (or of the request field `where`); a
    BadRequest naming the field if one is not a key."""
    try:
        return tuple(decode_public_key(text) for text in texts)
    except ValueError as exc:
        raise AgentError(ErrorCode.BAD_REQUEST, f"{where}: {exc}") from None


@dataclass
class _Inbound:
    """One exchange this agent receives: whose key signs it, and what came so far."""

    keys: tuple[bytes, ...]
    queue: asyncio.Queue[PeerBitsRequest | AgentError] = field(default_factory=asyncio.Queue)
    next_seq: int = 0
    last_accepted: bytes | None = None
    failed: AgentError | None = None
    echoes: bool = False  # a latency measurement's exchange: echoes only, no bits

    def fail(self, error: AgentError) -> AgentError:
        if self.failed is None:
            self.failed = error
            self.queue.put_nowait(error)
        return error


@dataclass
class PeerCounters:
    """What the agent's telemetry reports of its peer traffic."""

    sent: int = 0
    received: int = 0
    refused: int = 0
    message_seconds: list[float] = field(default_factory=list)


class PeerMessaging:
    """The agent's peer channel: a server for messages to it, clients for its own."""

    def __init__(
        self,
        identity: Identity | Callable[[], Identity],
        telemetry: AgentTelemetry | None = None,
        server_limits: ServerLimits | None = None,
    ) -> None:
        # The agent's current identity: a callable follows its key through a rotation.
        self._identity = identity if callable(identity) else lambda: identity
        self.telemetry = telemetry
        self.server = ChannelServer(
            self.identity,
            [],
            self._handle,
            prefix=PEER_PREFIX,
            server_limits=server_limits,
            refresh_keys=lambda: self.server.rekey(self.identity),
        )
        self.counters = PeerCounters()
        self._inbound: dict[str, _Inbound] = {}

    @property
    def identity(self) -> Identity:
        return self._identity()

    def add_routes(self, app: Any) -> None:
        self.server.add_routes(app)

    # -- receiving -------------------------------------------------------------------------

    def expect(self, exchange: str, sender_keys: tuple[bytes, ...]) -> _Inbound:
        """Admit the sender's keys and hold its messages for `exchange`."""
        if exchange in self._inbound:
            raise AgentError(ErrorCode.BAD_REQUEST, f"exchange {exchange} is already open")
        inbound = _Inbound(sender_keys)
        self._inbound[exchange] = inbound
        try:
            self._admit()
        except ValueError as exc:
            del self._inbound[exchange]
            raise AgentError(ErrorCode.BAD_REQUEST, f"run.locc.peerPublicKeys: {exc}") from None
        return inbound

    def close_exchange(self, exchange: str) -> None:
        """Forget the exchange; its sender is admitted no more unless another names it."""
        if self._inbound.pop(exchange, None) is not None:
            self._admit()

    def _admit(self) -> None:
        """The peer channel admits exactly the senders of the open exchanges."""
        self.server.trust({key for i in self._inbound.values() for key in i.keys})

    async def _handle(self, op: str, payload: dict[str, Any]) -> dict[str, Any]:
        received = time.time_ns()
        model = PEER_REQUESTS.get(op)
        if model is None:
            raise AgentError(ErrorCode.UNKNOWN_OPERATION, f"unknown peer operation {op[:64]!r}")
        message = model.from_wire(payload)
        inbound = self._inbound.get(message.exchange)
        if inbound is None:
            raise AgentError(
                ErrorCode.UNKNOWN_PROGRAM, f"no exchange {message.exchange} is open here"
            )
        if isinstance(message, PeerEchoRequest) or inbound.echoes:
            return self._echo(message, inbound, received)
        if inbound.failed is not None:
            raise inbound.failed
        if not signed_by(message, inbound.keys):
            self._refused()
            raise inbound.fail(
                AgentError(
                    ErrorCode.PEER_BAD_SIGNATURE,
                    f"message {message.seq} of exchange {message.exchange} is not signed by"
                    " the sender the operator named",
                )
            )
        if message.seq != inbound.next_seq:
            if (
                message.seq == inbound.next_seq - 1
                and inbound.last_accepted == message.signed_bytes()
            ):
                return PeerBitsReply(
                    seq=message.seq, received_at_ns=received, sent_at_ns=time.time_ns()
                ).wire()
            self._refused()
            raise inbound.fail(
                AgentError(
                    ErrorCode.PEER_OUT_OF_ORDER,
                    f"exchange {message.exchange}: message {message.seq} came where"
                    f" {inbound.next_seq} was due",
                )
            )
        inbound.next_seq += 1
        inbound.last_accepted = message.signed_bytes()
        inbound.queue.put_nowait(message)
        self.counters.received += 1
        self._report()
        return PeerBitsReply(
            seq=message.seq, received_at_ns=received, sent_at_ns=time.time_ns()
        ).wire()

    def _echo(
        self, message: PeerBitsRequest | PeerEchoRequest, inbound: _Inbound, received: int
    ) -> dict[str, Any]:
        if not (isinstance(message, PeerEchoRequest) and inbound.echoes):
            raise AgentError(
                ErrorCode.BAD_REQUEST,
                f"exchange {message.exchange} does not take {message.operation()}",
            )
        if message.last:
            self.close_exchange(message.exchange)
        return PeerEchoReply(
            seq=message.seq, received_at_ns=received, sent_at_ns=time.time_ns()
        ).wire()

    def _refused(self) -> None:
        self.counters.refused += 1
        self._report()

    def _report(self) -> None:
        if self.telemetry is not None:
            self.telemetry.peer_traffic(self.counters)

    async def receive(
        self,
        request: RunRequest,
        spec: LoccReceive,
        circuits: Sequence[QuantumCircuit],
        inbound: _Inbound,
        run: RunCircuit,
    ) -> tuple[list[dict[str, int]], LoccReceipt]:
        """Run the prepared variant of each shot as its message comes; every shot's outcome
        in the sender's order. `inbound` is from `expect`, called when the run came in."""
        d = 2**spec.wires
        if len(circuits) % d:
            raise AgentError(
                ErrorCode.BAD_REQUEST, f"run.circuits: {len(circuits)} is not a multiple of {d}"
            )
        subs = len(circuits) // d
        rng = np.random.default_rng(request.seed)
        probabilities = np.array(spec.shift_probabilities)
        outcomes: list[list[str]] = [[] for _ in range(subs)]
        shifts: list[list[int]] = [[] for _ in range(subs)]
        totals: list[Counter[str]] = [Counter() for _ in circuits]
        calls = 0
        while True:
            try:
                message = await asyncio.wait_for(inbound.queue.get(), spec.wait_seconds)
            except TimeoutError:
                raise inbound.fail(
                    AgentError(
                        ErrorCode.PEER_MESSAGE_MISSING,
                        f"exchange {spec.exchange}: message {inbound.next_seq} did not come"
                        f" within {spec.wait_seconds:g} s",
                    )
                ) from None
            if isinstance(message, AgentError):
                raise message
            if message.subexperiment >= subs or any(b >= d for b in message.bits):
                raise inbound.fail(
                    AgentError(
                        ErrorCode.BAD_REQUEST,
                        f"exchange {spec.exchange}: message {message.seq} names subexperiment"
                        f" {message.subexperiment} or outcomes beyond the {subs} x {d} variants",
                    )
                )
            bits = np.array(message.bits, dtype=np.int64)
            drawn = stratified_shifts(len(bits), probabilities, rng)
            prepared = bits ^ drawn
            results: list[str] = [""] * len(bits)
            for variant in sorted(set(prepared.tolist())):
                places = np.flatnonzero(prepared == variant)
                index = message.subexperiment * d + variant
                seed = None if request.seed is None else request.seed + calls * 1_000_003
                calls += 1
                counts = await run(circuits[index], len(places), seed)
                totals[index].update(counts)
                for place, outcome in zip(places, expand_counts(counts, rng), strict=True):
                    results[place] = outcome
            outcomes[message.subexperiment].extend(results)
            shifts[message.subexperiment].extend(int(r) for r in drawn)
            if message.last:
                break
        short = [k for k, shots in enumerate(outcomes) if len(shots) != request.shots]
        if short:
            raise inbound.fail(
                AgentError(
                    ErrorCode.PEER_MESSAGE_MISSING,
                    f"exchange {spec.exchange} ended with {len(outcomes[short[0]])} shots of"
                    f" subexperiment {short[0]}, {request.shots} expected",
                )
            )
        receipt = LoccReceipt(outcomes=outcomes, shifts=shifts, messages=inbound.next_seq)
        return [dict(c) for c in totals], receipt

    # -- sending ---------------------------------------------------------------------------

    async def send(
        self,
        request: RunRequest,
        spec: LoccSend,
        circuits: Sequence[QuantumCircuit],
        run: RunCircuit,
    ) -> tuple[list[dict[str, int]], LoccReceipt]:
        """Run each circuit, then send its shots' cut-wire outcomes in order, a chunk to a
        message; the receiver works on one subexperiment while the next one runs here."""
        pins = KeyPins(tuple(PinnedKey(key) for key in decode_keys(spec.peer_public_keys)))
        client = ChannelClient(
            spec.peer_endpoint, self.identity, pins, prefix=PEER_PREFIX, timeout=None
        )
        rng = np.random.default_rng(request.seed)
        results: list[dict[str, int]] = []
        outcomes: list[list[str]] = []
        seconds: list[float] = []
        seq = 0
        try:
            for index, circuit in enumerate(circuits):
                seed = None if request.seed is None else request.seed + index * 1_000_003
                counts = await run(circuit, request.shots, seed)
                results.append(counts)
                shots = expand_counts(counts, rng)
                outcomes.append(shots)
                bits = [cut_bits(s, spec.wires) for s in shots]
                starts = range(0, len(bits), spec.chunk_shots)
                for start in starts:
                    last = index == len(circuits) - 1 and start == starts[-1]
                    message = PeerBitsRequest(
                        exchange=spec.exchange,
                        seq=seq,
                        subexperiment=index,
                        bits=bits[start : start + spec.chunk_shots],
                        last=last,
                        sent_at_ns=time.time_ns(),
                    )
                    seconds.append(
                        await self._deliver(client, sign_bits(message, self.identity), spec)
                    )
                    seq += 1
        finally:
            await client.close()
        return results, LoccReceipt(outcomes=outcomes, messages=seq, message_seconds=seconds)

    async def _deliver(
        self, client: ChannelClient, message: PeerBitsRequest, spec: LoccSend
    ) -> float:
        """Send one message until the receiver takes it, within `wait_seconds`; its one-way
        time: half the round trip less the time the receiver held it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + spec.wait_seconds
        last_error = "no attempt"
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AgentError(
                    ErrorCode.PEER_UNREACHABLE,
                    f"{spec.peer_endpoint} did not take message {message.seq} of exchange"
                    f" {spec.exchange} within {spec.wait_seconds:g} s (last: {last_error})",
                )
            started = time.perf_counter_ns()
            try:
                raw = await client.call(message.operation(), message.wire(), timeout=left)
            except RemoteError as exc:
                if exc.error_type in _FATAL:
                    raise AgentError(exc.error_type, exc.remote_message) from None
                last_error = f"{exc.error_type}: {exc.remote_message}"
            except (ChannelTimeout, ChannelError) as exc:
                # Not admitted yet (the receiver's run has not come), or not reachable.
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                elapsed = time.perf_counter_ns() - started
                reply = PeerBitsReply.model_validate(raw)
                held = max(0, reply.sent_at_ns - reply.received_at_ns)
                one_way = max(0, elapsed - min(held, elapsed)) / 2e9
                self.counters.sent += 1
                self.counters.message_seconds.append(one_way)
                self._report()
                return one_way
            await asyncio.sleep(min(RETRY_SECONDS, max(0.0, deadline - loop.time())))

    # -- the classical path's latency -----------------------------------------------------

    def answer_echoes(self, exchange: str, keys: tuple[bytes, ...], wait_seconds: float) -> None:
        """Admit `keys` for the echoes of `exchange`, until its last echo or `wait_seconds`."""
        self.expect(exchange, keys).echoes = True
        asyncio.get_running_loop().call_later(wait_seconds, self.close_exchange, exchange)

    async def measure_latency(
        self,
        exchange: str,
        endpoint: str,
        keys: tuple[bytes, ...],
        samples: int,
        wait_seconds: float,
    ) -> list[float]:
        """One-way seconds of `samples` echoes to the agent at `endpoint` (pinned to
        `keys`): half of each round trip less the time the peer held it. A first echo opens
        the channel session and is not counted (a handshake is no part of a feed-forward).
        PeerUnreachable when the peer does not answer within `wait_seconds` in all."""
        pins = KeyPins(tuple(PinnedKey(key) for key in keys))
        client = ChannelClient(endpoint, self.identity, pins, prefix=PEER_PREFIX, timeout=None)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        out: list[float] = []
        try:
            for seq in range(samples + 1):
                message = PeerEchoRequest(exchange=exchange, seq=seq, last=seq == samples)
                left = max(0.001, deadline - loop.time())
                started = time.perf_counter_ns()
                raw = await client.call(message.operation(), message.wire(), timeout=left)
                elapsed = time.perf_counter_ns() - started
                reply = PeerEchoReply.model_validate(raw)
                if reply.seq != seq:
                    raise AgentError(
                        ErrorCode.BAD_REPLY, f"echo {seq} answered with echo {reply.seq}"
                    )
                held = max(0, reply.sent_at_ns - reply.received_at_ns)
                if seq:
                    out.append(max(0, elapsed - min(held, elapsed)) / 2e9)
        except RemoteError as exc:
            raise AgentError(exc.error_type, exc.remote_message) from None
        except ValidationError as exc:
            raise AgentError(ErrorCode.BAD_REPLY, field_errors(exc, ("peer_echo reply",))) from None
        except (ChannelTimeout, ChannelError) as exc:
            raise AgentError(
                ErrorCode.PEER_UNREACHABLE,
                f"{endpoint} did not answer the echoes of exchange {exchange}:"
                f" {type(exc).__name__}: {exc}",
            ) from None
        finally:
            await client.close()
        return out

    # -- a program -------------------------------------------------------------------------

    async def execute(
        self,
        request: RunRequest,
        circuits: Sequence[QuantumCircuit],
        node: str,
        program: asyncio.Lock,
        run: RunCircuit,
    ) -> RunResult:
        """One side of an LOCC exchange as one program (holding `program`, the agent's
        one-program-at-a-time lock). A receiver admits its sender before it waits for the
        lock: messages may come while another program runs."""
        spec = request.locc
        assert spec is not None
        started = time.perf_counter()
        if isinstance(spec, LoccReceive):
            inbound = self.expect(spec.exchange, decode_keys(spec.peer_public_keys))
            try:
                async with program:
                    counts, receipt = await self.receive(request, spec, circuits, inbound, run)
            finally:
                self.close_exchange(spec.exchange)
        else:
            async with program:
                counts, receipt = await self.send(request, spec, circuits, run)
        return RunResult(
            program_id=request.program_id,
            node=node,
            shots=request.shots,
            transpile_seconds=0.0,
            simulate_seconds=round(time.perf_counter() - started, 6),
            results=counts,
            locc=receipt,
        )
