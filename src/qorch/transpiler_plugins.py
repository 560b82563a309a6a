"""qiskit's first transpile in a process imports every installed transpiler plugin.

qiskit-ibm-runtime (a dependency of qiskit-addon-cutting) registers translation plugins
for IBM backends; importing them imports the whole IBM client, 0.9 s of each process's
first transpile here (the operator's first plan, every agent's first calibration). qorch
never asks for them: it compiles to a node's own gates with qiskit's built-in stages. So
its processes leave them out of the plugins qiskit looks for.
"""

from __future__ import annotations

from typing import Any

from stevedore import ExtensionManager

#: Entry points under these module prefixes are never loaded.
UNUSED = ("qiskit_ibm_runtime.",)


def leave_out_unused() -> None:
    """Hide UNUSED plugins from stevedore, through which qiskit finds its plugins."""
    original = ExtensionManager.list_entry_points
    if getattr(original, "leaves_out_unused", False):
        return

    kept: dict[str, list[Any]] = {}

    def list_entry_points(self: ExtensionManager, *args: Any, **kwargs: Any) -> list[Any]:
        if self.namespace not in kept:  # listed once per namespace, as stevedore does
            entries = original(self, *args, **kwargs)
            kept[self.namespace] = [ep for ep in entries if not ep.value.startswith(UNUSED)]
        return kept[self.namespace]

    list_entry_points.leaves_out_unused = True  # type: ignore[attr-defined]
    ExtensionManager.list_entry_points = list_entry_points  # type: ignore[method-assign]
