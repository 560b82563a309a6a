"""Admission through Kueue: a Workload per DistributedJob that carries the queue-name label.

Kueue's supported path for a custom workload: the job's controller (this operator) creates
a Workload owned by the job, with one pod set per resource its plan holds:
- `qorch.dev/qubits` on a QuantumNode, pinned by node affinity on `qorch.dev/quantum-node`
  (`<namespace>.<node>`) to the nodes it may use;
- `qorch.dev/millipairs-per-second` of Bell-pair rate on an EntanglementLink, pinned on
  `qorch.dev/entanglement-link` (`<namespace>.<link>`).
ResourceFlavors carry those labels as nodeLabels, one per QuantumNode and link, so the flavor
Kueue assigns to a pod set names the node or link it gets. Kueue's Workload controller and
scheduler do the rest (quota, cohorts, fair sharing, priority, preemption); this module
reads the outcome from a kopf index of Workloads, and writes back what Kueue expects of a
job controller: the Workload cleared after an eviction, and finished with the job. The
Workload is owned by the job: garbage collection deletes it with the job.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from qorch.api import DistributedJob
from qorch.api import reasons as R
from qorch.api.phases import JobPhases
from qorch.pipeline.ports import QueueDecision, QueueRequest
from qorch.pipeline.reservations import link_resource, node_resource

from . import kube
from .kube import API_TIMEOUT_SECONDS
from .state import OperatorState

log = logging.getLogger(__name__)

GROUP, VERSION = "kueue.x-k8s.io", "v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
QUBITS = "qorch.dev/qubits"
PAIR_RATE = "qorch.dev/millipairs-per-second"
NODE_LABEL = "qorch.dev/quantum-node"
LINK_LABEL = "qorch.dev/entanglement-link"
_FLAVOR_TTL = 30.0


def managed(job: DistributedJob) -> bool:
    return bool(job.metadata.labels.get(QUEUE_LABEL))


def workload_name(name: str, uid: str | None) -> str:
    return f"djob-{name[:200]}-{(uid or '')[:5]}"


def _owner(body: Any) -> dict[str, Any] | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "DistributedJob" and ref.get("apiVersion", "").startswith(
            "qorch.dev/"
        ):
            return dict(ref)
    return None


@kopf.index(GROUP, VERSION, "workloads", id="workloads")
async def index_workloads(
    body: kopf.Body, name: str, namespace: str | None, memo: Any, **_: Any
) -> dict[tuple[str, str], dict[str, Any]] | None:
    """Each job's Workload as far as the job needs it: admission, conditions, active.
    Async, so that waking the waiting jobs happens on their event loop."""
    owner = _owner(body)
    state: OperatorState | None = memo.get("state")
    if state is not None:
        state.reservations.wake()  # a waiting or running job looks again
    if owner is None:
        return None
    status = body.get("status") or {}
    return {
        (namespace or "", owner["name"]): {
            "name": name,
            "owner_uid": owner.get("uid"),
            "active": (body.get("spec") or {}).get("active", True) is not False,
            "admission": _plain(status.get("admission")),
            "conditions": {
                c["type"]: (c.get("status"), c.get("reason", ""), c.get("message", ""))
                for c in status.get("conditions") or []
            },
        }
    }


def _plain(value: Any) -> Any:
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _true(wl: dict[str, Any], type_: str) -> bool:
    cond = wl["conditions"].get(type_)
    return cond is not None and cond[0] == "True"


def admitted(wl: dict[str, Any]) -> bool:
    return bool(wl["admission"]) and _true(wl, "Admitted") and not _true(wl, "Evicted")


def quantity(value: Any) -> float:
    """A Kubernetes quantity as a number (the forms a quota of counts and rates takes)."""
    text = str(value).strip()
    suffixes = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 1024.0, "Mi": 1024.0**2}
    for suffix, factor in sorted(suffixes.items(), key=lambda s: -len(s[0])):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def _pod_set(name: str, resource: str, amount: int, label: str, allowed: list[str]) -> dict:
    amounts = {resource: str(amount)}
    term = {"matchExpressions": [{"key": label, "operator": "In", "values": sorted(allowed)}]}
    return {
        "name": name,
        "count": 1,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "qpu",
                        "image": "qorch.dev/none",
                        "resources": {"requests": amounts, "limits": amounts},
                    }
                ],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [term]
                        }
                    }
                },
            }
        },
    }


def workload_manifest(
    job: DistributedJob, request: QueueRequest, priority: int | None = None
) -> dict[str, Any]:
    """A pod set per node and link of the plan. A plan on one node may move to any of the
    candidate nodes (Kueue picks among their flavors); a plan over several stays on the
    nodes it was planned on, which its links join."""
    ns, name, uid = job.metadata.namespace, job.metadata.name, job.metadata.uid
    nodes = sorted(k for k in request.want if k.startswith("qn/"))
    links = sorted(k for k in request.want if k.startswith("qlink/"))
    pod_sets = []
    for i, key in enumerate(nodes):
        node = key.split("/", 2)[2]
        allowed = [node] if len(nodes) > 1 else list(request.candidates)
        qubits = math.ceil(request.want[key] - 1e-9)
        pod_sets.append(
            _pod_set(f"node-{i}", QUBITS, qubits, NODE_LABEL, [f"{ns}.{n}" for n in allowed])
        )
    for i, key in enumerate(links):
        link = key.split("/", 2)[2]
        rate = math.ceil(request.want[key] * 1000 - 1e-6)
        pod_sets.append(_pod_set(f"link-{i}", PAIR_RATE, rate, LINK_LABEL, [f"{ns}.{link}"]))
    spec: dict[str, Any] = {
        "queueName": job.metadata.labels[QUEUE_LABEL],
        "podSets": pod_sets,
        "active": not job.spec.suspend,
    }
    priority_class = job.metadata.labels.get(PRIORITY_LABEL)
    if priority_class:
        # Kueue's job integrations copy the class's value too; its webhook requires both.
        spec["priorityClassRef"] = {
            "group": GROUP,
            "kind": "WorkloadPriorityClass",
            "name": priority_class,
        }
        spec["priority"] = priority or 0
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workload",
        "metadata": {
            "name": workload_name(name, uid),
            "namespace": ns,
            "labels": {QUEUE_LABEL: job.metadata.labels[QUEUE_LABEL]},
            "ownerReferences": [
                {
                    "apiVersion": job.api_version,
                    "kind": "DistributedJob",
                    "name": name,
                    "uid": uid,
                    "controller": True,
                }
            ],
        },
        "spec": spec,
    }


def _reason(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


def _api() -> client.CustomObjectsApi:
    return client.CustomObjectsApi()


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await kube.call(fn, *args, _request_timeout=API_TIMEOUT_SECONDS, **kwargs)


async def _get(plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    try:
        if namespace is None:
            return dict(await _call(_api().get_cluster_custom_object, GROUP, VERSION, plural, name))
        return dict(
            await _call(
                _api().get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
            )
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def served(namespace: str) -> bool:
    """Whether Kueue's Workload API is installed (its CRDs exist)."""
    try:
        await _call(
            _api().list_namespaced_custom_object, GROUP, VERSION, namespace, "workloads", limit=1
        )
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


_flavors: dict[str, tuple[float, dict[str, str]]] = {}


async def flavor_labels(flavor: str) -> dict[str, str]:
    """A ResourceFlavor's nodeLabels, cached for a while (they name what it stands for)."""
    cached = _flavors.get(flavor)
    if cached and time.monotonic() - cached[0] < _FLAVOR_TTL:
        return cached[1]
    body = await _get("resourceflavors", flavor)
    labels = dict(((body or {}).get("spec") or {}).get("nodeLabels") or {})
    _flavors[flavor] = (time.monotonic(), labels)
    return labels


def _ref(value: str) -> tuple[str, str] | None:
    namespace, _, name = value.partition(".")
    return (namespace, name) if namespace and name else None


async def granted(wl: dict[str, Any]) -> dict[str, float] | str:
    """What the admission assigned, as reservation keys; or which flavor names nothing."""
    out: dict[str, float] = {}
    for assignment in wl["admission"].get("podSetAssignments") or []:
        usage = assignment.get("resourceUsage") or {}
        for resource, flavor in (assignment.get("flavors") or {}).items():
            labels = await flavor_labels(flavor)
            if resource == QUBITS:
                ref, key = _ref(labels.get(NODE_LABEL, "")), node_resource
                amount = quantity(usage.get(resource, 0))
            elif resource == PAIR_RATE:
                ref, key = _ref(labels.get(LINK_LABEL, "")), link_resource
                amount = quantity(usage.get(resource, 0)) / 1000
            else:
                continue
            if ref is None:
                label = NODE_LABEL if resource == QUBITS else LINK_LABEL
                return (
                    f"ResourceFlavor {flavor} has no nodeLabel {label} (<namespace>.<name>):"
                    " it must stand for one QuantumNode or EntanglementLink"
                )
            out[key(*ref)] = out.get(key(*ref), 0) + amount
    return out


async def largest_flavor(queue: dict[str, Any]) -> tuple[str, str, float] | None:
    """The ClusterQueue behind a LocalQueue and its ResourceFlavor with the most qubits one
    Workload can get (its nominal quota, plus what it may borrow in its cohort)."""
    cq_name = (queue.get("spec") or {}).get("clusterQueue")
    cq = await _get("clusterqueues", cq_name) if cq_name else None
    if cq is None:
        return None
    cohort = (cq.get("spec") or {}).get("cohortName")
    peers = [cq]
    if cohort:
        listed = await _call(_api().list_cluster_custom_object, GROUP, VERSION, "clusterqueues")
        peers = [
            q for q in listed.get("items", []) if (q.get("spec") or {}).get("cohortName") == cohort
        ]

    def quotas(q: dict[str, Any]) -> dict[str, tuple[float, Any]]:
        found = {}
        for group in (q.get("spec") or {}).get("resourceGroups") or []:
            for flavor in group.get("flavors") or []:
                for res in flavor.get("resources") or []:
                    if res.get("name") == QUBITS:
                        found[flavor["name"]] = (
                            quantity(res.get("nominalQuota", 0)),
                            res.get("borrowingLimit"),
                        )
        return found

    best: tuple[str, str, float] | None = None
    pooled: dict[str, float] = {}
    for peer in peers:
        for flavor, (nominal, _) in quotas(peer).items():
            pooled[flavor] = pooled.get(flavor, 0) + nominal
    for flavor, (nominal, borrowing) in quotas(cq).items():
        most = nominal
        if cohort:
            extra = pooled.get(flavor, nominal) - nominal
            most += min(extra, quantity(borrowing)) if borrowing is not None else extra
        if best is None or most > best[2]:
            best = (str(cq_name), flavor, most)
    return best


class KueueQueue:
    """The pipeline's ExternalQueue over Kueue, for one job daemon."""

    def __init__(self, workloads: kopf.Index, state: OperatorState) -> None:
        self._index = workloads
        self._state = state
        self._checked = False  # the request was compared with the ClusterQueue's flavors

    def manages(self, job: DistributedJob) -> bool:
        return managed(job)

    def workload(self, job: DistributedJob) -> dict[str, Any] | None:
        for wl in self._index.get((job.metadata.namespace, job.metadata.name), ()):
            if wl["owner_uid"] == job.metadata.uid:
                return dict(wl)
        return None

    async def admission(self, job: DistributedJob, request: QueueRequest) -> QueueDecision:
        ns, queue_name = job.metadata.namespace, job.metadata.labels[QUEUE_LABEL]
        wl = self.workload(job)
        if wl is None and not await served(ns):
            return QueueDecision(
                "waiting",
                R.QUEUE_UNAVAILABLE,
                f"Kueue is not installed (no {GROUP}/{VERSION} Workload API): the job waits"
                f" for it; remove the label {QUEUE_LABEL} to run it on qorch's own queue",
            )
        local_queue, looked = None, False
        if wl is None or (not self._checked and not admitted(wl)):
            local_queue, looked = await _get("localqueues", queue_name, ns), True
            if local_queue is not None:
                rejected = await self._too_large(local_queue, request)
                if rejected is not None:
                    return rejected
        name = workload_name(job.metadata.name, job.metadata.uid)
        if wl is None:
            missing = await self._create(job, request)
            if missing is not None:
                return QueueDecision("waiting", R.WAITING_FOR_ADMISSION, missing)
            if local_queue is None:
                return self._no_queue(ns, queue_name)
            return QueueDecision(
                "waiting",
                R.WAITING_FOR_ADMISSION,
                f"Workload {name} queued in LocalQueue {queue_name}",
            )
        if wl["active"] == bool(job.spec.suspend):
            await self._patch(ns, name, {"spec": {"active": not job.spec.suspend}})
        if admitted(wl):
            got = await granted(wl)
            if isinstance(got, str):
                return QueueDecision("waiting", R.WAITING_FOR_ADMISSION, got)
            cq = wl["admission"].get("clusterQueue", "")
            return QueueDecision(
                "admitted", R.ADMITTED_BY_QUEUE, f"Workload {name} admitted by ClusterQueue {cq}",
                got,
            )  # fmt: skip
        if wl["admission"] and _true(wl, "Evicted"):
            await self.requeue(job)  # an eviction the job had not seen (it was not running)
        if job.spec.suspend:
            return QueueDecision(
                "waiting", R.SUSPENDED, f"spec.suspend is true: Workload {name} is inactive"
            )
        reserved = wl["conditions"].get("QuotaReserved")
        said = reserved[2] if reserved and reserved[2] else "waiting for Kueue to reserve quota"
        if f"LocalQueue {queue_name} doesn't exist" in said or (looked and local_queue is None):
            return self._no_queue(ns, queue_name)
        return QueueDecision("waiting", R.WAITING_FOR_ADMISSION, f"Workload {name}: {said}")

    @staticmethod
    def _no_queue(ns: str, queue_name: str) -> QueueDecision:
        return QueueDecision(
            "waiting",
            R.LOCAL_QUEUE_NOT_FOUND,
            f"LocalQueue {queue_name} does not exist in namespace {ns}: create it, or set the"
            f" label {QUEUE_LABEL} to a LocalQueue that exists",
        )

    async def _too_large(
        self, local_queue: dict[str, Any], request: QueueRequest
    ) -> QueueDecision | None:
        largest = await largest_flavor(local_queue)
        if largest is None:
            return None
        self._checked = True
        cq, flavor, most = largest
        for key, n in sorted(request.want.items()):
            if key.startswith("qn/") and n > most + 1e-9:
                return QueueDecision(
                    "rejected",
                    R.EXCEEDS_LARGEST_FLAVOR,
                    f"the plan needs {math.ceil(n)} qubits on QuantumNode {key.split('/')[2]};"
                    f" the largest ResourceFlavor of ClusterQueue {cq} is {flavor} with"
                    f" {most:g} qubits",
                )
        return None

    async def _create(self, job: DistributedJob, request: QueueRequest) -> str | None:
        """Create the Workload; or say which WorkloadPriorityClass is missing."""
        priority = None
        priority_class = job.metadata.labels.get(PRIORITY_LABEL)
        if priority_class:
            found = await _get("workloadpriorityclasses", priority_class)
            if found is None:
                return (
                    f"WorkloadPriorityClass {priority_class} (label {PRIORITY_LABEL}) does not"
                    " exist: create it, or remove the label"
                )
            priority = int(found.get("value", 0))
        body = workload_manifest(job, request, priority)
        try:
            await _call(
                _api().create_namespaced_custom_object,
                GROUP,
                VERSION,
                job.metadata.namespace,
                "workloads",
                body,
            )
        except ApiException as exc:
            if exc.status == 409:  # made before the index saw it
                return None
            if exc.status in (400, 403, 422):  # Kueue's webhooks or RBAC said no: say why
                return f"Kueue refused Workload {body['metadata']['name']}: {_reason(exc)}"
            raise
        else:
            log.info("created Workload %s/%s", job.metadata.namespace, body["metadata"]["name"])
        return None

    async def _patch(self, ns: str, name: str, patch: dict[str, Any]) -> None:
        try:
            await _call(
                _api().patch_namespaced_custom_object, GROUP, VERSION, ns, "workloads", name, patch
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def evicted(self, job: DistributedJob) -> str | None:
        wl = self.workload(job)
        if wl is None:
            return None  # Kueue gone meanwhile: nothing left to take the admission back
        if _true(wl, "Evicted"):
            _, reason, message = wl["conditions"]["Evicted"]
            return f"{reason}: {message}" if message else reason
        if not wl["admission"]:
            return "the Workload's quota reservation was withdrawn"
        return None

    async def requeue(self, job: DistributedJob) -> None:
        """What Kueue's job reconciler does for its own jobs once they stopped: the Workload
        gives its quota back (no admission, QuotaReserved False) and is marked requeued."""
        await update_status(job, _requeued)


def _condition(type_: str, status: str, reason: str, message: str, generation: int) -> dict:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message[:32768],
        "observedGeneration": generation,
        "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _set(conditions: list[dict], new: dict) -> list[dict]:
    old = next((c for c in conditions if c["type"] == new["type"]), None)
    if old and (old.get("status"), old.get("reason"), old.get("message")) == (
        new["status"],
        new["reason"],
        new["message"],
    ):
        return conditions
    if old and old.get("status") == new["status"]:
        new["lastTransitionTime"] = old.get("lastTransitionTime", new["lastTransitionTime"])
    return [c for c in conditions if c["type"] != new["type"]] + [new]


def _requeued(body: dict[str, Any]) -> bool:
    status = body.setdefault("status", {})
    conditions = list(status.get("conditions") or [])
    evicted = next((c for c in conditions if c["type"] == "Evicted"), None)
    if not status.get("admission") and not any(
        c["type"] == "QuotaReserved" and c["status"] == "True" for c in conditions
    ):
        return False
    gen = body["metadata"].get("generation", 1)
    reason = evicted["reason"] if evicted and evicted["status"] == "True" else "Pending"
    message = evicted.get("message", "") if evicted else "the job stopped"
    conditions = _set(conditions, _condition("Requeued", "True", reason, message, gen))
    conditions = _set(conditions, _condition("QuotaReserved", "False", "Pending", message, gen))
    conditions = _set(conditions, _condition("Admitted", "False", "NoReservation", message, gen))
    status["conditions"] = conditions
    status["admission"] = None
    return True


async def update_status(job: DistributedJob, change: Any, attempts: int = 5) -> None:
    """Read, change and write back the job's Workload status (optimistic concurrency:
    Kueue writes it too); no Workload, nothing to do."""
    ns, name = job.metadata.namespace, workload_name(job.metadata.name, job.metadata.uid)
    for _ in range(attempts):
        try:
            body = await _get("workloads", name, ns)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        if body is None or not change(body):
            return
        try:
            await _call(
                _api().replace_namespaced_custom_object_status,
                GROUP,
                VERSION,
                ns,
                "workloads",
                name,
                body,
            )
            return
        except ApiException as exc:
            if exc.status == 404:
                return
            if exc.status != 409:
                raise
    log.warning("Workload %s/%s: gave up after %d conflicting writes", ns, name, attempts)


async def finish(job: DistributedJob) -> None:
    """The job ended: its Workload is Finished, so Kueue frees its quota."""
    succeeded = job.status.phase == JobPhases.SUCCEEDED

    def change(body: dict[str, Any]) -> bool:
        status = body.setdefault("status", {})
        conditions = list(status.get("conditions") or [])
        if any(c["type"] == "Finished" and c["status"] == "True" for c in conditions):
            return False
        gen = body["metadata"].get("generation", 1)
        reason = "Succeeded" if succeeded else "Failed"
        message = job.status.message or job.status.phase
        status["conditions"] = _set(
            conditions, _condition("Finished", "True", reason, message, gen)
        )
        return True

    await update_status(job, change)
