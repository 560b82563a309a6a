"""What the pipeline and a QPU agent say to each other: every operation's request and reply.

A call on the channel (qorch.channel) carries an operation's name as the envelope's `op`
and its request's fields as the `payload`; the reply is the operation's reply model. Field
names on the wire are camelCase. A field left out of a request means its default, and
fields an agent does not know are ignored, so either side may be newer.

    op          request            reply
    run         RunRequest         RunResult, or RunProgress when waitSeconds ran out
    wait        WaitRequest        the same
    cancel      CancelRequest      CancelReply
    health      HealthRequest      HealthReply
    calibrate   CalibrateRequest   CalibrationReply
    probe_link  ProbeLinkRequest   ProbeLinkReply
    echo        EchoRequest        EchoReply
    attest      AttestRequest      AttestReply
    link_latency LinkLatencyRequest LinkLatencyReply

An LOCC wire cut adds one operation between two agents, on their own channel (a sender
agent to a receiving agent, never through the operator; qorch.qpu.peer), and measuring a
link's classical latency another (the measuring agent to the answering one):

    peer_bits   PeerBitsRequest    PeerBitsReply
    peer_echo   PeerEchoRequest    PeerEchoReply

The agent reads a request with `parse_request`, which refuses a malformed one with a
BadRequest naming the field (`run.shots: Input should be greater than 0`); a caller sends
one with `ask`, which reads the reply into its model. A refusal or a failure travels as an
`AgentError`, whose code is an `ErrorCode`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Mapping
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, Protocol, Self, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel


class Op(StrEnum):
    """The operations an agent serves."""

    RUN = "run"
    WAIT = "wait"
    CANCEL = "cancel"
    HEALTH = "health"
    CALIBRATE = "calibrate"
    PROBE_LINK = "probe_link"
    ECHO = "echo"
    ATTEST = "attest"
    LINK_LATENCY = "link_latency"


#: The largest reply the operator reads of each operation, sealed: a node whose agent is its
#: tenant's to run (as its identity is) must not make the operator read and parse 64 MiB on
#: its event loop for a health check. Results and their progress (run, wait) grow with the
#: shots and keep the channel's own limit.
SMALL_REPLIES = (Op.CANCEL, Op.HEALTH, Op.CALIBRATE, Op.PROBE_LINK, Op.ECHO, Op.ATTEST)
MAX_REPLY_BYTES: dict[str, int] = {op: 1 << 20 for op in (*SMALL_REPLIES, Op.LINK_LATENCY)}


class PeerOp(StrEnum):
    """The operations an agent serves to other agents, on its peer channel only."""

    PEER_BITS = "peer_bits"
    PEER_ECHO = "peer_echo"


class ErrorCode(StrEnum):
    """The `code` of an AgentError, as sent on the wire."""

    # Sent by the agent.
    BAD_REQUEST = "BadRequest"  # the request does not fit its model; the message names the field
    UNKNOWN_OPERATION = "UnknownOperation"
    PROGRAM_REJECTED = "ProgramRejected"  # well formed, but not for this node (too wide, ...)
    EXECUTION_FAILED = "ExecutionFailed"
    CANCELLED = "Cancelled"  # the program was cancelled (job deleted or re-routed)
    UNKNOWN_PROGRAM = "UnknownProgram"  # a `wait` for a program the agent does not hold
    NO_TPM = "NoTpm"  # an `attest` to an agent that runs without a TPM
    TPM_FAILED = "TpmFailed"  # the TPM refused, or did not answer in time; the message says
    # A calibration or probe found the QPU held by a program step longer than it waits
    # (a noiseless program runs as one step): skipped, the last figures stand.
    BUSY = "Busy"
    # Found by the caller.
    TIMEOUT = "Timeout"
    UNREACHABLE = "Unreachable"
    IDENTITY_NOT_PINNED = "IdentityNotPinned"
    BAD_REPLY = "BadReply"  # the reply does not fit its model
    # An LOCC exchange between two agents (qorch.qpu.peer) failed; the job re-routes.
    PEER_MESSAGE_MISSING = "PeerMessageMissing"  # a classical message did not come in time
    PEER_BAD_SIGNATURE = "PeerBadSignature"  # not signed by the sender the operator named
    PEER_OUT_OF_ORDER = "PeerOutOfOrder"  # a message's sequence number is not the next one
    PEER_UNREACHABLE = "PeerUnreachable"  # the receiving agent did not take the messages


class AgentError(Exception):
    """The agent answered with an error, or could not be reached; `code` says which: an
    ErrorCode, or the channel's own refusal (PeerKeyMismatch, UntrustedPeer, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# Errors named in one refusal; more would only lengthen it.
MAX_ERRORS_NAMED = 5


def field_errors(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> str:
    """`where: what` for each error, `where` the dotted path of the wire names. The input is
    left out: it may be a circuit."""
    return "; ".join(
        f"{'.'.join(str(p) for p in (*prefix, *e['loc'])) or '(root)'}: {e['msg']}"
        for e in exc.errors()[:MAX_ERRORS_NAMED]
    )


class Message(BaseModel):
    """A request or a reply: camelCase on the wire, snake_case in code, checked strictly (a
    boolean is no number, a string no count)."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, strict=True, frozen=True
    )

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _absent(value: Any) -> bool:
    return value is None


def omitted(**constraints: Any) -> Any:
    """A field that is left off the wire when None (optional, or one of two alternatives)."""
    return Field(default=None, exclude_if=_absent, **constraints)


ProgramId = Annotated[str, Field(min_length=1)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Counts = dict[str, int]

ReplyT = TypeVar("ReplyT", bound=Message)


class Request(Message, Generic[ReplyT]):
    """A request whose reply, as `ask` returns it, is a ReplyT. The `op` field of each
    request names its operation; it travels in the envelope, not in the payload."""

    @classmethod
    def operation(cls) -> Op:
        return cls.model_fields["op"].default  # type: ignore[no-any-return]

    @classmethod
    def reply_model(cls) -> type[ReplyT]:
        """ReplyT, as the class was declared (`class HealthRequest(Request[HealthReply])`)."""
        for base in cls.__mro__:
            args = getattr(base, "__pydantic_generic_metadata__", {}).get("args")
            if args:
                return args[0]  # type: ignore[no-any-return]
        raise TypeError(f"{cls.__name__} does not name its reply")

    @classmethod
    def from_wire(cls, payload: Mapping[str, Any]) -> Self:
        """This request from its payload; a BadRequest AgentError naming the field if it does
        not fit."""
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise AgentError(ErrorCode.BAD_REQUEST, field_errors(exc, (cls.operation(),))) from None


# -- run and wait ----------------------------------------------------------------------------


class LoccReceipt(Message):
    """What one side of an LOCC exchange saw, shot by shot in the order the sender sent the
    shots: per subexperiment the outcome of each shot (the sender's full bitstring, or the
    receiver's), the receiver's draw of each shot's shift, and the classical messages."""

    outcomes: list[list[str]]
    shifts: list[list[int]] | None = omitted()
    messages: int = Field(ge=0)
    # Sender: one-way time of each message, half its round trip less the receiver's hold.
    message_seconds: list[float] = Field(default_factory=list)


class RunResult(Message):
    """A finished program: `counts` of its one circuit, or `results`, the counts of each
    circuit of a batch, in order; an LOCC program adds its per-shot `locc` receipt."""

    program_id: ProgramId
    node: str
    shots: int
    transpile_seconds: float
    simulate_seconds: float
    counts: Counts | None = omitted()
    results: list[Counts] | None = omitted()
    locc: LoccReceipt | None = omitted()

    @model_validator(mode="after")
    def _one_of(self) -> RunResult:
        if (self.counts is None) == (self.results is None):
            raise ValueError("exactly one of counts and results is needed")
        return self

    @property
    def runs(self) -> list[Counts]:
        """The counts of each circuit the program ran."""
        return self.results if self.results is not None else [self.counts or {}]


class RunProgress(Message):
    """A program not finished when the call's waitSeconds ran out."""

    program_id: ProgramId
    node: str
    pending: Literal[True] = True
    state: Literal["Queued", "Running"]
    shots_done: int
    shots_total: int


def _run_reply_kind(value: Any) -> str:
    pending = value.get("pending") if isinstance(value, Mapping) else isinstance(value, RunProgress)
    return "progress" if pending is True else "result"


RunReply = Annotated[
    Annotated[RunResult, Tag("result")] | Annotated[RunProgress, Tag("progress")],
    Discriminator(_run_reply_kind),
]
RUN_REPLY: TypeAdapter[RunResult | RunProgress] = TypeAdapter(RunReply)


class LoccSend(Message):
    """This program is the sending side of an LOCC wire cut: each circuit's first `wires`
    clbits are the cut wires' outcome, sent shot by shot, `chunk_shots` to a message, to
    the agent at `peer_endpoint` whose key is one of `peer_public_keys` (pinned, base64;
    two while the receiver's key rotates)."""

    role: Literal["send"] = "send"
    exchange: ProgramId
    peer_endpoint: str = Field(pattern=r"^https?://")
    peer_public_keys: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, max_length=4)
    wires: int = Field(gt=0, le=8)
    chunk_shots: int = Field(default=1024, gt=0)
    wait_seconds: Seconds = 30.0


class LoccReceive(Message):
    """This program is the receiving side: the circuits are d = 2^wires prepared variants
    per subexperiment; each received shot with outcome i runs variant i xor r, the shifts r
    of a message's shots spread in proportion to `shift_probabilities`. Messages must be
    signed by one of `peer_public_keys` (the sender's pinned keys, base64) and arrive in
    order, each within `wait_seconds`."""

    role: Literal["receive"] = "receive"
    exchange: ProgramId
    peer_public_keys: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, max_length=4)
    wires: int = Field(gt=0, le=8)
    shift_probabilities: list[Annotated[float, Field(ge=0, le=1)]]
    wait_seconds: Seconds = 30.0

    @model_validator(mode="after")
    def _one_per_shift(self) -> LoccReceive:
        if len(self.shift_probabilities) != 2**self.wires:
            raise ValueError(f"shiftProbabilities needs {2**self.wires} entries")
        if abs(sum(self.shift_probabilities) - 1) > 1e-9:
            raise ValueError("shiftProbabilities must sum to 1")
        return self


LoccRole = Annotated[LoccSend | LoccReceive, Field(discriminator="role")]


class RunRequest(Request[RunResult]):
    """Run a program once per id: one circuit (`circuit`) or a batch (`circuits`, e.g. cut
    subexperiments), each a QPY circuit in base64 (qorch.qpu.circuits). With `noise`, a
    program spanning several nodes, co-simulated under that composite noise description.
    With `waitSeconds`, the agent answers after at most that long, with the result or the
    program's progress; without it, with the result only. `ask` returns the result: the
    transport follows the progress."""

    op: Literal[Op.RUN] = Field(default=Op.RUN, exclude=True)
    program_id: ProgramId
    shots: int = Field(gt=0)
    circuit: str | None = omitted()
    circuits: list[str] | None = omitted(min_length=1)
    noise: dict[str, Any] | None = omitted()
    seed: int | None = omitted()
    wait_seconds: Seconds | None = omitted()
    locc: LoccRole | None = omitted()

    @model_validator(mode="after")
    def _one_of(self) -> RunRequest:
        if (self.circuit is None) == (self.circuits is None):
            raise ValueError("exactly one of circuit and circuits is needed")
        return self

    @property
    def encoded(self) -> list[str]:
        """The program's circuits, as sent."""
        return self.circuits if self.circuits is not None else [self.circuit or ""]


class WaitRequest(Request[RunResult]):
    """Follow a program sent earlier by `run`: its result once done, else after
    `waitSeconds` its progress. An UnknownProgram error when the agent does not hold it."""

    op: Literal[Op.WAIT] = Field(default=Op.WAIT, exclude=True)
    program_id: ProgramId
    wait_seconds: Seconds | None = omitted()


# -- cancel ----------------------------------------------------------------------------------


class CancelReply(Message):
    """Each id once, by what became of it."""

    cancelled: list[str] = Field(default_factory=list)
    unknown: list[str] = Field(default_factory=list)
    finished: list[str] = Field(default_factory=list)


class CancelRequest(Request[CancelReply]):
    """Stop programs: queued ones never run, a running one stops at its next chunk, and a
    `run` of any of these ids, now or later, fails with Cancelled."""

    op: Literal[Op.CANCEL] = Field(default=Op.CANCEL, exclude=True)
    program_ids: list[ProgramId]


# -- health and calibration ------------------------------------------------------------------


class HealthReply(Message):
    node: str
    qubits: int
    programs_run: int
    busy: bool
    uptime_seconds: float


class HealthRequest(Request[HealthReply]):
    op: Literal[Op.HEALTH] = Field(default=Op.HEALTH, exclude=True)


class CalibrationReply(Message):
    """The figures of the node's calibration circuits (qorch.qpu.calibration)."""

    node: str
    readout_error: float
    # p(1|0) and p(0|1); absent from agents older than asymmetric readout calibration.
    readout_error_0to1: float | None = None
    readout_error_1to0: float | None = None
    single_qubit_error: float
    two_qubit_error: float | None = None  # None on a node without a coupled pair
    fidelity: float
    error_rate: float
    seconds: float


class CalibrateRequest(Request[CalibrationReply]):
    op: Literal[Op.CALIBRATE] = Field(default=Op.CALIBRATE, exclude=True)


# -- links -----------------------------------------------------------------------------------


class ProbeLinkReply(Message):
    """`successes` heralded pairs out of `attempts`, each measured in ZZ or XX;
    `agreements` of them read the parity a perfect pair gives (absent from older agents).
    `source` says whose figures the pairs were made with: `linkState`, the link's physical
    state as the agent holds it (its link file), or `request`, the figures the request
    carried (an agent without a state for the link)."""

    measured_fidelity: float
    fidelity_std_error: float
    attempts: int = Field(gt=0)
    successes: int = Field(ge=0)
    mean_generation_seconds: float
    agreements: int | None = omitted(ge=0)
    source: Literal["linkState", "request"] = "request"

    @model_validator(mode="after")
    def _heralded(self) -> ProbeLinkReply:
        if self.successes > self.attempts:
            raise ValueError(f"{self.successes} successes out of {self.attempts} attempts")
        if self.agreements is not None and self.agreements > self.successes:
            raise ValueError(f"{self.agreements} agreements out of {self.successes} pairs")
        return self

    @property
    def success_rate(self) -> float:
        return self.successes / self.attempts


class ProbeLinkRequest(Request[ProbeLinkReply]):
    """Generate and measure Bell pairs of a link with these properties (co-simulated by the
    agent of one end), each end measured with its node's readout error."""

    op: Literal[Op.PROBE_LINK] = Field(default=Op.PROBE_LINK, exclude=True)
    fidelity: float = Field(gt=0.25, le=1)
    success_probability: float = Field(gt=0, le=1)
    generation_rate_hz: float = Field(gt=0, allow_inf_nan=False)
    pairs: int = Field(gt=0, le=100_000)
    readout_errors: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: [0.0, 0.0], min_length=2, max_length=2
    )
    # The link probed: an agent holding its physical state (qorch.qpu.link_state) makes the
    # pairs with that state rather than with the figures above.
    link: str | None = omitted(min_length=1, max_length=253)
    seed: int | None = omitted(ge=0)


class EchoReply(Message):
    """The request back, with the agent's receive and send times (ns since the epoch, the
    agent's clock; only their difference is used)."""

    payload: EchoRequest
    received_at_ns: int | None = None
    sent_at_ns: int | None = None


class EchoRequest(Request[EchoReply]):
    """A timestamped probe of the channel's latency (qorch.telemetry.feedforward)."""

    op: Literal[Op.ECHO] = Field(default=Op.ECHO, exclude=True)
    seq: int
    sent_at_ns: int | None = omitted()


EchoReply.model_rebuild()


class LinkLatencyReply(Message):
    """The measuring side: one-way times of the classical path to the peer agent, in
    seconds (half of each round trip less the time the peer held the echo). The answering
    side: none."""

    samples_seconds: list[Seconds] = Field(default_factory=list, max_length=100)


class LinkLatencyRequest(Request[LinkLatencyReply]):
    """Measure the classical path of a link agent to agent (qorch.qpu.peer), never through
    the operator. `answer`: admit the peer keys `peer_public_keys` for `exchange` for
    `wait_seconds`. `measure`: send `samples` echoes (after one warm-up) to the agent at
    `peer_endpoint` whose key is one of `peer_public_keys`."""

    op: Literal[Op.LINK_LATENCY] = Field(default=Op.LINK_LATENCY, exclude=True)
    exchange: ProgramId
    role: Literal["measure", "answer"]
    peer_public_keys: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, max_length=4)
    peer_endpoint: str | None = omitted(pattern=r"^https?://")
    samples: int = Field(default=5, gt=0, le=100)
    wait_seconds: Seconds = Field(default=10.0, le=60)

    @model_validator(mode="after")
    def _measure_has_a_peer(self) -> LinkLatencyRequest:
        if self.role == "measure" and self.peer_endpoint is None:
            raise ValueError("peerEndpoint is needed to measure")
        return self


# -- attestation -----------------------------------------------------------------------------

Base64 = Annotated[str, Field(min_length=1, max_length=8192, pattern=r"^[A-Za-z0-9+/]+={0,2}$")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class AttestReply(Message):
    """A TPM 2.0 quote of the agent's measurement PCRs (qorch.channel.attestation): the
    TPMS_ATTEST and its signature by the attestation key, in base64. `nonce`, `publicKey`
    (the ML-DSA key the quote binds) and `pcrs` (index -> hex value) are the agent's
    claims; they name what went wrong when the quote does not verify, nothing more."""

    quote: Base64
    signature: Base64
    nonce: Base64
    public_key: Base64
    pcrs: dict[str, Sha256Hex] = Field(default_factory=dict, max_length=24)


class AttestRequest(Request[AttestReply]):
    """Quote the measurement PCRs with qualifying data SHA-256(nonce || the agent's ML-DSA
    public key). A NoTpm error from an agent without a TPM; TpmFailed when the TPM refuses
    or does not answer in time."""

    op: Literal[Op.ATTEST] = Field(default=Op.ATTEST, exclude=True)
    nonce: Annotated[Base64, Field(min_length=24, max_length=88)]

    @property
    def nonce_bytes(self) -> bytes:
        return base64.b64decode(self.nonce)

    @model_validator(mode="after")
    def _nonce_decodes(self) -> AttestRequest:
        try:
            size = len(self.nonce_bytes)
        except binascii.Error:
            raise ValueError("nonce is not base64") from None
        if not 16 <= size <= 64:
            raise ValueError(f"nonce of {size} bytes (16 to 64)")
        return self


# -- between agents (LOCC) ------------------------------------------------------------------


class PeerBitsReply(Message):
    """The receiving agent took the message (ns since the epoch, its clock)."""

    seq: int
    received_at_ns: int
    sent_at_ns: int


class PeerBitsRequest(Request[PeerBitsReply]):
    """Measured cut-wire outcomes of consecutive shots of one subexperiment, one int per
    shot (bit j: wire j). `seq` counts the exchange's messages from 0; `last` marks its
    final one. `signature` is the sender's ML-DSA signature over `signed_bytes()`."""

    op: Literal[PeerOp.PEER_BITS] = Field(default=PeerOp.PEER_BITS, exclude=True)
    exchange: ProgramId
    seq: int = Field(ge=0)
    subexperiment: int = Field(ge=0)
    bits: list[Annotated[int, Field(ge=0)]] = Field(max_length=1_000_000)
    last: bool = False
    sent_at_ns: int | None = omitted()
    signature: str = ""

    def signed_bytes(self) -> bytes:
        """What the signature covers: every field but itself and the send time."""
        fields = self.model_dump(mode="json", by_alias=True, exclude={"signature", "sent_at_ns"})
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


class PeerEchoReply(Message):
    """The answering agent's receive and send times of an echo (ns since the epoch, its
    clock; only their difference is used)."""

    seq: int
    received_at_ns: int
    sent_at_ns: int


class PeerEchoRequest(Request[PeerEchoReply]):
    """One echo of a link latency measurement; `last` ends the exchange."""

    op: Literal[PeerOp.PEER_ECHO] = Field(default=PeerOp.PEER_ECHO, exclude=True)
    exchange: ProgramId
    seq: int = Field(ge=0)
    last: bool = False


PEER_REQUESTS: dict[str, type[PeerBitsRequest] | type[PeerEchoRequest]] = {
    PeerOp.PEER_BITS: PeerBitsRequest,
    PeerOp.PEER_ECHO: PeerEchoRequest,
}


# -- every request ---------------------------------------------------------------------------

AgentRequest = Annotated[
    RunRequest
    | WaitRequest
    | CancelRequest
    | HealthRequest
    | CalibrateRequest
    | ProbeLinkRequest
    | EchoRequest
    | AttestRequest
    | LinkLatencyRequest,
    Field(discriminator="op"),
]
_REQUEST: TypeAdapter[AgentRequest] = TypeAdapter(AgentRequest)
#: The request model of each operation.
REQUESTS: dict[Op, type[Request[Any]]] = {
    model.operation(): model for model in get_args(get_args(AgentRequest)[0])
}
#: The operations, derived from the request models (for labels and dispatch).
OPERATIONS: frozenset[str] = frozenset(REQUESTS)


def parse_request(op: str, payload: Mapping[str, Any]) -> AgentRequest:
    """The request of a channel call, or an AgentError: UnknownOperation, or BadRequest
    naming each field that does not fit (`run.shots: Input should be greater than 0`)."""
    if op not in OPERATIONS:
        raise AgentError(ErrorCode.UNKNOWN_OPERATION, f"unknown operation {op[:64]!r}")
    try:
        # The tag goes in beside the fields; the error paths then start with the operation.
        return _REQUEST.validate_python({**payload, "op": op})
    except ValidationError as exc:
        raise AgentError(ErrorCode.BAD_REQUEST, field_errors(exc)) from None


class Caller(Protocol):
    """Anything that sends a call to an agent (qorch.qpu.transport.AgentClient)."""

    def call(
        self, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> Awaitable[dict[str, Any]]: ...


async def ask(client: Caller, request: Request[ReplyT], *, timeout: float | None = None) -> ReplyT:
    """Send `request` and read its reply; a reply that does not fit its model is a BadReply
    AgentError naming the field."""
    op = request.operation()
    reply = await client.call(op, request.wire(), timeout=timeout)
    try:
        return request.reply_model().model_validate(reply)
    except ValidationError as exc:
        raise AgentError(ErrorCode.BAD_REPLY, field_errors(exc, (f"{op} reply",))) from None
