"""QS002 source-size: the source is larger than the policy allows (checked first, on bytes).

OpenQASM 3 has lower limits of its own: Qiskit imports it through the ANTLR reference
parser, which reads about 30,000 tokens a second here (OpenQASM 2's parser is in Rust, 100x
faster). Its time follows tokens, not bytes: dense arithmetic packs one token in every byte,
ordinary statements about three in four, so the token count is bounded too.
"""

from __future__ import annotations

from ..catalog import SOURCE_SIZE
from ..policy import SanitizerPolicy
from ..report import Violation, finding
from ..source.scan import SourceScan


def _oversized(source: str, limit: int) -> int | None:
    """The size in bytes if it exceeds ``limit``, else None; encodes only when it must."""
    if len(source) * 4 <= limit:  # a character takes at most 4 bytes
        return None
    size = len(source) if len(source) > limit else len(source.encode("utf-8", "surrogatepass"))
    return size if size > limit else None


def too_large(size: int | None, policy: SanitizerPolicy) -> Violation:
    """The violation for a source of ``size`` bytes over ``maxSourceBytes``; None for one
    that was not read to its end (a pipe or a device has no size)."""
    what = f"is {size} bytes" if size is not None else "goes on past the limit"
    return finding(
        SOURCE_SIZE,
        f"the source {what}; the limit (maxSourceBytes) is "
        f"{policy.max_source_bytes}. Submit a smaller circuit or split the job.",
    )


def check(source: str, policy: SanitizerPolicy) -> list[Violation]:
    """Refuse sources over ``maxSourceBytes`` (UTF-8) without looking at their content."""
    size = _oversized(source, policy.max_source_bytes)
    return [] if size is None else [too_large(size, policy)]


def check_version(scan: SourceScan, policy: SanitizerPolicy) -> list[Violation]:
    """Refuse OpenQASM 3 sources over ``maxQasm3SourceBytes``."""
    if scan.version != 3:
        return []
    size = _oversized(scan.source, policy.max_qasm3_source_bytes)
    if size is None:
        tokens = len(scan.tokens)
        if tokens <= policy.max_qasm3_tokens:
            return []
        return [
            finding(
                SOURCE_SIZE,
                f"the OpenQASM 3 source has {tokens} tokens; the limit (maxQasm3Tokens) is "
                f"{policy.max_qasm3_tokens}, as OpenQASM 3 parses slowly. Submit a smaller "
                "circuit, or write it in OpenQASM 2 if it uses no OpenQASM 3 features.",
            )
        ]
    return [
        finding(
            SOURCE_SIZE,
            f"the OpenQASM 3 source is {size} bytes; the limit (maxQasm3SourceBytes) is "
            f"{policy.max_qasm3_source_bytes}, as OpenQASM 3 parses slowly. Submit a smaller "
            "circuit, or write it in OpenQASM 2 if it uses no OpenQASM 3 features.",
        )
    ]
