"""EntanglementLink handlers: both ends must exist and be Ready for the link to be Up."""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from qorch.api import GROUP, VERSION, EntanglementLink
from qorch.api import reasons as R
from qorch.api.base import get_condition
from qorch.pipeline.resources import observe_link
from qorch.settings import Settings
from qorch.telemetry.instrument import timed_reconcile
from qorch.telemetry.metrics import METRICS

from . import kube
from .agent_workload import LINK_STATES_CONFIG_MAP
from .state import announce_phase, plain
from .world import agent_address, agent_client

QLINK = (GROUP, VERSION, "entanglementlinks")
_SETTINGS = Settings.from_env()


def parse(body: Any) -> EntanglementLink | None:
    try:
        return EntanglementLink.model_validate(plain(body))
    except ValidationError:
        return None


@kopf.index(*QLINK, id="qlinks")
def index_links(
    body: kopf.Body, namespace: str | None, **_: Any
) -> dict[str | None, EntanglementLink]:
    """Every valid EntanglementLink with its status, by namespace, for planning."""
    link = parse(body)
    return {namespace: link} if link is not None else {}


@kopf.on.event(*QLINK, id="forget-metrics")
def forget_deleted_link(
    event: kopf.RawEvent, namespace: str | None, name: str | None, **_: Any
) -> None:
    """A deleted link's series leave /metrics, once its probe timer has stopped (see
    nodes.forget_deleted_node)."""
    if event.get("type") == "DELETED" and namespace and name:
        METRICS.forget_link(namespace, name)


@kopf.on.resume(*QLINK, id="link-state")
@kopf.on.create(*QLINK, id="link-state")
async def ensure_link_state(
    body: kopf.Body, namespace: str | None, name: str | None, reason: str, **_: Any
) -> None:
    """A simulated link's physical state, which the agents of its nodes probe, starts as
    its declared spec (see agent_workload.LINK_STATES_CONFIG_MAP). A new link replaces what
    one of the same name left; on the operator's restart a state already there is kept,
    as it may have been made to drift."""
    link = parse(body)
    if link is None or not namespace or not name:
        return
    manifest = link.model_copy(update={"status": None})
    await kube.put_config_map_key(
        namespace,
        LINK_STATES_CONFIG_MAP,
        f"{name}.json",
        manifest.model_dump_json(by_alias=True, exclude_none=True),
        replace=reason == kopf.Reason.CREATE,
    )


@kopf.on.event(*QLINK, id="forget-state")
async def forget_deleted_link_state(
    event: kopf.RawEvent, namespace: str | None, name: str | None, **_: Any
) -> None:
    """A deleted link's physical state leaves the ConfigMap: it would only fill it up."""
    if event.get("type") == "DELETED" and namespace and name:
        await kube.put_config_map_key(namespace, LINK_STATES_CONFIG_MAP, f"{name}.json", None)


@kopf.timer(*QLINK, id="probe", interval=_SETTINGS.link_check_seconds)  # type: ignore[arg-type]
@timed_reconcile("EntanglementLink", "probe")
async def link_probe(
    body: kopf.Body,
    namespace: str | None,
    qnodes: kopf.Index,
    memo: Any,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    """Phase and Ready condition from the two nodes; for an Up link, the latency of the
    classical path measured agent to agent, and a probe of its Bell pairs."""
    link = parse(body)
    if link is None:
        return
    nodes = {n.metadata.name: n for n in qnodes.get(namespace, ())}
    status = await observe_link(
        link,
        nodes,
        lambda node: agent_client(memo.state, node),
        lambda node: agent_address(memo.state, node),
    )
    patch.status.update(status.wire())
    ready = get_condition(status.conditions, R.READY)
    if ready is not None:
        announce_phase(body, link.status.phase, status.phase, ready.reason, ready.message)
