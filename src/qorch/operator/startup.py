"""Operator-wide configuration: kopf settings, credentials, the shared state."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import kopf

from qorch.channel.identity import fingerprint
from qorch.memory_limit import process_limit_bytes
from qorch.pipeline.authorization import AuthorizationPolicy
from qorch.pipeline.job import PipelineSettings
from qorch.pipeline.verification import MAX_STATEVECTOR_QUBITS
from qorch.planner.prediction import MAX_PREDICTED_QUBITS
from qorch.qpu.transport import AgentConnections
from qorch.sanitizer import SanitizerPolicyFile, load_policy
from qorch.settings import Settings
from qorch.telemetry.instrument import declare_operator_series
from qorch.telemetry.metrics import start_metrics_server
from qorch.telemetry.tracing import configure_tracing, shutdown_tracing

from . import kube
from .identity import NamespaceMissing, operator_identity
from .state import OperatorState
from .submitters import ConfigMapNonces, OperatorKeys
from .vanishing_apis import tolerate_vanishing_apis

log = logging.getLogger(__name__)


def _authorization(settings: Settings, namespace: str) -> AuthorizationPolicy:
    """Signed jobs when cluster-wide keys are given or signatures are asked for; keys and
    the nonce record are read at each admission (see submitters.py)."""
    folder = settings.trusted_submitters_dir
    if not (folder or settings.require_signed_jobs):
        return AuthorizationPolicy()
    if folder and not any(Path(folder).glob("*.pub")):
        raise kopf.PermanentError(f"no *.pub keys in {folder}")
    return AuthorizationPolicy(
        require_signature=True,
        keys=OperatorKeys(folder, namespace),
        nonces=ConfigMapNonces(
            namespace, settings.nonce_record_config_map, settings.nonce_record_max_entries
        ),
        max_validity_seconds=settings.max_signature_validity_seconds,
    )


def _log_simulation_widths() -> None:
    """The memory limit read from the container and the widest exact simulations it
    allows (both on /metrics too): a wider circuit is verified only if it is Clifford
    (stabilizer tableau), and its fidelity is not predicted."""
    limit = process_limit_bytes()
    log.info(
        "memory limit %.1f GiB: exact verification up to %d qubits, predictions up to %d",
        limit / 2**30,
        MAX_STATEVECTOR_QUBITS,
        MAX_PREDICTED_QUBITS,
    )


def _policy(settings: Settings) -> SanitizerPolicyFile:
    if settings.sanitizer_policy_file:
        return load_policy(settings.sanitizer_policy_file)
    return SanitizerPolicyFile()


@kopf.on.startup(id="configure")
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Long-lived watches that survive idle load balancers, progress kept in annotations."""
    # Watches end server-side before any proxy or load balancer in between drops them.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    tolerate_vanishing_apis()  # Kueue may be uninstalled while the operator runs
    # Our CRD schemas prune status.kopf, so handler progress lives in annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="qorch.dev")
    # A job's circuit can be larger than an annotation may be (256 KiB), and the job spec is
    # immutable, so it is left out of the last-handled state: no update handler needs it.
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="qorch.dev", key="last-handled-configuration", ignored_fields=["spec.circuit"]
    )
    settings.persistence.finalizer = "qorch.dev/finalizer"
    settings.posting.level = logging.WARNING  # only warnings become Events; ours are explicit
    in_cluster = kube.load_credentials()
    configure_tracing("qorch-operator")
    qorch = Settings.from_env()
    namespace, source = kube.own_namespace(qorch.operator_namespace, in_cluster)
    try:
        keys = await operator_identity(qorch, namespace)
    except NamespaceMissing:
        log.error(
            'namespace "%s" (%s) does not exist, and the operator keeps its identity there:'
            " create it (kubectl create namespace %s), or set QORCH_OPERATOR_NAMESPACE to a"
            " namespace that exists",
            namespace,
            source,
            namespace,
        )
        # Not kopf.PermanentError: kopf would log it with a traceback and the command print
        # another. Nothing runs yet (kopf watches only after start-up), so exit right here.
        raise SystemExit(2) from None
    identity = keys.identity
    for key in keys.trusted[1:]:
        log.info("next operator key %s published: new agents trust it too", fingerprint(key))
    if qorch.identity_key_file:
        log.info("operator identity %s from %s", identity.fingerprint, qorch.identity_key_file)
    else:
        # A namespace guessed from the kubeconfig is worth a warning: a private key went there.
        guessed = not (in_cluster or qorch.operator_namespace)
        log.log(
            logging.WARNING if guessed else logging.INFO,
            "operator identity %s in Secret %s/%s (namespace %s;"
            " QORCH_OPERATOR_NAMESPACE chooses another)",
            identity.fingerprint,
            namespace,
            qorch.identity_secret,
            source,
        )
    declare_operator_series()
    _log_simulation_widths()
    memo.metrics_server = start_metrics_server(qorch.metrics_port)
    log.info("metrics on port %d at /metrics", memo.metrics_server.port)
    try:
        pipeline_settings = PipelineSettings.from_settings(
            qorch, _policy(qorch), _authorization(qorch, namespace)
        )
    except ValueError as exc:  # QORCH_PRIORITY_CLASSES; nothing runs yet, as above
        log.error("%s", exc)
        raise SystemExit(2) from None
    memo.state = OperatorState(
        settings=qorch,
        agents=AgentConnections(identity),
        operator_keys=keys,
        pipeline_settings=pipeline_settings,
    )


@kopf.on.cleanup(id="close-connections")
async def close_connections(memo: kopf.Memo, **_: Any) -> None:
    """Close agent connections on shutdown, and stop the processes of exact simulations
    and long predictions."""
    state: OperatorState | None = memo.get("state")
    if state is not None:
        await state.agents.close()
        state.exact_outputs.close()
    if memo.get("metrics_server") is not None:
        memo.metrics_server.close()
    shutdown_tracing()
