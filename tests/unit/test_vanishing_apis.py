"""A watch whose API is no longer served (Kueue uninstalled) ends; it does not stop kopf.

kopf's own reconnecting loop (`infinite_watch`) runs here over a stream that answers 404,
as the API server does for a watch reopened after a CRD is deleted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from kopf._cogs.clients import errors, watching
from kopf._cogs.structs import references

from qorch.operator import vanishing_apis

WORKLOADS = references.Resource("kueue.x-k8s.io", "v1beta2", "workloads", namespaced=True)


def install_vanished_api(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []

    async def vanished(**kwargs: Any) -> AsyncIterator[Any]:
        calls.append(kwargs["resource"])
        raise errors.APINotFoundError({"message": "404 page not found"}, status=404, headers={})
        yield  # an async generator, as kopf's is

    monkeypatch.setattr(watching, "continuous_watch", vanished)
    monkeypatch.setattr(vanishing_apis, "RETRY_SECONDS", 0.0)
    return calls


async def watch(iterations: int) -> list[Any]:
    stream = watching.infinite_watch(
        settings=kopf.OperatorSettings(),
        resource=WORKLOADS,
        namespace="ns",
        _iterations=iterations,
    )
    return [event async for event in stream]


async def test_kopf_alone_stops_at_a_404() -> None:
    # The failure this module exists for: kopf's loop lets the 404 out, and its
    # orchestrator then stops the operator.
    with pytest.MonkeyPatch.context() as patch:
        install_vanished_api(patch)
        with pytest.raises(errors.APINotFoundError):
            await watch(1)


async def test_a_vanished_api_ends_as_an_empty_listing_and_is_watched_again() -> None:
    with pytest.MonkeyPatch.context() as patch:
        calls = install_vanished_api(patch)
        vanishing_apis.tolerate_vanishing_apis()
        vanishing_apis.tolerate_vanishing_apis()  # once is enough: not wrapped twice
        events = await watch(3)
    assert events == [watching.Bookmark.LISTED] * 3
    assert calls == [WORKLOADS] * 3


async def test_other_watch_errors_still_reach_kopf() -> None:
    with pytest.MonkeyPatch.context() as patch:

        async def forbidden(**_: Any) -> AsyncIterator[Any]:
            raise errors.APIForbiddenError({"message": "forbidden"}, status=403, headers={})
            yield

        patch.setattr(watching, "continuous_watch", forbidden)
        vanishing_apis.tolerate_vanishing_apis()
        with pytest.raises(errors.APIForbiddenError):
            await watch(1)
