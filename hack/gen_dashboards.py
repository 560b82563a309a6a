#!/usr/bin/env python3
"""Regenerate charts/qorch/dashboards/*.json from qorch.telemetry.dashboards.

python hack/gen_dashboards.py           # write
python hack/gen_dashboards.py --check   # exit 1 when the committed files are stale
"""

import sys
from pathlib import Path

from qorch.telemetry.dashboards import main

REPO = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    sys.exit(main(["--out", str(REPO / "charts/qorch/dashboards"), *sys.argv[1:]]))
