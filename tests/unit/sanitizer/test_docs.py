"""The README's tables match the rule catalogue and the policy model."""

from __future__ import annotations

from pathlib import Path

import qorch.sanitizer
from qorch.sanitizer import RULES, SanitizerPolicy

README = (Path(qorch.sanitizer.__file__).parent / "README.md").read_text()


def test_every_rule_has_a_row_with_its_id_and_name() -> None:
    for rule in RULES.values():
        adjustable = "yes" if rule.adjustable else "no"
        assert f"| {rule.id} | {rule.name} | {rule.stage} | {adjustable} |" in README, rule.id


def test_every_policy_field_is_documented() -> None:
    for info in SanitizerPolicy.model_fields.values():
        assert f"| `{info.alias}` |" in README, info.alias


def test_rule_ids_are_grouped_by_stage() -> None:
    for rule in RULES.values():
        if rule.id[2] == "0" and rule.id not in ("QS000", "QS001"):
            assert rule.stage == "pre-parse"
        if rule.id[2] in "34":
            assert rule.stage == "post-parse"
