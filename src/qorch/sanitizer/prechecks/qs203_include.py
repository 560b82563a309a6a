"""QS203 include: only the standard libraries may be included; no file is ever read."""

from __future__ import annotations

import bisect
import re

from ..catalog import INCLUDE
from ..policy import SanitizerPolicy
from ..report import Violation, finding
from ..source.scan import SourceScan

_INCLUDE = re.compile(r"\binclude\b")


def check(scan: SourceScan, policy: SanitizerPolicy) -> list[Violation]:
    """Refuse includes of anything but ``allowedIncludes``."""
    if "include" not in scan.code:
        return []
    allowed = set(policy.allowed_includes)
    found: list[Violation] = []
    starts = sorted(scan.strings)
    for m in _INCLUDE.finditer(scan.code):
        # String literals are blanked in scan.code; the file name is the next one, if only
        # white space separates it from the keyword.
        k = bisect.bisect_left(starts, m.end())
        name = None
        if k < len(starts) and not scan.code[m.end() : starts[k]].strip():
            name = scan.strings[starts[k]]
        line = scan.line_of(m.start())
        if name is None:
            found.append(
                finding(INCLUDE, f"the include on line {line} names no file in quotes.",
                        line=line)
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
