"""What the real-node tests need from a machine, named when missing (hack/realnode.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support import REPO

sys.path.insert(0, str(REPO / "hack"))
import realnode


def test_missing_node_tools_are_named_with_the_command_that_builds_them(tmp_path: Path) -> None:
    missing = realnode.missing_capabilities(tmp_path)
    for tool in ("kubelet", "kube-proxy", "coredns"):
        assert f"{tmp_path / tool} (REAL_NODE=1 bash hack/build-tools.sh)" in missing
