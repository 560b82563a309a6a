"""QS203 include: only the standard libraries may be included; no file is ever read."""

from __future__ import annotations

import bisect

from ..catalog import INCLUDE
from ..policy import SanitizerPolicy
from ..report import Violation, finding
from ..source.scan import SourceScan, keyword_offsets

_KEYWORD = len("include")


def check(scan: SourceScan, policy: SanitizerPolicy) -> list[Violation]:
    """Refuse includes of anything but ``allowedIncludes``."""
    allowed = set(policy.allowed_includes)
    found: list[Violation] = []
    starts = sorted(scan.strings)
    for offset in keyword_offsets(scan.code, "include"):
        # String literals are blanked in scan.code; the file name is the next one, if only
        # white space separates it from the keyword.
        end = offset + _KEYWORD
        k = bisect.bisect_left(starts, end)
        name = None
        if k < len(starts) and not scan.code[end : starts[k]].strip():
            name = scan.strings[starts[k]]
        if name in allowed:
            continue
        line = scan.line_of(offset)
        if name is None:
            found.append(
                finding(INCLUDE, f"the include on line {line} names no file in quotes.", line=line)
            )
        elif name not in allowed:
            shown = name if len(name) <= 60 else name[:57] + "..."
            found.append(
                finding(
                    INCLUDE,
                    f"line {line} includes {shown!r}; only {', '.join(sorted(allowed))} may be "
                    "included. Paste the gate definitions you need into the circuit instead.",
                    line=line,
                )
            )
    return found
