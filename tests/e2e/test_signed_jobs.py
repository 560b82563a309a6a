"""Signed jobs against a real API server: replays, stale signatures and misplaced keys are
refused with their own reasons while good jobs beside them run, and the record of used
nonces lives in a ConfigMap that outlasts the operator."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from qorch.api.distributed_job import stored_spec
from qorch.channel.identity import Identity, encode_public_key
from qorch.channel.signing import now_utc, parse_signature, sign_job
from tests.conftest import OperatorKey
from tests.support import make_node

from .conftest import Cluster, OperatorProcess

pytestmark = pytest.mark.e2e

BELL = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\n'
    "measure q -> c;\n"
)
NONCES = "qorch-submitter-nonces"


def terminal(obj: dict) -> bool:
    return obj.get("status", {}).get("phase") in ("Succeeded", "Failed", "Rejected")


def signed_job(
    identity: Identity,
    namespace: str,
    name: str,
    *,
    signed_for: tuple[str, str] | None = None,
    valid_for: timedelta = timedelta(hours=1),
) -> dict[str, Any]:
    spec: dict[str, Any] = {"shots": 200, "circuit": {"qasm": BELL}}
    where = signed_for or (namespace, name)
    spec["signature"] = sign_job(
        stored_spec(spec), where[0], where[1], identity, now_utc() + valid_for
    )
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@pytest.fixture
def other_namespaces(cluster: Cluster) -> Iterator[tuple[str, str]]:
    """A second tenant namespace, and the operator's own."""
    names = (f"t-{uuid.uuid4().hex[:8]}", f"ops-{uuid.uuid4().hex[:8]}")
    for name in names:
        cluster.kubectl("create", "namespace", name)
    yield names
    for name in names:
        for obj in cluster.kubectl("get", "djob", "-n", name, "-o", "name", check=False).split():
            if "/" in obj:
                cluster.kubectl(
                    "patch", obj, "-n", name, "--type=merge",
                    "-p", '{"metadata":{"finalizers":null}}', check=False,
                )  # fmt: skip
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def apply(cluster: Cluster, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))


async def test_signed_jobs_bind_place_time_and_nonce_through_the_api_server(
    cluster: Cluster,
    namespace: str,
    other_namespaces: tuple[str, str],
    start_agent: Any,
    operator_key: OperatorKey,
    tmp_path: Path,
) -> None:
    team_a, (team_b, ops) = namespace, other_namespaces
    alice, bob, carol = Identity.generate(), Identity.generate(), Identity.generate()
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "alice.pub").write_text(encode_public_key(alice.public_key))
    (trusted / "carol.pub").write_text(encode_public_key(carol.public_key))
    (trusted / "carol.notAfter").write_text((now_utc() - timedelta(hours=1)).isoformat())
    # Bob is trusted in team-a only, by a ConfigMap beside the operator.
    apply(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "team-a-submitters",
                "namespace": ops,
                "labels": {"qorch.dev/trusted-submitters-for": team_a},
            },
            "data": {"bob.pub": encode_public_key(bob.public_key)},
        },
    )
    agent = await start_agent(make_node("solo", 8))
    apply(
        cluster,
        {
            "apiVersion": "qorch.dev/v1alpha1",
            "kind": "QuantumNode",
            "metadata": {"name": "solo", "namespace": team_a},
            "spec": {
                "qubits": 8,
                "backend": {"type": "external", "endpoint": agent.endpoint},
                "identity": {"publicKey": agent.public_key},
            },
        },
    )

    # Admitted, then the operator died before writing the status: its nonce is recorded as
    # used by this very object, which must not count as a replay of itself.
    resumed = signed_job(alice, team_a, "resumed")
    apply(cluster, resumed)
    uid = cluster.get("djob", "resumed", team_a)["metadata"]["uid"]
    nonce = parse_signature(resumed["spec"]["signature"]).nonce
    forget_at = int((now_utc() + timedelta(hours=2)).timestamp())
    record = {nonce: [f"{team_a}/resumed/{uid}", forget_at]}
    apply(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": NONCES, "namespace": ops},
            "data": {"nonces.json": json.dumps(record)},
        },
    )

    operator = OperatorProcess(
        cluster,
        team_a,
        tmp_path / "operator.log",
        operator_key.key_file,
        more_namespaces=(team_b,),
        extra_env={
            "QORCH_TRUSTED_SUBMITTERS_DIR": str(trusted),
            "QORCH_OPERATOR_NAMESPACE": ops,
        },
    )
    operator.start()
    try:
        good = signed_job(alice, team_a, "good")
        apply(
            cluster,
            good,
            signed_job(alice, team_b, "good", signed_for=(team_a, "good")),
            signed_job(alice, team_a, "renamed", signed_for=(team_a, "good")),
            signed_job(alice, team_a, "expired", valid_for=-timedelta(hours=2)),
            signed_job(alice, team_a, "forever", valid_for=timedelta(days=3650)),
            signed_job(bob, team_a, "by-bob"),
            signed_job(bob, team_b, "by-bob"),
            signed_job(carol, team_a, "by-carol"),
        )
        expected = {
            (team_a, "good"): ("Succeeded", "SignatureValid", ""),
            (team_a, "resumed"): ("Succeeded", "SignatureValid", ""),
            (team_a, "by-bob"): ("Succeeded", "SignatureValid", ""),
            (team_b, "good"): ("Rejected", "SignatureWrongNamespace", f"namespace {team_a}"),
            (team_a, "renamed"): ("Rejected", "SignatureWrongName", "the name good"),
            (team_a, "expired"): ("Rejected", "SignatureExpired", "signed again"),
            (team_a, "forever"): ("Rejected", "SignatureValidityTooLong", "--valid-for"),
            (team_b, "by-bob"): ("Rejected", "UnknownSigner", f"namespace {team_b}"),
            (team_a, "by-carol"): ("Rejected", "SignerKeyOutsideWindow", "retired at"),
        }
        for (ns, name), (phase, reason, words) in expected.items():
            job = cluster.wait_for("djob", name, ns, terminal, timeout=180)
            status = job["status"]
            authorized = next(c for c in status["conditions"] if c["type"] == "Authorized")
            assert (status["phase"], authorized["reason"]) == (phase, reason), (
                ns,
                name,
                status.get("message"),
                operator.output()[-3000:],
            )
            assert words in authorized["message"], (ns, name, authorized["message"])

        # The record names the jobs that used each nonce, and outlasts the operator.
        operator.kill()
        used = json.loads(cluster.get("configmap", NONCES, ops)["data"]["nonces.json"])
        good_uid = cluster.get("djob", "good", team_a)["metadata"]["uid"]
        good_nonce = parse_signature(good["spec"]["signature"]).nonce
        assert used[good_nonce][0] == f"{team_a}/good/{good_uid}"
        assert len(used) == 3  # good, resumed, by-bob: refused jobs consume no nonce
        operator.start()
        cluster.kubectl("delete", "djob", "good", "-n", team_a, "--timeout=60s")
        apply(cluster, good, signed_job(alice, team_a, "fresh"))
        fresh = cluster.wait_for("djob", "fresh", team_a, terminal, timeout=180)
        assert fresh["status"]["phase"] == "Succeeded", fresh["status"]["message"]
        replay = cluster.wait_for("djob", "good", team_a, terminal, timeout=60)
        authorized = next(c for c in replay["status"]["conditions"] if c["type"] == "Authorized")
        assert (replay["status"]["phase"], authorized["reason"]) == ("Rejected", "NonceReused")
        assert f"already admitted job {team_a}/good (uid {good_uid})" in authorized["message"]
        assert operator.proc is not None and operator.proc.poll() is None
        assert "Traceback" not in operator.output()
    finally:
        operator.stop()
