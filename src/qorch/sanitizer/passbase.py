"""A cheaper base for the sanitizer's analysis passes.

Qiskit's pass metaclass fingerprints every new pass by binding its arguments against
``inspect.signature`` (about 15 µs a pass; the sanitizer builds some 30 passes per circuit).
Our passes take keyword arguments only, so the same fingerprint, which ``requires`` relies on
to run a shared analysis once, comes straight from the keywords.
"""

from __future__ import annotations

from typing import Any

from qiskit.transpiler.basepasses import AnalysisPass, MetaPass


def _frozen(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


class _KeywordPassMeta(MetaPass):
    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if args:
            raise TypeError(f"{cls.__name__} takes keyword arguments only")
        instance = type.__call__(cls, **kwargs)
        fingerprint = tuple(sorted((k, type(v), _frozen(v)) for k, v in kwargs.items()))
        instance._hash = hash((cls.__name__, fingerprint))
        return instance


class KeywordAnalysisPass(AnalysisPass, metaclass=_KeywordPassMeta):
    """An analysis pass configured by keyword arguments only."""
