"""Priority classes: parsed from QORCH_PRIORITY_CLASSES, resolved per job, bad ones named."""

import pytest

from qorch.api import DistributedJob
from qorch.pipeline.priority import Priority, PriorityClasses

TABLE = (
    '{"urgent": {"value": 1000, "preemptionPolicy": "PreemptLowerPriority"},'
    ' "batch": {"value": -5}}'
)


def job(**spec: object) -> DistributedJob:
    return DistributedJob.model_validate(
        {
            "metadata": {"name": "j", "namespace": "default"},
            "spec": {"circuit": {"qasm": "OPENQASM 2.0;"}, **spec},
        }
    )


def test_a_class_gives_the_priority_and_only_a_preempting_class_preempts():
    classes = PriorityClasses.parse(TABLE)
    assert classes.of(job(priorityClassName="urgent")) == Priority(1000, True)
    assert classes.of(job(priorityClassName="batch")) == Priority(-5, False)
    # Without a class: spec.priority, and never preempting, however high.
    assert classes.of(job(priority=10**6)) == Priority(10**6, False)
    assert PriorityClasses.parse("").of(job(priority=3)) == Priority(3)


def test_an_unknown_class_or_a_contradicting_priority_is_named():
    classes = PriorityClasses.parse(TABLE)
    assert classes.problem(job(priorityClassName="urgent")) is None
    assert classes.problem(job(priorityClassName="urgent", priority=1000)) is None
    assert classes.problem(job(priorityClassName="urgnet")) == (
        "spec.priorityClassName 'urgnet' is not a priority class (known: batch, urgent)"
    )
    assert "spec.priority 7 contradicts priority class 'batch' (value -5)" in str(
        classes.problem(job(priorityClassName="batch", priority=7))
    )
    assert "(known: none are defined)" in str(
        PriorityClasses.parse("").problem(job(priorityClassName="urgent"))
    )


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "must map class names"),
        ('{"x": {"value": "high"}}', "class 'x': value:"),
        ('{"x": {"value": 2147483648}}', "class 'x': value: Input should be less than or equal"),
        ('{"x": {"value": 1, "preemptionPolicy": "Always"}}', "class 'x': preemptionPolicy:"),
        ('{"x": {"value": 1, "preemption": "Never"}}', "class 'x': preemption:"),
    ],
)
def test_a_bad_table_is_refused_naming_the_class_and_field(text: str, complaint: str):
    with pytest.raises(ValueError, match="QORCH_PRIORITY_CLASSES") as info:
        PriorityClasses.parse(text)
    assert complaint in str(info.value)
