"""A link's physical state follows its file; a file that stops parsing changes nothing but
one log line, and the link is never made perfect nor forgotten."""

from __future__ import annotations

import json
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


def configmap_update(folder: Path, files: dict[str, str]) -> None:
    """As the kubelet updates a mounted ConfigMap: a new data folder, the `..data` link
    swapped to it, each key a link through `..data`."""
    data = folder / f"..version{len(list(folder.glob('..version*')))}"
    data.mkdir()
    for key, text in files.items():
        (data / key).write_text(text)
    tmp = folder / "..data_tmp"
    tmp.symlink_to(data.name)
    tmp.rename(folder / "..data")
    for key in files:
        if not (folder / key).is_symlink():
            (folder / key).symlink_to(f"..data/{key}")


def test_links_in_a_folder_are_taken_up_when_a_probe_names_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The agent's pod mounts the namespace's ConfigMap of link states: a link added after
    the pod started is found, a change reaches it, a bad key is one warning per change and
    leaves the link as requested, and a name is never a path."""
    folder = tmp_path / "links"
    folder.mkdir()
    states = LinkStates(directory=folder)
    assert states.spec("a-b") is None  # no key yet: probed as requested
    configmap_update(folder, {"a-b.json": json.dumps(link("a-b", "a", "b", 0.97))})
    spec = states.spec("a-b")
    assert spec is not None and spec.fidelity == 0.97
    configmap_update(folder, {"a-b.json": json.dumps(link("a-b", "a", "b", 0.7))})
    spec = states.spec("a-b")
    assert spec is not None and spec.fidelity == 0.7
    (folder / "c-d.json").write_text("{not json")
    (folder / "e-f.json").write_text(json.dumps(link("other", "e", "f", 0.9)))
    with caplog.at_level("WARNING", logger="qorch.qpu.link_state"):
        for _ in range(3):
            assert states.spec("c-d") is None
            assert states.spec("e-f") is None
    assert len(caplog.records) == 2, [r.getMessage() for r in caplog.records]
    (folder / "c-d.json").write_text(json.dumps(link("c-d", "c", "d", 0.9)))
    spec = states.spec("c-d")
    assert spec is not None and spec.fidelity == 0.9
    (tmp_path / "secret.json").write_text(json.dumps(link("x", "a", "b", 1.0)))
    for name in ("../secret", "/etc/passwd", ".hidden", "A-B", ""):
        assert states.spec(name) is None
