"""Condition types and reasons: the machine-readable vocabulary of every status."""

# DistributedJob condition types.
SANITIZED = "Sanitized"
AUTHORIZED = "Authorized"
PLANNED = "Planned"
DISPATCHED = "Dispatched"
VERIFIED = "Verified"
SUCCEEDED = "Succeeded"  # the job's summary condition

# QuantumNode / EntanglementLink summary condition.
READY = "Ready"

# Reasons.
POLICY_PASSED = "PolicyPassed"
CIRCUIT_UNAVAILABLE = "CircuitUnavailable"
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
