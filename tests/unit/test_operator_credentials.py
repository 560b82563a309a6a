"""`qorch operator` with no way to reach a cluster ends at once, saying so, where kopf would
retry its start-up every minute."""

from __future__ import annotations

import os
import subprocess
import sys


def test_an_operator_without_credentials_ends_with_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.update(KUBECONFIG=str(tmp_path / "missing"), HOME=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "qorch", "operator"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith(
        "operator: no Kubernetes credentials: not in a pod, and no kubeconfig"
    ), done.stderr[-2000:]
