"""QS004 nesting-depth: brackets nested deeper than the policy allows.

The loaders recurse on nesting, so 100k nested parentheses must be refused before them.
"""

from __future__ import annotations

import itertools

from ..catalog import NESTING_DEPTH
from ..policy import SanitizerPolicy
from ..report import Violation, finding
from ..source.scan import SourceScan

_BRACKETS = b"()[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
# Byte value -> change of depth, for a running sum over the bytes.
_STEP = [0] * 256
for _open, _close in ("()", "[]", "{}"):
    _STEP[ord(_open)] = 1
    _STEP[ord(_close)] = -1


#: Longer bracket sequences go straight to the running sum.
_SHORT = 16_384


def _shallow(brackets: bytes, limit: int) -> bool:
    """True when the brackets are balanced and at most ``limit`` deep: removing the innermost
    pairs ``limit`` times leaves nothing. Benign sources finish in two or three rounds."""
    if len(brackets) > _SHORT:
        return False
    for _ in range(limit):
        inner = brackets.replace(b"()", b"").replace(b"[]", b"").replace(b"{}", b"")
        if not inner:
            return True
        if inner == brackets:
            return False
        brackets = inner
    return not brackets


def check(scan: SourceScan, policy: SanitizerPolicy) -> list[Violation]:
    """Refuse nesting of (), [] and {} beyond ``maxNestingDepth``."""
    limit = policy.max_nesting_depth
    encoded = scan.code.encode("utf-8", "surrogatepass")
    if _shallow(encoded.translate(None, _NOT_BRACKETS), limit):
        return []
    # Deep or unbalanced: measure exactly with a running sum, in C-level iterators only.
    deepest = max(itertools.accumulate(map(_STEP.__getitem__, encoded)), default=0)
    if deepest <= limit:
        return []  # merely unbalanced: the parser will say where
    running = itertools.accumulate(map(_STEP.__getitem__, encoded))
    where = next(itertools.compress(itertools.count(), map(limit.__lt__, running)))
    line = encoded.count(b"\n", 0, where) + 1
    return [
        finding(
            NESTING_DEPTH,
            f"brackets are nested {deepest} deep (first beyond the limit on line {line}); "
            f"the limit (maxNestingDepth) is {limit}. Flatten the expression or the blocks.",
            line=line,
        )
    ]
