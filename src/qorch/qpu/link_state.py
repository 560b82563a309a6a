"""The physical state of the links an agent is an end of, each from its link file.

A simulated link's hardware is whatever its link file says: an EntanglementLink manifest
whose spec (fidelity, successProbability, generationRateHz) is the link as it is now, not
as the cluster declared it. The agent re-reads a file whenever it changes (a mounted
ConfigMap, or `qorch run`'s own copy), so a link can drift without a restart, the way a
node's noise drifts through its node file; link probes then make and measure pairs of that
state. A file that does not parse, or is not a valid EntanglementLink, is ignored with one
warning per change, and the link keeps its last good state: it is never silently made
perfect, nor forgotten.

In a pod the files come from a directory (`--link-dir`: the namespace's ConfigMap of link
states, one key `<link>.json` per link, which the operator fills with each link's declared
spec when the link is created): a link's file is looked up there when a probe first names
it, so links created after the pod started are taken up without a restart.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError

from qorch.api import EntanglementLink
from qorch.api.entanglement_link import EntanglementLinkSpec
from qorch.api.yamlload import YamlLoadError, load_file

log = logging.getLogger(__name__)


class LinkFileError(ValueError):
    """A link file unusable at start (there is no earlier state to keep)."""


def _read(path: Path) -> EntanglementLink:
    """The link of a file; LinkFileError naming what is wrong (never quoting the input)."""
    try:
        return EntanglementLink.model_validate(load_file(path))
    except OSError as exc:
        raise LinkFileError(f"unreadable ({exc.strerror or exc})") from None
    except (YamlLoadError, yaml.YAMLError) as exc:
        raise LinkFileError(f"not YAML or JSON ({type(exc).__name__})") from None
    except ValidationError as exc:
        where = ", ".join(".".join(map(str, e["loc"])) or "(root)" for e in exc.errors()[:5])
        raise LinkFileError(f"not a valid EntanglementLink (at {where})") from None


class LinkFile:
    """One followed file and the last good link read from it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.link = _read(path)
        except LinkFileError as exc:
            raise LinkFileError(f"link file {path}: {exc}") from None
        self._state: tuple[int, int, int] | str | None = self._stat()

    def _stat(self) -> tuple[int, int, int] | str:
        try:
            stat = os.stat(self.path)
        except OSError:
            return "missing"
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def refresh(self) -> None:
        """Take up the file's link if the file changed since the last look (a plain `stat`
        when it did not)."""
        state = self._stat()
        if state == self._state:
            return
        self._state = state
        name = self.link.metadata.name
        if state == "missing":
            log.warning("link file %s unreadable: link %s kept as it was", self.path, name)
            return
        try:
            link = _read(self.path)
        except LinkFileError as exc:
            log.warning("link file %s ignored: %s; link %s kept as it was", self.path, exc, name)
            return
        if link.metadata.name != name:
            log.warning(
                "link file %s ignored: it names another link, %r; link %s kept as it was",
                self.path,
                link.metadata.name,
                name,
            )
            return
        if link.spec != self.link.spec:
            log.info("link file %s reloaded: link %s changed", self.path, name)
        self.link = link


# A link's name as the API allows it (a DNS subdomain): never a path of its own.
_LINK_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


class LinkStates:
    """The links of an agent, by name, each following its file: the given files, and in
    `directory`, `<link>.json` for each link a probe names."""

    def __init__(
        self, paths: Iterable[str | Path] = (), directory: str | Path | None = None
    ) -> None:
        self.files: dict[str, LinkFile] = {}
        for path in paths:
            linked = LinkFile(Path(path))
            name = linked.link.metadata.name
            if name in self.files:
                raise LinkFileError(f"link file {path}: link {name} already comes from another")
            self.files[name] = linked
        self.directory = Path(directory) if directory is not None else None
        # The file of a link in `directory` that was unusable, as it was then: not read again
        # (nor warned of again) until it changes.
        self._unusable: dict[str, tuple[int, int, int]] = {}

    def spec(self, name: str) -> EntanglementLinkSpec | None:
        """The physical state of link `name` now; None when this agent holds none."""
        linked = self.files.get(name) or self._from_directory(name)
        if linked is None:
            return None
        linked.refresh()
        return linked.link.spec

    def _from_directory(self, name: str) -> LinkFile | None:
        if self.directory is None or not _LINK_NAME.fullmatch(name) or len(name) > 253:
            return None
        path = self.directory / f"{name}.json"
        try:
            stat = os.stat(path)
        except OSError:
            return None  # not there (yet): the link is probed as requested
        seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if self._unusable.get(name) == seen:
            return None
        try:
            linked = LinkFile(path)
        except LinkFileError as exc:
            log.warning("%s; link %s is probed as requested until the file is fixed", exc, name)
            self._unusable[name] = seen
            return None
        if linked.link.metadata.name != name:
            log.warning(
                "link file %s ignored: it names another link, %r", path, linked.link.metadata.name
            )
            self._unusable[name] = seen
            return None
        self._unusable.pop(name, None)
        self.files[name] = linked
        return linked
