"""QS004 nesting-depth: brackets nested deeper than the policy allows.

The loaders recurse on nesting, so 100k nested parentheses must be refused before them.
"""

from __future__ import annotations

import numpy as np

from ..catalog import NESTING_DEPTH
from ..policy import SanitizerPolicy
from ..report import Violation, finding
from ..source.scan import SourceScan

_STEP = np.zeros(256, dtype=np.int32)
for _open, _close in ("()", "[]", "{}"):
    _STEP[ord(_open)] = 1
    _STEP[ord(_close)] = -1


def check(scan: SourceScan, policy: SanitizerPolicy) -> list[Violation]:
    """Refuse nesting of (), [] and {} beyond ``maxNestingDepth``."""
    limit = policy.max_nesting_depth
    code = scan.code
    opens = code.count("(") + code.count("[") + code.count("{")
    if opens <= limit:
        return []
    # A vectorised running sum: linear, and no Python loop over the characters.
    data = np.frombuffer(code.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    depth = np.cumsum(_STEP[data])
    deepest = int(depth.max())
    if deepest <= limit:
        return []
    where = int(np.argmax(depth > limit))
    line = code.encode("utf-8", "surrogatepass")[:where].count(b"\n") + 1
    return [
        finding(
            NESTING_DEPTH,
            f"brackets are nested {deepest} deep (first beyond the limit on line {line}); "
            f"the limit (maxNestingDepth) is {limit}. Flatten the expression or the blocks.",
            line=line,
        )
    ]
