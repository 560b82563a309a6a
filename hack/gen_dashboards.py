#!/usr/bin/env python3
"""Regenerate charts/qorch/dashboards/*.json from hack/dashboards.py.

python hack/gen_dashboards.py           # write
python hack/gen_dashboards.py --check   # exit 1 when the committed files are stale
"""

import argparse
import sys
from pathlib import Path

from dashboards import render_all

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "charts/qorch/dashboards"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output folder")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the files differ from the generated"
    )
    args = parser.parse_args(argv)
    rendered = render_all()
    if args.check:
        stale = [
            name
            for name, text in rendered.items()
            if not (args.out / name).is_file() or (args.out / name).read_text() != text
        ]
        for name in stale:
            print(f"{args.out / name} is not what the generator writes", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (args.out / name).write_text(text)
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
