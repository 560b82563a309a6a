"""A link's physical state follows its file; a file that stops parsing changes nothing but
one log line, and the link is never made perfect nor forgotten."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qorch.qpu.link_state import LinkFileError, LinkStates


def link(name: str, a: str, b: str, fidelity: float) -> dict:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "EntanglementLink",
        "metadata": {"name": name},
        "spec": {
            "nodes": [a, b],
            "fidelity": fidelity,
            "generationRateHz": 1e6,
            "successProbability": 0.5,
        },
    }


def test_a_link_file_that_stops_parsing_keeps_the_last_good_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "link.yaml"
    path.write_text(yaml.safe_dump(link("a-b", "a", "b", 0.97)))
    states = LinkStates([path])
    path.write_text(yaml.safe_dump(link("a-b", "a", "b", 0.8)))
    spec = states.spec("a-b")
    assert spec is not None and spec.fidelity == 0.8
    path.write_text("spec: {fidelity: [unclosed")
    with caplog.at_level("WARNING", logger="qorch.qpu.link_state"):
        for _ in range(3):  # one line per change of the file, not per look
            spec = states.spec("a-b")
            assert spec is not None and spec.fidelity == 0.8
    [line] = [r.getMessage() for r in caplog.records]
    assert "ignored: not YAML or JSON" in line and "link a-b kept as it was" in line
    broken = link("a-b", "a", "b", 0.8)
    broken["spec"]["fidelity"] = 1.5
    path.write_text(yaml.safe_dump(broken))
    spec = states.spec("a-b")
    assert spec is not None and spec.fidelity == 0.8
    assert "not a valid EntanglementLink (at spec.fidelity)" in caplog.records[-1].getMessage()
    assert states.spec("c-d") is None


def test_an_unusable_link_file_at_start_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "link.yaml"
    path.write_text("kind: [")
    with pytest.raises(LinkFileError, match=r"link file .*link\.yaml: not YAML or JSON"):
        LinkStates([path])
    with pytest.raises(LinkFileError, match="unreadable"):
        LinkStates([tmp_path / "absent.yaml"])
