"""Checks on the source text, before any parser sees it (QS0xx, QS202, QS203, QS205).

Each module is one rule. They are cheap (regular expressions and arithmetic) and they exist
so that nothing a user writes can make the loaders allocate, expand or recurse without bound.
"""

from __future__ import annotations

from ..catalog import PARSE_ERROR
from ..policy import SanitizerPolicy
from ..report import Violation, finding
from ..source.scan import SourceScan
from . import (
    qs002_source_size,
    qs003_lexical,
    qs004_nesting_depth,
    qs005_numeric_literal,
    qs006_register_declaration,
    qs007_expansion_estimate,
    qs008_expression_size,
    qs202_gate_definition,
    qs203_include,
    qs205_gate_modifier,
)

_ON_SCAN = (
    qs004_nesting_depth.check,
    qs008_expression_size.check,
    qs005_numeric_literal.check,
    qs006_register_declaration.check,
    qs203_include.check,
    qs202_gate_definition.check,
    qs205_gate_modifier.check,
    qs007_expansion_estimate.check,
)


def run_prechecks(
    source: str, policy: SanitizerPolicy
) -> tuple[SourceScan | None, list[Violation]]:
    """The scanned source (None when refused before scanning) and every pre-parse violation.

    The scan holds the source with its newlines normalised: that text, not the one
    submitted, is what the parser reads, so both see the same lines and comments."""
    source = qs003_lexical.normalise_newlines(source)
    for early in (qs002_source_size.check(source, policy), qs003_lexical.check_text(source)):
        if early:
            return None, early
    if not source.strip():
        return None, [finding(PARSE_ERROR, "the circuit source is empty.")]
    scan = SourceScan(source)
    found = qs002_source_size.check_version(scan, policy) or qs003_lexical.check(scan)
    if found:  # too slow to parse, or a string or comment left open: stop here
        return scan, found
    if scan.version == 0:
        found.append(
            finding(
                PARSE_ERROR,
                f"OPENQASM {scan.version_text} is not supported; write OPENQASM 2.0 or "
                "OPENQASM 3.0.",
                line=1,
            )
        )
    for check in _ON_SCAN:
        found.extend(check(scan, policy))
    return scan, found
