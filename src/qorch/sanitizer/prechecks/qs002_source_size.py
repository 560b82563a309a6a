"""QS002 source-size: the source is larger than the policy allows (checked first, on bytes)."""

from __future__ import annotations

from ..catalog import SOURCE_SIZE
from ..policy import SanitizerPolicy
from ..report import Violation, finding


def check(source: str, policy: SanitizerPolicy) -> list[Violation]:
    """Refuse sources over ``maxSourceBytes`` (UTF-8) without looking at their content."""
    limit = policy.max_source_bytes
    # A character takes at most 4 bytes: short sources need no encoding at all.
    if len(source) * 4 <= limit:
        return []
    size = len(source) if len(source) > limit else len(source.encode("utf-8", "surrogatepass"))
    if size <= limit:
        return []
    return [
        finding(
            SOURCE_SIZE,
            f"the source is {size} bytes; the limit (maxSourceBytes) is {limit}. "
            "Submit a smaller circuit or split the job.",
        )
    ]
