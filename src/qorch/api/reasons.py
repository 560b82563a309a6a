"""Condition types and reasons: the machine-readable vocabulary of every status."""

# DistributedJob condition types.
SANITIZED = "Sanitized"
AUTHORIZED = "Authorized"
PLANNED = "Planned"
DISPATCHED = "Dispatched"
VERIFIED = "Verified"
SUCCEEDED = "Succeeded"  # the job's summary condition
SUSPENDED = "Suspended"  # also the reason while spec.suspend holds the job

# QuantumNode / EntanglementLink summary condition, and the node's specific ones.
READY = "Ready"
REACHABLE = "Reachable"
CALIBRATED = "Calibrated"
# EntanglementLink: the verdict of its last probe of Bell pairs (False: Degraded).
PROBED = "Probed"

# Reasons.
POLICY_PASSED = "PolicyPassed"
CIRCUIT_UNAVAILABLE = "CircuitUnavailable"
# The ConfigMap holds a source other than the one spec pins (sha256) or admission passed.
CIRCUIT_CHANGED = "CircuitChanged"
# A signed job reads its circuit from a ConfigMap without pinning its digest.
CIRCUIT_NOT_PINNED = "CircuitNotPinned"
NOTHING_MEASURED = "NothingMeasured"
SIGNATURE_NOT_REQUIRED = "SignatureNotRequired"
SIGNATURE_VALID = "SignatureValid"
PLACED = "Placed"
UNSCHEDULABLE = "Unschedulable"
WAITING_FOR_CAPACITY = "WaitingForCapacity"
FIDELITY_BUDGET_NOT_MET = "FidelityBudgetNotMet"
PROGRAMS_SENT = "ProgramsSent"
PROGRAMS_DONE = "ProgramsDone"
NODE_FAILED = "NodeFailed"
TIMED_OUT = "TimedOut"
INTERNAL_ERROR = "InternalError"  # `qorch run` only: a bug ended the job, not the run
WITHIN_TOLERANCE = "WithinTolerance"
ABOVE_TOLERANCE = "AboveTolerance"
NOT_TRACTABLE = "NotClassicallyTractable"
IN_PROGRESS = "InProgress"
COMPLETED = "Completed"
REJECTED = "Rejected"
FAILED = "Failed"
AGENT_HEALTHY = "AgentHealthy"
AGENT_UNREACHABLE = "AgentUnreachable"
NODES_READY = "NodesReady"
NODE_MISSING = "NodeMissing"
NODE_NOT_READY = "NodeNotReady"
SPEC_MISMATCH = "SpecMismatch"
ERROR_RATE_ABOVE_THRESHOLD = "ErrorRateAboveThreshold"
WITHIN_THRESHOLD = "WithinThreshold"
CORDONED = "Cordoned"
FIDELITY_BELOW_SPEC = "FidelityBelowSpec"
VERIFICATION_FAILED = "VerificationFailed"
REROUTING = "Rerouting"
NO_HEALTHY_RESOURCES = "NoHealthyResources"
QUEUED = "Queued"
AGENT_FAILED = "AgentFailed"
ATTESTATION_FAILED = "AttestationFailed"
ATTESTATION_REQUIRED = "AttestationRequired"
RESUMING = "Resuming"
RESUMED = "Resumed"
REPLANNED = "Replanned"
# The node's identity (spec.identity and its rotation window).
INVALID_IDENTITY = "InvalidIdentity"
INVALID_SPEC = "InvalidSpec"  # valid to the API server's schema, not to the models
KEY_RETIRED = "KeyRetired"  # the node presented a key whose rotation window has ended
KEY_NOT_YET_VALID = "KeyNotYetValid"  # ... or has not begun
OUTPUT_TOO_WIDE = "OutputTooWide"
# A link's purification policy asked of pairs at fidelity <= 1/2, where it cannot converge.
PURIFICATION_CANNOT_CONVERGE = "PurificationCannotConverge"
# Preemption in the built-in reservation book.
PREEMPTED = "Preempted"
PREEMPTING = "Preempting"
INVALID_PRIORITY_CLASS = "InvalidPriorityClass"
# Admission through an external queue (Kueue): the QuotaReserved condition and its reasons.
QUOTA_RESERVED = "QuotaReserved"
ADMITTED_BY_QUEUE = "AdmittedByQueue"
WAITING_FOR_ADMISSION = "WaitingForAdmission"
LOCAL_QUEUE_NOT_FOUND = "LocalQueueNotFound"
EXCEEDS_LARGEST_FLAVOR = "ExceedsLargestFlavor"
QUEUE_UNAVAILABLE = "KueueUnavailable"
EVICTED = "Evicted"
FIDELITY_WITHIN_SPEC = "FidelityWithinSpec"
