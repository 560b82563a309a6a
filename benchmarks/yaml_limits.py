"""Worst load time of each class of hostile YAML, through the bounded loader and the CLI.

For every generated input of a class (the same generators as the tests: alias bombs of
several shapes and placements, deep nesting of several styles, invalid UTF-8 at several
positions, oversize files) the report gives the worst time `load_manifests` takes to refuse
it, and the worst wall time of `qorch run` (interpreter start included) to exit 2. It also
times the largest inputs the limits let through, and shows what plain `yaml.safe_load` does
with the same bomb and nesting (in a child process with 1 GiB of address space).

    PYTHONPATH=src python benchmarks/yaml_limits.py [--output benchmarks/results/yaml_limits.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the generators live with the tests

from tests import hostile_yaml as hostile  # noqa: E402

from qorch.api.manifests import ManifestError, load_manifests  # noqa: E402
from qorch.api.yamlload import DEFAULT_LIMITS  # noqa: E402

REPEATS = 5


def cases(folder: Path) -> dict[str, list[Path]]:
    """Files by class."""
    out: dict[str, list[Path]] = {"alias bombs": [], "deep nesting": [], "invalid UTF-8": []}
    for place in hostile.PLACES:
        for shape in hostile.BOMB_SHAPES:
            path = folder / f"bomb-{shape}-{place}.yaml"
            path.write_text(hostile.alias_bomb(shape, place))
            out["alias bombs"].append(path)
    for style in hostile.NESTING_STYLES:
        for depth in (65, 1_000, 100_000):
            path = folder / f"deep-{style}-{depth}.yaml"
            path.write_text(hostile.deep_nesting(style, depth))
            out["deep nesting"].append(path)
    for position in hostile.UTF8_POSITIONS:
        for kind, bad in hostile.BAD_UTF8.items():
            path = folder / f"utf8-{position}-{kind}.yaml"
            path.write_bytes(hostile.with_bad_utf8(position, bad)[0])
            out["invalid UTF-8"].append(path)
    out["oversize (3 MiB + 1, 50 MB)"] = [
        hostile.oversize(folder / "over-by-one.yaml", DEFAULT_LIMITS.max_bytes + 1),
        hostile.oversize(folder / "fifty-mb.yaml", 50 * 1024 * 1024),
    ]
    # Within the size limit but as many nodes as fit: stopped by the node limit.
    flat = folder / "flat-3mib.yaml"
    flat.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: flat}\ndata:\n  x: ["
        + ",".join(["1"] * (DEFAULT_LIMITS.max_bytes // 2 - 64))
        + "]\n"
    )
    out["node limit (3 MiB of one-digit items)"] = [flat]
    return out


def worst_load(paths: list[Path]) -> tuple[float, str]:
    worst, which = 0.0, ""
    for path in paths:
        for _ in range(REPEATS):
            start = time.perf_counter()
            try:
                load_manifests([path])
            except ManifestError:
                pass
            else:
                raise SystemExit(f"{path} loaded")
            elapsed = time.perf_counter() - start
            if elapsed > worst:
                worst, which = elapsed, path.name
    return worst, which


def worst_cli(paths: list[Path]) -> float:
    worst = 0.0
    for path in paths:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "qorch", "run", str(path)], capture_output=True, cwd=REPO
        )
        elapsed = time.perf_counter() - start
        assert proc.returncode == 2, proc.stderr
        worst = max(worst, elapsed)
    return worst


def largest_accepted(folder: Path) -> list[tuple[str, float]]:
    """Inputs just inside the limits, which load."""
    rows = []
    header = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n"
    scalar = folder / "one-long-value.yaml"
    padding = DEFAULT_LIMITS.max_bytes - len(header) - len("  x: \n")
    scalar.write_text(header + "  x: " + "x" * padding + "\n")
    many = folder / "many-keys.yaml"
    count = (DEFAULT_LIMITS.max_nodes - 16) // 2  # the rest of the ConfigMap: 11 nodes
    many.write_text(header + "".join(f"  k{i}: v\n" for i in range(count)))
    for label, path in (
        ("one 3 MiB value", scalar),
        (f"{count} keys ({DEFAULT_LIMITS.max_nodes // 1000}k nodes)", many),
    ):
        best = min(_timed(path) for _ in range(REPEATS))
        rows.append((label, best))
    return rows


def _timed(path: Path) -> float:
    start = time.perf_counter()
    load_manifests([path])
    return time.perf_counter() - start


PLAIN = """
import json, resource, sys, time, yaml
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
text = open(sys.argv[1]).read()
start = time.perf_counter()
try:
    data = yaml.safe_load(text)
    print(f"loaded in {time.perf_counter() - start:.3f} s", end="; ")
    json.dumps(data)
    print("serialised")
except BaseException as exc:
    print(f"{type(exc).__name__} after {time.perf_counter() - start:.1f} s")
"""


def plain_pyyaml(folder: Path) -> list[tuple[str, str]]:
    rows = []
    for label, path in (
        ("9^9 sequence bomb in a ConfigMap", folder / "bomb-sequences-configmap-data.yaml"),
        ("100 000 nested lists", folder / "deep-flow-sequences-100000.yaml"),
    ):
        try:
            proc = subprocess.run(
                [sys.executable, "-c", PLAIN, str(path)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            rows.append((label, proc.stdout.strip() or proc.stderr.strip().splitlines()[-1]))
        except subprocess.TimeoutExpired:
            rows.append((label, "still running after 120 s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="write the report here as well as to stdout")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    lines = [
        "# Hostile YAML: worst time to refuse each class",
        "",
        "Every YAML file qorch reads from users goes through `qorch.api.yamlload`: a file over"
        f" {DEFAULT_LIMITS.max_bytes} bytes is refused before it is read; the rest must be UTF-8"
        f" and compose within {DEFAULT_LIMITS.max_depth} levels, {DEFAULT_LIMITS.max_nodes}"
        f" nodes and {DEFAULT_LIMITS.max_chars} value characters (aliases counted as copies),"
        f" with at most {DEFAULT_LIMITS.max_collection_aliases} aliases to collections.",
        "",
        "Reproduce: `PYTHONPATH=src python benchmarks/yaml_limits.py`",
        "",
        f"Machine: Python {platform.python_version()}, PyYAML {yaml.__version__}"
        f" (libyaml {'yes' if yaml.__with_libyaml__ else 'no'}), {os.cpu_count()} CPUs,"
        f" 1-minute load average at start {load:.1f}. Worst of {REPEATS} runs of every input.",
        "",
        "| class | inputs | worst `load_manifests` ms (input) | worst `qorch run` s |",
        "|---|---:|---|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for label, paths in cases(folder).items():
            worst, which = worst_load(paths)
            cli = worst_cli(paths)
            lines.append(f"| {label} | {len(paths)} | {worst * 1000:.1f} ({which}) | {cli:.2f} |")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "qorch", "--help"], capture_output=True, cwd=REPO)
        baseline = time.perf_counter() - start
        lines += ["", f"For comparison, `qorch --help` takes {baseline:.2f} s here."]
        lines += ["", "Largest inputs the limits accept (best of runs):", ""]
        lines += ["| input | `load_manifests` ms |", "|---|---:|"]
        lines += [
            f"| {label} | {seconds * 1000:.0f} |" for label, seconds in largest_accepted(folder)
        ]
        lines += [
            "",
            "Plain `yaml.safe_load` (then `json.dumps`) on the same input, 1 GiB cap:",
            "",
        ]
        lines += ["| input | outcome |", "|---|---|"]
        lines += [f"| {label} | {outcome} |" for label, outcome in plain_pyyaml(folder)]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.output:
        Path(args.output).write_text(report)


if __name__ == "__main__":
    main()
