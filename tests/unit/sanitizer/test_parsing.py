"""Parsing: the right loader for the version, and no file is ever read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qorch.sanitizer.parsing import ParseFailure, load
from qorch.sanitizer.source.scan import SourceScan

from .sources import BELL2, BELL3

EVIL_GATE = "gate evil a { x a; }\n"


@pytest.mark.parametrize(
    "source",
    [
        'OPENQASM 2.0;\ninclude "evil.inc";\nqreg q[1];\nevil q[0];\n',
        'OPENQASM 3.0;\ninclude "evil.inc";\nqubit q;\nevil q;\n',
        'OPENQASM 2.0;\ninclude "EVIL_PATH";\nqreg q[1];\nevil q[0];\n',
    ],
    ids=["openqasm2 relative", "openqasm3 relative", "openqasm2 absolute"],
)
def test_the_loaders_never_read_included_files(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "evil.inc").write_text(EVIL_GATE)
    monkeypatch.chdir(tmp_path)
    source = source.replace("EVIL_PATH", str(tmp_path / "evil.inc"))

    with pytest.raises(ParseFailure):
        load(SourceScan(source))


def test_openqasm2_loads_what_qiskit_writes_as_standard_gates() -> None:
    circuit = load(SourceScan(BELL2.replace("h q[0];", "sx q[0];\np(0.5) q[1];\nswap q[0], q[1];")))

    assert set(circuit.count_ops()) == {"sx", "p", "swap", "cx", "measure"}


@pytest.mark.parametrize(
    ("source", "version"),
    [(BELL2, 2), (BELL3, 3), (BELL3.replace("OPENQASM 3.0;\n", ""), 3)],
    ids=["openqasm2", "openqasm3", "openqasm3 without header"],
)
def test_the_header_picks_the_loader(source: str, version: int) -> None:
    scan = SourceScan(source)

    assert scan.version == version
    assert load(scan).count_ops()["cx"] == 1


IMPORTS = """
import sys
from qorch.sanitizer import sanitize
sanitize(sys.argv[1], shots=10)
print("openqasm3" in sys.modules)
"""


@pytest.mark.parametrize(("source", "imported"), [(BELL2, "False"), (BELL3, "True")])
def test_only_openqasm3_sources_import_its_parser(source: str, imported: str) -> None:
    """Its ANTLR parser takes 50 ms of a `qorch run` of OpenQASM 2 jobs to import."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS, source], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == imported, done.stderr
