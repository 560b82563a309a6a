"""Submitter signatures over DistributedJob specs.

Canonical form of a spec: the spec object without its `signature` field, as
JSON with sorted keys, no whitespace, UTF-8 (not \\u-escaped), integral floats
written as integers (1.0 -> 1, since the API server may hand back either), and
no NaN or infinity. The signature is ML-DSA-65 over those bytes with the
context string "qorch-djob-spec-v1", written into `spec.signature` as

    mldsa65:sha256:<hex fingerprint of the signer's public key>:<base64 signature>

CRD defaulting adds fields to a stored spec, so DistributedJob's spec must not
declare schema defaults for a signed spec to verify as submitted.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from qorch.channel.errors import ProviderUnavailable
from qorch.channel.identity import (
    FINGERPRINT_PREFIX,
    Identity,
    fingerprint,
    load_public_key,
)
from qorch.channel.provider import ML_DSA_65, SignatureScheme, get_provider

SPEC_SIGNATURE_CONTEXT = b"qorch-djob-spec-v1"
SIGNATURE_SCHEME = "mldsa65"
SIGNATURE_FIELD = "signature"
JOB_KIND = "DistributedJob"
JOB_GROUP = "qorch.dev"

# Reasons, usable as Kubernetes condition reasons.
UNSIGNED = "Unsigned"
MALFORMED_SIGNATURE = "MalformedSignature"
UNKNOWN_SIGNER = "UnknownSigner"
INVALID_SIGNATURE = "InvalidSignature"
NOT_CANONICAL = "SpecNotCanonical"


class SignatureError(Exception):
    """A spec signature is missing or does not hold; `reason` is a CamelCase constant."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedSigner:
    fingerprint: str
    public_key: bytes


def _normalise(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SignatureError(NOT_CANONICAL, "spec contains NaN or infinity")
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {key: _normalise(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    return value


def canonical_spec(spec: dict[str, Any]) -> bytes:
    """The bytes a submitter signs: see the module docstring."""
    unsigned = {key: value for key, value in spec.items() if key != SIGNATURE_FIELD}
    try:
        text = json.dumps(
            _normalise(unsigned),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (TypeError, ValueError) as exc:
        raise SignatureError(NOT_CANONICAL, f"spec is not plain JSON data: {exc}") from None
    return text.encode("utf-8")


def sign_spec(spec: dict[str, Any], identity: Identity) -> str:
    if identity.algorithm != ML_DSA_65:
        raise ValueError(f"job specs are signed with ML-DSA-65, not {identity.algorithm}")
    signature = identity.sign(canonical_spec(spec), SPEC_SIGNATURE_CONTEXT)
    return f"{SIGNATURE_SCHEME}:{identity.fingerprint}:{base64.b64encode(signature).decode()}"


def _parse(signature: object) -> tuple[str, bytes]:
    if signature is None or signature == "":
        raise SignatureError(UNSIGNED, "the job spec carries no signature")
    if not isinstance(signature, str):
        raise SignatureError(MALFORMED_SIGNATURE, "the signature is not a string")
    parts = signature.strip().split(":")
    if len(parts) != 4 or parts[0] != SIGNATURE_SCHEME or f"{parts[1]}:" != FINGERPRINT_PREFIX:
        raise SignatureError(
            MALFORMED_SIGNATURE, "expected 'mldsa65:sha256:<fingerprint>:<base64 signature>'"
        )
    hex_digest = parts[2].lower()
    if len(hex_digest) != 64 or any(c not in "0123456789abcdef" for c in hex_digest):
        raise SignatureError(MALFORMED_SIGNATURE, "the signer fingerprint is not 64 hex digits")
    try:
        raw = base64.b64decode(parts[3], validate=True)
    except binascii.Error:
        raise SignatureError(MALFORMED_SIGNATURE, "the signature is not valid base64") from None
    return FINGERPRINT_PREFIX + hex_digest, raw


def verify_spec(
    spec: dict[str, Any],
    signature: object,
    trusted_keys: Iterable[bytes],
    *,
    scheme: SignatureScheme | None = None,
) -> VerifiedSigner:
    """Check `signature` over `spec` against trusted submitter keys, or raise SignatureError."""
    signer, raw = _parse(signature)
    trusted = {fingerprint(key): bytes(key) for key in trusted_keys}
    public_key = trusted.get(signer)
    if public_key is None:
        raise SignatureError(UNKNOWN_SIGNER, f"signed by {signer}, which is not a trusted key")
    if not (scheme or get_provider()).verify(
        public_key, raw, canonical_spec(spec), SPEC_SIGNATURE_CONTEXT
    ):
        raise SignatureError(
            INVALID_SIGNATURE,
            f"signature by {signer} does not match the spec (changed after signing, or corrupt)",
        )
    return VerifiedSigner(signer, public_key)


# --- CLI --------------------------------------------------------------------------------------


class _UnusableInput(Exception):
    pass


def _load_documents(job_path: str) -> list[Any]:
    # Imported here: qorch.api's models are not needed by the rest of the channel.
    from qorch.api.yamlload import YamlLoadError, load_file_all

    try:
        documents = [doc for doc in load_file_all(job_path) if doc]
    except YamlLoadError as exc:  # it names the file, document, object and field
        raise _UnusableInput(str(exc)) from None
    except OSError as exc:
        raise _UnusableInput(f"{job_path}: cannot read: {exc.strerror or exc}") from None
    if not any(_is_job(doc) for doc in documents):
        raise _UnusableInput(f"{job_path}: no {JOB_KIND} found")
    return documents


def _is_job(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and document.get("kind") == JOB_KIND
        and str(document.get("apiVersion", "")).startswith(f"{JOB_GROUP}/")
    )


def _job_name(document: dict[str, Any], index: int) -> str:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return f"{JOB_KIND}/{name}" if name else f"{JOB_KIND} (document {index + 1})"


Normalize = Callable[[dict[str, Any]], dict[str, Any]]


def sign_command(job_path: str, key_path: str, normalize: Normalize | None = None) -> int:
    """CLI: sign every DistributedJob in a manifest, print the manifest to stdout.

    `normalize` maps a spec to the form the API server will store (defaults filled in), so
    the signature still verifies after admission. Exit 0 on success, 2 when the manifest or
    key cannot be used.
    """
    try:
        documents = _load_documents(job_path)
        identity = Identity.load(key_path)
        for index, document in enumerate(documents):
            if not _is_job(document):
                continue
            spec = document.get("spec")
            if not isinstance(spec, dict):
                raise _UnusableInput(f"{_job_name(document, index)} has no spec")
            signed = normalize(spec) if normalize else spec
            spec[SIGNATURE_FIELD] = sign_spec(signed, identity)
    except (_UnusableInput, SignatureError, OSError, ValueError, ProviderUnavailable) as exc:
        print(f"sign: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump_all(documents, sort_keys=False))
    return 0


def verify_command(
    job_path: str, trusted_pub_paths: list[str], normalize: Normalize | None = None
) -> int:
    """CLI: verify every DistributedJob's signature against the given public keys.

    Exit 0 when all are valid, 1 when any is not (with its reason), 2 when the
    manifest or keys cannot be used.
    """
    try:
        if not trusted_pub_paths:
            raise _UnusableInput("no trusted public keys given")
        documents = _load_documents(job_path)
        trusted = [load_public_key(path) for path in trusted_pub_paths]
    except (_UnusableInput, OSError, ValueError, ProviderUnavailable) as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 2
    status = 0
    for index, document in enumerate(documents):
        if not _is_job(document):
            continue
        name = _job_name(document, index)
        spec = document.get("spec")
        try:
            if not isinstance(spec, dict):
                raise SignatureError(UNSIGNED, "the job has no spec")
            signed = normalize(spec) if normalize else spec
            signer = verify_spec(signed, spec.get(SIGNATURE_FIELD), trusted)
        except SignatureError as exc:
            print(f"{name}: invalid ({exc.reason}): {exc}")
            status = 1
        else:
            print(f"{name}: valid, signed by {signer.fingerprint}")
    return status
