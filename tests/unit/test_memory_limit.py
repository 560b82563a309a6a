"""The widest simulation a process takes on follows the memory it may use."""

from __future__ import annotations

from pathlib import Path

from qorch.memory_limit import memory_limit_bytes, widest_fitting


def test_the_container_limit_is_read_from_cgroup_v2_then_v1(tmp_path: Path) -> None:
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    machine = memory_limit_bytes([])
    assert machine > 0
    v2.write_text("max\n")  # none under v2: v1 is read next
    v1.write_text(f"{1 << 30}\n")
    assert memory_limit_bytes([v2, v1]) == 1 << 30
    v2.write_text(f"{512 << 20}\n")
    assert memory_limit_bytes([v2, v1]) == 512 << 20
    v1.write_text("9223372036854771712\n")  # cgroup v1's "no limit"
    assert memory_limit_bytes([tmp_path / "missing", v1]) == machine


def test_a_smaller_limit_gives_narrower_simulations() -> None:
    """40 bytes per outcome in half the limit: 26 qubits need 5 GiB of limit."""
    assert widest_fitting(40, 26, limit=6 << 30) == 26
    assert widest_fitting(40, 26, limit=4 << 30) == 25
    assert widest_fitting(40, 26, limit=1 << 30) == 23
    assert widest_fitting(40, 24, limit=64 << 30) == 24  # never past the cap
