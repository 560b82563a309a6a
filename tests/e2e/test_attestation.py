"""A TPM-attested node under the operator and a real API server: Ready while its quote
holds, Unreachable/AttestationFailed once its node file is tampered with, and then no
circuit reaches it."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from tests.e2e.conftest import OperatorProcess
from tests.e2e.test_operator import BELL, succeeded
from tests.support import make_node
from tests.tpm_support import enroll, manifest, requires_swtpm, tpm_agent

pytestmark = [pytest.mark.e2e, requires_swtpm]


def phase(value: str):
    return lambda o: o.get("status", {}).get("phase") == value


def job(name: str) -> dict:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": name},
        "spec": {"shots": 50, "timeoutSeconds": 20, "circuit": {"qasm": BELL}},
    }


async def test_an_attested_node_runs_jobs_until_its_node_file_is_tampered_with(
    cluster, namespace, operator, operator_key, swtpm, tmp_path
):
    enrolled = enroll(swtpm(), tmp_path, "attested")
    async with tpm_agent(enrolled, operator_key.pub_file) as agent:
        node = manifest("attested")
        node["spec"]["backend"] = {"type": "external", "endpoint": agent.endpoint}
        node["spec"]["identity"] = enrolled.identity
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(node))
        qn = cluster.wait_for("qn", "attested", namespace, phase("Ready"))
        ready = next(c for c in qn["status"]["conditions"] if c["type"] == "Ready")
        assert "verified TPM quote" in ready["message"]
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(job("before")))
        done = cluster.wait_for("djob", "before", namespace, succeeded)
        assert done["status"]["phase"] == "Succeeded", done["status"].get("message")

        enrolled.node_file.write_text(yaml.safe_dump(manifest("attested", readout_error=0.2)))
        qn = cluster.wait_for("qn", "attested", namespace, phase("Unreachable"))
        ready = next(c for c in qn["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "AttestationFailed", ready
        assert "PCR 23 differs" in ready["message"]
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(job("after")))
        done = cluster.wait_for("djob", "after", namespace, succeeded, timeout=60)
        assert done["status"]["phase"] == "Failed"
        assert "attested is Unreachable" in done["status"]["message"], done["status"]["message"]

        from qorch.qpu.transport import SecureAgentClient

        client = SecureAgentClient(agent.endpoint, operator_key.identity, enrolled.public_key)
        try:
            health = await client.call("health", {})
        finally:
            await client.close()
    assert health["programsRun"] == 1  # the first job's program only


@pytest.fixture
def strict_operator(cluster, namespace, tmp_path, operator_key):
    """The operator with QORCH_REQUIRE_ATTESTATION=true (chart value attestation.required)."""
    shim = copy.copy(cluster)
    shim.env = {**cluster.env, "QORCH_REQUIRE_ATTESTATION": "true"}
    op = OperatorProcess(shim, namespace, tmp_path / "operator.log", operator_key.key_file)
    op.start()
    yield op
    op.stop()


async def test_with_attestation_required_only_attested_nodes_are_ready(
    cluster, namespace, strict_operator, operator_key, swtpm, tmp_path, start_agent
):
    enrolled = enroll(swtpm(), tmp_path, "attested")
    plain_agent = await start_agent(make_node("plain", 3))
    plain = manifest("plain")
    plain["spec"]["backend"] = {"type": "external", "endpoint": plain_agent.endpoint}
    plain["spec"]["identity"] = {"publicKey": plain_agent.public_key}
    async with tpm_agent(enrolled, operator_key.pub_file) as agent:
        attested = manifest("attested")
        attested["spec"]["backend"] = {"type": "external", "endpoint": agent.endpoint}
        attested["spec"]["identity"] = enrolled.identity
        stdin = yaml.safe_dump_all([plain, attested])
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=stdin)
        cluster.wait_for("qn", "attested", namespace, phase("Ready"))
        qn = cluster.wait_for("qn", "plain", namespace, phase("Unreachable"))
    ready = next(c for c in qn["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "AttestationRequired", ready
