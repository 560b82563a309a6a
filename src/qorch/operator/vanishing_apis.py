"""Watches that survive an API going away: Kueue uninstalled while the operator runs.

kopf takes any watch error but 410 as fatal to the whole operator. When a CRD is deleted,
a watch that reconnects before kopf's own CRD scan has dropped the resource gets 404, and
the operator stopped every handler and exited (seen when Kueue's CRDs were deleted while a
job waited for Kueue). Here a 404 ends that stream as an empty listing: the watch retries
after a pause, and resumes once the API is served again; kopf's scan may drop it first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from kopf._cogs.clients import errors, watching

log = logging.getLogger(__name__)

#: Pause before watching an API again that answered 404.
RETRY_SECONDS = 5.0


def tolerate_vanishing_apis() -> None:
    """Make kopf's watch streams end, not fail, where their API is no longer served."""
    original = watching.continuous_watch
    if getattr(original, "tolerates_vanishing_apis", False):
        return

    async def continuous_watch(*, resource: Any, **kwargs: Any) -> AsyncIterator[Any]:
        try:
            async for event in original(resource=resource, **kwargs):
                yield event
        except errors.APINotFoundError:
            log.warning(
                "%s is not served (its CRD was removed): watching again in %.0f s",
                resource,
                RETRY_SECONDS,
            )
            # Nothing exists of a kind not served: that is its whole listing, so handlers
            # waiting for the index to be listed are not held back.
            yield watching.Bookmark.LISTED
            await asyncio.sleep(RETRY_SECONDS)

    continuous_watch.tolerates_vanishing_apis = True  # type: ignore[attr-defined]
    # infinite_watch looks the name up in its module at each reconnect.
    watching.continuous_watch = continuous_watch  # type: ignore[assignment]
