"""Generators of hostile YAML, by class: alias bombs, deep nesting, invalid UTF-8, oversize.

Each generator returns text (or bytes) of one manifest, so that the unit tests (the loader)
and the integration tests (the commands) exercise the same inputs.
"""

from __future__ import annotations

import os
from pathlib import Path

from qorch.api.yamlload import DEFAULT_LIMITS

# Where a bomb sits in a manifest: (header, indentation of the bomb's keys, object, field).
PLACES = {
    "configmap-data": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\ndata:\n",
        "  ",
        "ConfigMap/lol",
        "data.",
    ),
    "metadata-extra": (
        "apiVersion: qorch.dev/v1alpha1\nkind: QuantumNode\nmetadata:\n  name: qpu-a\n  extra:\n",
        "    ",
        "QuantumNode/qpu-a",
        "metadata.extra.",
    ),
    "annotations": (
        "apiVersion: qorch.dev/v1alpha1\nkind: DistributedJob\nmetadata:\n  name: ghz\n"
        "  annotations:\n",
        "    ",
        "DistributedJob/ghz",
        "metadata.annotations.",
    ),
}


def _lines(indent: str, entries: list[str]) -> str:
    return "".join(f"{indent}{entry}\n" for entry in entries)


def alias_bomb(shape: str, place: str = "configmap-data") -> str:
    """A document that is small as text and enormous with its aliases expanded."""
    header, indent, _, _ = PLACES[place]
    if shape == "sequences":  # the classic: nine levels of nine-fold lists
        entries = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        entries += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    elif shape == "mappings":
        entries = ["a0: &a0 {k0: lol, k1: lol, k2: lol, k3: lol}"]
        entries += [
            f"a{i}: &a{i} {{{', '.join(f'k{j}: *a{i - 1}' for j in range(9))}}}"
            for i in range(1, 10)
        ]
    elif shape == "doubling":  # two-fold but forty levels deep: 2**40 leaves
        entries = ["a0: &a0 [lol]"]
        entries += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 41)]
    elif shape == "wide":  # one list of a thousand, aliased a thousand times
        entries = [f"a: &a [{', '.join(['lol'] * 1000)}]", f"b: [{', '.join(['*a'] * 1000)}]"]
    elif shape == "merge":  # merge keys pull whole mappings in
        entries = ["a0: &a0 {" + ", ".join(f"k{j}: lol" for j in range(9)) + "}"]
        entries += [
            f"a{i}: &a{i} {{<<: *a{i - 1}, " + ", ".join(f"m{j}: *a{i - 1}" for j in range(9)) + "}"
            for i in range(1, 10)
        ]
    elif shape == "long-scalar":  # no collection aliased: one long string, many times
        entries = ["a: &a " + "lol" * 50_000, f"b: [{', '.join(['*a'] * 2000)}]"]
    elif shape == "recursive":
        entries = ["a: &a [lol, *a]"]
    else:
        raise ValueError(shape)
    return header + _lines(indent, entries)


BOMB_SHAPES = ("sequences", "mappings", "doubling", "wide", "merge", "long-scalar", "recursive")


def deep_nesting(style: str, depth: int) -> str:
    """A ConfigMap whose one value is nested `depth` levels deep."""
    if style == "flow-sequences":
        value = "[" * depth + "]" * depth
    elif style == "flow-mappings":
        value = "{a: " * depth + "x" + "}" * depth
    elif style == "flow-mixed":
        value = "[{a: " * (depth // 2) + "x" + "}]" * (depth // 2)
    elif style == "block-sequences":  # "- - - x": each dash opens a nested sequence
        value = "\n    " + "- " * depth + "x"
    elif style == "block-mappings":
        value = "\n" + "".join(f"{'  ' * (level + 2)}k{level}:\n" for level in range(depth))
        value += "  " * (depth + 2) + "x"
    else:
        raise ValueError(style)
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n  x: {value}\n"


NESTING_STYLES = ("flow-sequences", "flow-mappings", "flow-mixed", "block-sequences")

VALID = (
    b"apiVersion: qorch.dev/v1alpha1\nkind: QuantumNode\nmetadata:\n  name: qpu-a\n"
    b"  labels: {site: a}\nspec:\n  qubits: 4\n"
)

# Byte sequences no UTF-8 decoder may accept.
BAD_UTF8 = {
    "invalid-start": b"\xff",
    "lone-continuation": b"\x80",
    "truncated-2": b"\xc3",
    "truncated-3": b"\xe2\x82",
    "overlong": b"\xc0\xaf",
    "surrogate": b"\xed\xa0\x80",
    "beyond-unicode": b"\xf4\x90\x80\x80",
}


def with_bad_utf8(position: str, bad: bytes) -> tuple[bytes, int]:
    """VALID with `bad` inserted; the 1-based line it lands on."""
    at = {
        "start": 0,
        "in-key": VALID.index(b"apiVersion") + 3,
        "in-value": VALID.index(b"qpu-a") + 2,
        "in-flow": VALID.index(b"site") + 1,
        "end": len(VALID),
    }[position]
    data = VALID[:at] + bad + VALID[at:]
    return data, VALID[:at].count(b"\n") + 1


UTF8_POSITIONS = ("start", "in-key", "in-value", "in-flow", "end")


def oversize(path: Path, size: int) -> Path:
    """A file of `size` bytes that costs no disk: a valid start, then a sparse hole."""
    path.write_bytes(VALID)
    os.truncate(path, size)
    return path


MAX_BYTES = DEFAULT_LIMITS.max_bytes
