"""Imports run without the cyclic collector, which is then as it was before."""

from __future__ import annotations

import gc

import pytest

from qorch.import_collector import imports_then_freeze


@pytest.fixture
def collector():
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.parametrize("before", [True, False])
def test_the_collector_pauses_for_the_imports_and_is_then_as_before(collector, before):
    (gc.enable if before else gc.disable)()
    gc.unfreeze()
    with imports_then_freeze():
        assert not gc.isenabled()
        made = [[] for _ in range(1000)]
    assert gc.isenabled() is before
    assert gc.get_freeze_count() >= len(made)  # what the block made: out of later passes


def test_a_failed_import_still_restores_the_collector(collector):
    gc.enable()
    with pytest.raises(ImportError), imports_then_freeze():
        import qorch.no_such_module  # noqa: F401
    assert gc.isenabled()
