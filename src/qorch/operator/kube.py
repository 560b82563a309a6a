"""The few Kubernetes API calls the handlers make beyond what kopf does for them."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from qorch.api import GROUP, VERSION

#: Seconds any one API call may take: a stalled connection must not stall a handler forever.
API_TIMEOUT_SECONDS = 10
#: Answers of an API server that is overloaded or restarting, not a verdict on the request.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
STATUS_WRITE_ATTEMPTS = 4

T = TypeVar("T")
#: The threads the blocking Kubernetes client runs in: not the event loop's default pool,
#: whose threads may all be waiting for jobs' simulations (a tenant's wide jobs), which
#: would hold every other tenant's status writes behind them.
_API_THREADS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kube-api")


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)`, a blocking client call, in the API threads."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_API_THREADS, functools.partial(fn, *args, **kwargs))


# Written into every pod that mounts a service account token, beside the token.
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def load_credentials() -> bool:
    """In-cluster service account when in a pod, the kubeconfig otherwise (as kopf does);
    True in a pod."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
        return False
    return True


def own_namespace(configured: str | None, in_cluster: bool) -> tuple[str, str]:
    """The operator's own namespace, and where it comes from: the setting, else the pod's
    namespace, else the kubeconfig context's (as kubectl chooses it)."""
    if configured:
        return configured, "from QORCH_OPERATOR_NAMESPACE"
    if in_cluster:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip(), "from the pod"
    _, context = config.list_kube_config_contexts(os.environ.get("KUBECONFIG"))
    namespace = context.get("context", {}).get("namespace") or "default"
    return namespace, f'from kubeconfig context "{context["name"]}"'


async def patch_status(plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
    """Merge-patch the status subresource of one of our objects. The patch is idempotent,
    so one that times out or meets a busy or restarting API server is sent again, a few
    times, before the caller sees the error (a job daemon that raises is restarted only
    after kopf's back-off, and waits out of the queue meanwhile)."""
    api = client.CustomObjectsApi()
    for attempt in range(STATUS_WRITE_ATTEMPTS):
        try:
            await call(
                api.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"status": status},
                _request_timeout=API_TIMEOUT_SECONDS,
            )
            return
        except ApiException as exc:
            if exc.status not in TRANSIENT_STATUSES or attempt + 1 == STATUS_WRITE_ATTEMPTS:
                raise
        except HTTPError:  # timed out, or the connection failed
            if attempt + 1 == STATUS_WRITE_ATTEMPTS:
                raise
        await asyncio.sleep(0.5 * 2**attempt)


async def read_config_map_key(namespace: str, name: str, key: str) -> str | None:
    try:
        cm = await call(
            client.CoreV1Api().read_namespaced_config_map,
            name,
            namespace,
            _request_timeout=API_TIMEOUT_SECONDS,
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return (cm.data or {}).get(key)


async def put_config_map_key(
    namespace: str, name: str, key: str, value: str | None, *, replace: bool = True
) -> bool:
    """Set `key` of the ConfigMap (created if absent), or remove it where `value` is None;
    with `replace` False a key already there is left as it is. True when written. A write
    races no other: it names the version it read."""
    api = client.CoreV1Api()
    for _ in range(3):
        try:
            cm = await call(
                api.read_namespaced_config_map,
                name,
                namespace,
                _request_timeout=API_TIMEOUT_SECONDS,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            if value is None:
                return False
            body = {"metadata": {"name": name, "namespace": namespace}, "data": {key: value}}
            try:
                await call(
                    api.create_namespaced_config_map,
                    namespace,
                    body,
                    _request_timeout=API_TIMEOUT_SECONDS,
                )
            except ApiException as exc:
                if exc.status == 409:  # created meanwhile
                    continue
                raise
            return True
        there = key in (cm.data or {})
        if (there and not replace) or (value is None and not there):
            return False
        patch = {
            "metadata": {"resourceVersion": cm.metadata.resource_version},
            "data": {key: value},
        }
        try:
            await call(
                api.patch_namespaced_config_map,
                name,
                namespace,
                patch,
                _request_timeout=API_TIMEOUT_SECONDS,
            )
        except ApiException as exc:
            if exc.status == 409:  # changed since read
                continue
            raise
        return True
    raise RuntimeError(f"ConfigMap {namespace}/{name} kept changing while key {key} was set")


async def deployment_annotation(namespace: str, name: str, key: str) -> str | None:
    """One annotation of a Deployment; None when the Deployment or the annotation is absent."""
    try:
        dep = await call(
            client.AppsV1Api().read_namespaced_deployment,
            name,
            namespace,
            _request_timeout=API_TIMEOUT_SECONDS,
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return (dep.metadata.annotations or {}).get(key)


async def apply_owned(manifest: dict[str, Any]) -> str:
    """Create the object, or patch it when it exists and differs; return what was done."""
    kind = manifest["kind"]
    meta = manifest["metadata"]
    ns, name = meta["namespace"], meta["name"]
    if kind == "Deployment":
        api: Any = client.AppsV1Api()
        read, create, patch = (
            api.read_namespaced_deployment,
            api.create_namespaced_deployment,
            api.patch_namespaced_deployment,
        )
    elif kind == "Service":
        api = client.CoreV1Api()
        read, create, patch = (
            api.read_namespaced_service,
            api.create_namespaced_service,
            api.patch_namespaced_service,
        )
    else:
        raise ValueError(f"unsupported kind {kind}")
    try:
        current = await call(read, name, ns, _request_timeout=API_TIMEOUT_SECONDS)
    except ApiException as exc:
        if exc.status != 404:
            raise
        await call(create, ns, manifest, _request_timeout=API_TIMEOUT_SECONDS)
        return "created"
    desired_hash = meta.get("annotations", {}).get("qorch.dev/spec-hash")
    current_hash = (current.metadata.annotations or {}).get("qorch.dev/spec-hash")
    if desired_hash and desired_hash == current_hash:
        return "unchanged"
    await call(patch, name, ns, manifest, _request_timeout=API_TIMEOUT_SECONDS)
    return "patched"
