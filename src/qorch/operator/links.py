"""EntanglementLink handlers: both ends must exist and be Ready for the link to be Up."""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from qorch.api import GROUP, VERSION, EntanglementLink
from qorch.pipeline.resources import check_link
from qorch.settings import Settings

from .state import plain

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


@kopf.timer(*QLINK, id="probe", interval=_SETTINGS.link_check_seconds)  # type: ignore[arg-type]
async def link_probe(
    body: kopf.Body, namespace: str | None, qnodes: kopf.Index, patch: kopf.Patch, **_: Any
) -> None:
    """Phase and Ready condition from the state of the two nodes."""
    link = parse(body)
    if link is None:
        return
    nodes = {n.metadata.name: n for n in qnodes.get(namespace, ())}
    patch.status.update(check_link(link, nodes).wire())
