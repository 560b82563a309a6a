"""The `qorch` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from qorch.import_collector import imports_then_freeze

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from qorch.api import QuantumNode
    from qorch.api.manifests import Manifests
    from qorch.pipeline.authorization import AuthorizationPolicy
    from qorch.pipeline.job import PipelineSettings
    from qorch.settings import Settings


def _load_manifests(command: str, args: argparse.Namespace) -> Manifests | None:
    """The manifests (and a check of the policy's YAML), before the pipeline's heavy
    imports: unusable ones end the command at once (None, after saying why)."""
    from qorch.api.manifests import ManifestError, load_manifests
    from qorch.api.yamlload import YamlLoadError, load_file

    try:
        manifests = load_manifests(args.paths)
    except ManifestError as exc:
        print("error: unusable manifests:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None
    try:
        if args.policy:
            load_file(args.policy)
    except YamlLoadError as exc:
        print(f"{command}: policy {exc}", file=sys.stderr)
        return None
    except OSError as exc:
        print(f"{command}: cannot read policy {args.policy}: {exc}", file=sys.stderr)
        return None
    return manifests


def _cmd_run(args: argparse.Namespace) -> int:
    manifests = _load_manifests("run", args)
    if manifests is None:
        return 2
    key_pem = None
    if args.identity_key:  # read before anything starts; its parser is imported below
        from qorch.channel.identity import read_key_file

        try:
            key_pem = read_key_file(args.identity_key)
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            print(f"run: --identity-key {args.identity_key}: {why}", file=sys.stderr)
            return 2
    for option, path in (
        ("--metrics-out", args.metrics_out),
        ("--nonce-record", args.nonce_record),
    ):
        if path and (problem := _unwritable(Path(path))):
            print(f"run: {option} {path}: {problem}", file=sys.stderr)
            return 2
    if any(node.spec.backend.type == "aer" for node in manifests.nodes):
        _start_fork_server()  # up already, unless `main` could not tell a run was asked for
    else:  # external agents only: the server `main` started has nothing to do
        from qorch.local.fork_server import stop_forkserver

        stop_forkserver()
    with imports_then_freeze():  # the whole channel for its key, then the runner: 0.25 s
        from qorch.channel.identity import Identity
        from qorch.local.runner import Unusable, run

    try:
        identity = Identity.from_pem(key_pem) if key_pem is not None else None
    except ValueError as exc:
        print(f"run: --identity-key {args.identity_key}: {exc}", file=sys.stderr)
        return 2

    def prepare() -> PipelineSettings:
        """The settings, read while the agents start: these imports take as long as theirs."""
        from qorch.pipeline.job import PipelineSettings
        from qorch.sanitizer import PolicyError, SanitizerPolicyFile, load_policy

        try:
            authorization = _run_authorization(args)
            policy = load_policy(args.policy) if args.policy else SanitizerPolicyFile()
            env = args.settings
            if args.fail_unverified:
                env = env.model_copy(update={"fail_unverified": True})
            return PipelineSettings.from_settings(env, policy, authorization)
        except (OSError, ValueError, PolicyError) as exc:
            raise Unusable(f"run: {exc}") from exc

    import asyncio

    return asyncio.run(
        run(
            manifests,
            output=args.output,
            metrics_out=args.metrics_out,
            identity=identity,
            prepare=prepare,
        )
    )


def _start_fork_server() -> None:
    """The server that `qorch run` forks its agents from, importing their modules beside
    this process (`local.fork_server`), until the command's end."""
    from qorch.local.fork_server import (
        remove_forkserver_files,
        start_forkserver,
        stop_forkserver,
    )

    if stop_forkserver not in _BEFORE_EXIT:  # once, however often main runs
        _BEFORE_EXIT.extend((stop_forkserver, remove_forkserver_files))
    start_forkserver()


def _asks_for_a_run(argv: list[str]) -> bool:
    """Whether the arguments name the `run` command (and not its help), read before the
    parser: its defaults take 0.1 s of imports (pydantic's settings), which the agents'
    fork server can spend importing theirs. Only a head start: an option before the
    command that it does not know reads as no, and the run starts the server itself."""
    if {"-h", "--help"} & set(argv):
        return False
    rest = list(argv)
    while rest and rest[0].startswith("-"):
        if rest.pop(0) == "--log-level" and rest:
            rest.pop(0)
    return rest[:1] == ["run"]


def _unwritable(path: Path) -> str | None:
    """Why a file could not be written at `path`, as far as can be told before a run
    (which then need not end without the file it was asked for)."""
    if path.is_dir():
        return "a folder, not a file"
    if not path.parent.is_dir():
        return f"no folder {path.parent}"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return f"cannot write in {path.parent}"
    return None


def _run_authorization(args: argparse.Namespace) -> AuthorizationPolicy:
    """`--trusted-submitter [NAMESPACE=]PUB`: keys cluster-wide, or for one namespace."""
    from qorch.channel.signing import TrustedKey, load_trusted_keys
    from qorch.local.nonces import FileNonces
    from qorch.pipeline.authorization import AuthorizationPolicy, StaticKeys
    from qorch.pipeline.nonces import MemoryNonces

    cluster: list[TrustedKey] = []
    namespaces: dict[str, tuple[TrustedKey, ...]] = {}
    for given in args.trusted_submitter:
        head, equals, tail = given.partition("=")  # namespaces have no "="
        namespace, path = (head, tail) if equals else ("", given)
        if not path:  # Path("") would be this folder
            raise ValueError(f"--trusted-submitter {given}: give NAMESPACE=PREFIX.pub or a folder")
        try:
            keys = load_trusted_keys(path)
        except OSError as exc:
            raise ValueError(f"--trusted-submitter {given}: {exc.strerror or exc}") from None
        except ValueError as exc:  # its words name the file
            raise ValueError(f"--trusted-submitter: {exc}") from None
        if equals:
            namespaces[namespace] = (*namespaces.get(namespace, ()), *keys)
        else:
            cluster.extend(keys)
    return AuthorizationPolicy(
        require_signature=bool(args.trusted_submitter),
        keys=StaticKeys(tuple(cluster), namespaces),
        nonces=FileNonces(args.nonce_record) if args.nonce_record else MemoryNonces(),
        max_validity_seconds=args.settings.max_signature_validity_seconds,
    )


def _duration(text: str) -> float:
    """`90`, `90s`, `30m`, `24h` or `7d`, as seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        return float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration like 90s, 30m, 24h, 7d"
        ) from None


def _cmd_plan(args: argparse.Namespace) -> int:
    manifests = _load_manifests("plan", args)
    if manifests is None:
        return 2
    from qorch.local.plan import plan
    from qorch.pipeline.job import PipelineSettings
    from qorch.sanitizer import PolicyError, SanitizerPolicyFile, load_policy

    try:
        policy = load_policy(args.policy) if args.policy else SanitizerPolicyFile()
    except (OSError, ValueError, PolicyError) as exc:
        print(f"plan: {exc}", file=sys.stderr)
        return 2
    return plan(
        manifests, args.output, settings=PipelineSettings.from_settings(args.settings, policy)
    )


def _cmd_crds(args: argparse.Namespace) -> int:
    from qorch.api.crdgen import write_crds

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"crds: --out {args.out}: a file, not a folder", file=sys.stderr)
        return 2
    try:
        written = write_crds(out)
    except OSError as exc:
        print(f"crds: --out {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


def _load_node(args: argparse.Namespace, command: str):  # -> QuantumNode
    """The node manifest the agent runs (exit 2, saying why, where it cannot)."""
    from pydantic import ValidationError

    from qorch.api import QuantumNode
    from qorch.api.yamlload import YamlLoadError, errors_in_a_line, load_file, loads

    def refuse(problem: str) -> NoReturn:
        print(f"{command}: {problem}", file=sys.stderr)
        raise SystemExit(2)

    try:
        if args.node_file:
            source = args.node_file
            document = load_file(source)
        else:
            source = "--node-json" if args.node_json else "QORCH_NODE_MANIFEST"
            raw = args.node_json or args.settings.node_manifest or ""
            if not raw:
                refuse("give --node-file, --node-json or QORCH_NODE_MANIFEST")
            document = loads(raw, source)
        if not isinstance(document, dict):
            refuse(
                f"{source}: {'empty' if document is None else 'not a YAML mapping'}, not a"
                " QuantumNode manifest"
            )
        return QuantumNode.model_validate(document)
    except OSError as exc:
        refuse(f"{source}: cannot read: {exc.strerror or exc}")
    except YamlLoadError as exc:
        refuse(str(exc))
    except ValidationError as exc:
        refuse(f"{source}: invalid QuantumNode manifest: {errors_in_a_line(exc)}")


def _cmd_telemetry_sidecar(args: argparse.Namespace) -> int:
    from qorch.telemetry.sidecar import command

    return command(args)


def _cmd_qpu_agent(args: argparse.Namespace) -> int:
    from qorch.process_ties import name_process

    name_process("qpu-agent")
    # Before the simulator's imports: a bad manifest ends at once.
    node = _load_node(args, "qpu-agent")

    with imports_then_freeze():
        from qorch.qpu.agent import serve
        from qorch.qpu.agent_keys import AgentKeys
        from qorch.qpu.link_state import LinkFileError, LinkStates

    try:
        LinkStates(args.link_file)  # a link file unusable at start ends it at once
    except LinkFileError as exc:
        print(f"qpu-agent: {exc}", file=sys.stderr)
        return 2

    if args.tpm:
        return _tpm_agent(args, node)
    if not args.identity_key or not args.trusted_client_key:
        print(
            "qpu-agent: needs --identity-key and at least one --trusted-client-key", file=sys.stderr
        )
        return 2
    try:
        keys = AgentKeys.load(args.identity_key, args.trusted_client_key)
    except (OSError, ValueError) as exc:
        print(f"qpu-agent: {exc}", file=sys.stderr)
        return 2
    import asyncio

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                node,
                args.host,
                args.port,
                keys,
                node_file=args.node_file,
                link_files=args.link_file,
                link_dir=args.link_dir,
            )
        )
    return 0


def _tpm_agent(args: argparse.Namespace, node: QuantumNode) -> int:
    """The agent with a TPM: its code and node file measured, its key unsealed by the TPM."""
    from qorch.qpu.agent import serve
    from qorch.qpu.agent_keys import AgentKeys

    with imports_then_freeze():
        from qorch.qpu.attestor import Attestor, SealedIdentityError
        from qorch.qpu.tpm import Tpm, TpmError

    if not args.sealed_identity or not args.node_file or not args.trusted_client_key:
        print(
            "qpu-agent: --tpm needs --sealed-identity (from `qorch tpm enroll`), --node-file"
            " and at least one --trusted-client-key",
            file=sys.stderr,
        )
        return 2
    try:
        attestor, identity = Attestor.start(
            Tpm(args.tpm, args.tpm_timeout), Path(args.sealed_identity), Path(args.node_file)
        )
    except (TpmError, SealedIdentityError, OSError, ValueError) as exc:
        print(f"qpu-agent: no identity: {exc}", file=sys.stderr)
        return 3
    try:
        keys = AgentKeys.unsealed(identity, args.trusted_client_key)
    except (OSError, ValueError) as exc:
        print(f"qpu-agent: {exc}", file=sys.stderr)
        return 2
    import asyncio

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                node,
                args.host,
                args.port,
                keys,
                node_file=args.node_file,
                attestor=attestor,
                link_files=args.link_file,
                link_dir=args.link_dir,
            )
        )
    return 0


def _cmd_tpm_enroll(args: argparse.Namespace) -> int:
    import yaml

    from qorch.channel.errors import ProviderUnavailable
    from qorch.channel.identity import Identity
    from qorch.qpu.attestor import enroll
    from qorch.qpu.tpm import Tpm, TpmError

    # A node file the agent could not run is refused here, not at its start.
    _load_node(args, "tpm enroll")
    try:
        identity = Identity.load(args.identity_key) if args.identity_key else Identity.generate()
        enrolment = enroll(
            Tpm(args.tpm, args.tpm_timeout), identity, Path(args.node_file), Path(args.out)
        )
    except (TpmError, OSError, ValueError, ProviderUnavailable) as exc:
        print(f"tpm enroll: {exc}", file=sys.stderr)
        return 1
    print(f"# sealed identity: {args.out} (mode 0600); its key is released only by this TPM,")
    print("# while the agent runs this code with this node file. Pin in the QuantumNode:")

    class Dumper(yaml.SafeDumper):
        """PEM keys as literal blocks, as one pastes them."""

    Dumper.add_representer(
        str,
        lambda dumper, text: dumper.represent_scalar(
            "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
        ),
    )
    fragment = {"spec": {"identity": enrolment.identity_fragment()}}
    print(yaml.dump(fragment, Dumper=Dumper, sort_keys=False), end="")
    return 0


def _cmd_sanitize(args: argparse.Namespace) -> int:
    from qorch.sanitizer.cli import sanitize_command

    return sanitize_command(args.file, args.policy, args.output)


def _cmd_operator(args: argparse.Namespace) -> int:
    with imports_then_freeze():
        import asyncio

        import kopf
        from kubernetes.config import ConfigException

        import qorch.operator  # registers the handlers
        import qorch.sanitizer.qasm3_importer  # noqa: F401  (else the first OpenQASM 3 job)
        from qorch.operator import kube
        from qorch.operator.leader import (
            LeaderElector,
            LeaseTiming,
            default_identity,
            run_as_leader,
        )
        from qorch.pipeline.priority import PriorityClasses

    def operate() -> Coroutine[None, None, None]:
        return kopf.operator(
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            liveness_endpoint=args.liveness,
            standalone=args.peering is None,
            peering_name=args.peering,
        )

    settings = args.settings
    try:
        in_cluster = kube.load_credentials()
    except ConfigException as exc:  # else kopf retries its start-up every minute, forever
        print(
            "operator: no Kubernetes credentials: not in a pod, and no kubeconfig"
            f" (KUBECONFIG, or ~/.kube/config): {exc}",
            file=sys.stderr,
        )
        return 2
    try:
        # Refused here, before a standby waits for the Lease with a table it cannot use.
        PriorityClasses.parse(settings.priority_classes)
        timing = LeaseTiming(
            settings.lease_duration_seconds,
            settings.lease_renew_deadline_seconds,
            settings.lease_retry_seconds,
        )
    except ValueError as exc:
        print(f"operator: {exc}", file=sys.stderr)
        return 2
    if not args.leader_election:
        asyncio.run(operate())
        return 0
    namespace, _ = kube.own_namespace(settings.operator_namespace, in_cluster)
    elector = LeaderElector(namespace, settings.leader_election_lease, default_identity(), timing)
    asyncio.run(run_as_leader(elector, args.liveness, operate))
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from qorch.channel.errors import ProviderUnavailable
    from qorch.channel.identity import Identity

    try:
        identity = Identity.generate()
        key_path, pub_path = identity.save(args.prefix, force=args.force)
    except (OSError, ValueError, ProviderUnavailable) as exc:
        print(f"keygen: {exc}", file=sys.stderr)
        return 1
    print(f"private key: {key_path} (mode 0600, keep it secret)")
    print(f"public key:  {pub_path} (mode 0644)")
    print(f"fingerprint: {identity.fingerprint}")
    return 0


def _unusable_jobs(command: str, path: str) -> bool:
    """Report a manifest whose YAML or DistributedJobs are unusable, as `qorch run` would."""
    from qorch.api.manifests import check_jobs

    problems = check_jobs(path, signing=command == "sign")
    for problem in problems:
        print(f"{command}: {problem}", file=sys.stderr)
    return bool(problems)


def _cmd_sign(args: argparse.Namespace) -> int:
    if _unusable_jobs("sign", args.job):
        return 2
    from qorch.api.distributed_job import stored_spec
    from qorch.channel.signing import sign_command

    return sign_command(
        args.job,
        args.key,
        normalize=stored_spec,
        namespace=args.namespace,
        valid_for_seconds=args.valid_for,
        max_validity_seconds=args.settings.max_signature_validity_seconds,
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    if _unusable_jobs("verify", args.job):
        return 2
    from qorch.api.distributed_job import stored_spec
    from qorch.channel.signing import verify_command

    return verify_command(
        args.job,
        args.trusted,
        normalize=stored_spec,
        namespace=args.namespace,
        max_validity_seconds=args.settings.max_signature_validity_seconds,
    )


def build_parser(env: Settings | None = None) -> argparse.ArgumentParser:
    """The command line; defaults of options that a QORCH_* variable also sets come from
    `env` (the environment's settings when None)."""
    from qorch.settings import LOG_LEVELS, Settings

    env = Settings.from_env() if env is None else env
    parser = argparse.ArgumentParser(prog="qorch", description=__doc__)
    parser.set_defaults(settings=env)
    parser.add_argument("--log-level", default=env.log_level, type=str.upper, choices=LOG_LEVELS)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run manifests on the embedded control plane")
    p.add_argument("paths", nargs="+", help="manifest files or folders")
    p.add_argument("--output", "-o", choices=["text", "json"], default="text")
    p.add_argument("--policy", help="sanitizer policy YAML (default: the built-in policy)")
    p.add_argument("--metrics-out", help="write the run's Prometheus metrics to this file")
    p.add_argument(
        "--identity-key",
        help="operator private key (PREFIX.key) that external agents trust;"
        " a fresh one for this run when unset",
    )
    p.add_argument(
        "--fail-unverified",
        action="store_true",
        help="fail jobs whose result misses its verification threshold",
    )
    p.add_argument(
        "--trusted-submitter",
        action="append",
        default=[],
        metavar="[NAMESPACE=]PUB",
        help="require jobs signed by a trusted key: PREFIX.pub (its window in PREFIX.notBefore"
        " and PREFIX.notAfter, if there) or a folder of them, trusted in every namespace, or"
        " with NAMESPACE= only there; repeatable",
    )
    p.add_argument(
        "--nonce-record",
        metavar="FILE",
        help="remember used signatures in this file, so a signed job is refused when run"
        " again (NonceReused); in memory for this run when unset",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "plan",
        help="print every job's candidate strategies from the manifests' declared figures;"
        " runs nothing",
    )
    p.add_argument("paths", nargs="+", help="manifest files or folders")
    p.add_argument("--output", "-o", choices=["text", "json"], default="text")
    p.add_argument("--policy", help="sanitizer policy YAML (default: the built-in policy)")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("crds", help="write the CustomResourceDefinitions from the API models")
    p.add_argument("--out", default="crds", help="output folder (default: crds)")
    p.set_defaults(func=_cmd_crds)

    p = sub.add_parser("qpu-agent", help="serve a simulated QPU for one QuantumNode")
    p.add_argument(
        "--node-file",
        help="QuantumNode manifest (YAML or JSON); re-read when it changes, e.g. a mounted"
        " ConfigMap, so the node's noise can change without a restart",
    )
    p.add_argument("--node-json", help="QuantumNode manifest as a JSON string")
    p.add_argument(
        "--link-file",
        action="append",
        default=[],
        help="EntanglementLink manifest whose spec is the link's physical state now, which"
        " link probes measure; re-read when it changes, so the link can drift; repeatable",
    )
    p.add_argument(
        "--link-dir",
        help="folder of such manifests, <link>.json each (a mounted ConfigMap), looked up"
        " by the link a probe names; links without one are probed as requested",
    )
    p.add_argument("--host", default=env.agent_host)
    p.add_argument("--port", type=int, default=env.agent_port)
    p.add_argument(
        "--identity-key",
        default=env.identity_key_file,
        help="the node's ML-DSA-65 private key file (env QORCH_IDENTITY_KEY_FILE); re-read"
        " when it changes, so the node's key rotates without a restart",
    )
    p.add_argument(
        "--trusted-client-key",
        action="append",
        default=[k for k in env.trusted_client_key_files.split(":") if k],
        help="file of operator public keys allowed to connect, one per line; repeatable"
        " (env QORCH_TRUSTED_CLIENT_KEY_FILES, colon-separated); re-read when it changes",
    )
    p.add_argument(
        "--tpm",
        metavar="TCTI",
        help="the node's TPM 2.0 (e.g. swtpm:host=127.0.0.1,port=2321 or device:/dev/tpmrm0):"
        " measure code and node file into PCR 23, unseal --sealed-identity, answer attest",
    )
    p.add_argument("--sealed-identity", help="sealed identity file from `qorch tpm enroll`")
    p.add_argument(
        "--tpm-timeout", type=float, default=10.0, help="seconds allowed per TPM command"
    )
    p.set_defaults(func=_cmd_qpu_agent)

    p = sub.add_parser("tpm", help="TPM 2.0 attestation of QPU nodes")
    tpm = p.add_subparsers(dest="tpm_command", required=True)
    p = tpm.add_parser(
        "enroll",
        help="provision the TPM (AK certified by the EK), seal the node's ML-DSA key to its"
        " measurements; prints the spec.identity to pin",
    )
    p.add_argument("--tpm", required=True, metavar="TCTI", help="the node's TPM 2.0")
    p.add_argument("--node-file", required=True, help="the QuantumNode manifest the agent runs")
    p.add_argument(
        "--identity-key", help="the node's ML-DSA-65 private key (PREFIX.key); a new one if unset"
    )
    p.add_argument("--out", required=True, help="where to write the sealed identity file")
    p.add_argument("--tpm-timeout", type=float, default=10.0, help="seconds per TPM command")
    p.set_defaults(func=_cmd_tpm_enroll, node_json=None)

    p = sub.add_parser("operator", help="run the Kubernetes operator (kopf)")
    p.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); all namespaces by default",
    )
    p.add_argument(
        "--liveness",
        default=env.liveness_endpoint,
        help="liveness endpoint, e.g. http://0.0.0.0:8081/healthz",
    )
    p.add_argument(
        "--peering", default=None, help="kopf peering name; standalone (no peering) when unset"
    )
    p.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=env.leader_election,
        help="operate only while holding the Lease QORCH_LEADER_ELECTION_LEASE in the"
        " operator's namespace; wait as a standby otherwise",
    )
    p.set_defaults(func=_cmd_operator)

    from qorch.telemetry.sidecar_options import add_arguments

    p = sub.add_parser("telemetry-sidecar", help="export a QPU agent's metrics and spans")
    add_arguments(p)
    p.set_defaults(func=_cmd_telemetry_sidecar)

    p = sub.add_parser("sanitize", help="check a circuit against the sanitizer policy")
    p.add_argument("file", help="OpenQASM 2 or 3 file")
    p.add_argument("--policy", help="policy YAML (default: the built-in policy)")
    p.add_argument("--output", "-o", choices=["text", "json"], default="text")
    p.set_defaults(func=_cmd_sanitize)

    p = sub.add_parser("keygen", help="write an ML-DSA-65 key pair: PREFIX.key and PREFIX.pub")
    p.add_argument("prefix", help="path prefix of the two files")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace existing files (atomically; a symlink is replaced, never followed)",
    )
    p.set_defaults(func=_cmd_keygen)

    p = sub.add_parser("sign", help="sign the DistributedJobs of a manifest; prints the YAML")
    p.add_argument("job", help="manifest with one or more DistributedJobs")
    p.add_argument("--key", required=True, help="the submitter's private key (PREFIX.key)")
    p.add_argument(
        "--namespace",
        "-n",
        help="namespace the jobs will be submitted in, for jobs whose manifest names none"
        " (default: default, as kubectl)",
    )
    p.add_argument(
        "--valid-for",
        type=_duration,
        default=24 * 3600,
        metavar="DURATION",
        help="how long the signature admits the job, e.g. 30m, 24h (default 24h; at most"
        " QORCH_MAX_SIGNATURE_VALIDITY_SECONDS, 7d by default)",
    )
    p.set_defaults(func=_cmd_sign)

    p = sub.add_parser("verify", help="verify the signatures of a manifest's DistributedJobs")
    p.add_argument("job", help="signed manifest")
    p.add_argument(
        "--trusted",
        action="append",
        required=True,
        help="a trusted submitter public key (PREFIX.pub, with its window files if any)"
        " or a folder of them; repeatable",
    )
    p.add_argument(
        "--namespace",
        "-n",
        help="namespace the jobs will be submitted in, for jobs whose manifest names none"
        " (default: default)",
    )
    p.set_defaults(func=_cmd_verify)
    return parser


# Commands that serve until stopped, and start simulation processes whose pipes they may
# write to after killing them (a cancel): a SIGPIPE must not end them.
SERVING = frozenset({"run", "qpu-agent", "operator", "telemetry-sidecar"})


#: What a command leaves for the end of the process, which `command` ends with os._exit,
#: past the interpreter's exit handlers (a process that called `main` keeps going).
_BEFORE_EXIT: list[Callable[[], None]] = []


def command(argv: list[str] | None = None) -> NoReturn:
    """The `qorch` executable (and `python -m qorch`): `main`, then exit at once.

    When main() returns, the command has written everything and stopped what it started
    (agents, servers, span exporters). The interpreter's teardown of Qiskit's, Aer's and
    NumPy's modules would only add 0.2 to 0.3 s to every command, and to the wait of
    `qorch run` for its agents to stop."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors and help: the same way out
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except KeyboardInterrupt:  # before a command answers Ctrl-C itself (its imports)
        print("qorch: interrupted", file=sys.stderr)
        code = 128 + signal.SIGINT
    except BrokenPipeError:
        if not _stdout_gone():  # another pipe or socket: a failure to show
            raise
        # The reader of its output is gone (`qorch run | head -1`): what it started has
        # been stopped on the way out; end quietly, as a tool that SIGPIPE ends would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 128 + signal.SIGPIPE
    for cleanup in _BEFORE_EXIT:
        with contextlib.suppress(Exception):
            cleanup()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone or a stream closed
            stream.flush()
    os._exit(code)


def _stdout_gone() -> bool:
    """Whether standard output is a pipe whose reader has closed it."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no stdout, or not a file
        return False


#: Commands whose logs are read after the fact beside other components' (kubectl logs).
TIMESTAMPED = frozenset({"qpu-agent", "operator", "telemetry-sidecar"})


def _configure_logging(level: str, command: str) -> None:
    stamp = "%(asctime)s " if command in TIMESTAMPED else ""
    logging.basicConfig(level=level.upper(), format=stamp + "%(levelname)s %(name)s: %(message)s")
    # Qiskit logs every transpiler pass at INFO: dozens of lines per job planned.
    chosen = logging.getLogger().getEffectiveLevel()
    if chosen > logging.DEBUG:
        logging.getLogger("qiskit").setLevel(max(chosen, logging.WARNING))


def main(argv: list[str] | None = None) -> int:
    if _asks_for_a_run(sys.argv[1:] if argv is None else argv):
        _start_fork_server()
    from pydantic import ValidationError

    from qorch.settings import Settings
    from qorch.transpiler_plugins import leave_out_unused

    try:
        env = Settings.from_env()
    except ValidationError as exc:
        for error in exc.errors():
            print(f"qorch: QORCH_{str(error['loc'][0]).upper()}: {error['msg']}", file=sys.stderr)
        return 2
    parser = build_parser(env)
    args = parser.parse_args(argv)
    if argv is None and args.command not in SERVING:
        # Piped into `head`: stop quietly when the reader goes away, as Unix tools do.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    _configure_logging(args.log_level, args.command)
    leave_out_unused()
    return int(args.func(args))
