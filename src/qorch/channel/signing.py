"""Submitter signatures over DistributedJobs: what, where and until when.

A signature binds a job's spec to the namespace and name it may run under, a nonce
and an expiry. The bytes signed are one canonical JSON document:

    {"expires":"<expiry>","name":"<metadata.name>","namespace":"<metadata.namespace>",
     "nonce":"<nonce>","spec":<the spec without its `signature` and `suspend` fields>}

as JSON with sorted keys at every level, no whitespace, UTF-8 (not \\u-escaped), integral
floats written as integers (1.0 -> 1, since the API server may hand back either), and no
NaN or infinity. The nonce is 128 random bits as 32 lowercase hex digits; the expiry is
a UTC time written `YYYYMMDDTHHMMSSZ`. The signature is ML-DSA-65 over those bytes with
the context string "qorch-djob-v2", written into `spec.signature` together with what a
verifier needs to rebuild the document (so the spec stays the submitter's own):

    mldsa65-v2:sha256:<hex fingerprint>:<namespace>/<name>:<nonce>:<expiry>:<base64 signature>

A verifier checks, in this order, each with its own reason: the envelope parses
(Unsigned, MalformedSignature, SignatureOutdated for the spec-only v1 form), the signer
is trusted for the job's namespace (UnknownSigner), the signature holds over the document
the envelope names (InvalidSignature), that document names the job's namespace and name
(SignatureWrongNamespace, SignatureWrongName), the expiry has not passed and is not
further away than the verifier's maximum validity (SignatureExpired,
SignatureValidityTooLong), and the signer's key is within its notBefore/notAfter window
(SignerKeyOutsideWindow). Clocks may disagree by up to CLOCK_SKEW_SECONDS (60 s) either
way. Whether the nonce was used before is the caller's record to keep (NonceReused). All
of this is checked when a job is admitted: a job admitted in time runs to its end.

Trusted keys come as `<name>.pub` entries (files of a folder, keys of a ConfigMap or
Secret), each optionally with `<name>.notBefore` and `<name>.notAfter` beside it holding
RFC 3339 times: publish a new key with a notBefore, let both overlap, retire the old
one with a notAfter.

`suspend` is left out of the signed form: a queue controller (Kueue, as for batch/v1
Jobs) sets and clears it on a submitted job, and holding a job back changes nothing of
what it runs or where.

CRD defaulting adds fields to a stored spec, so DistributedJob's spec must not
declare schema defaults for a signed spec to verify as submitted.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import secrets
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from qorch.channel.errors import ProviderUnavailable
from qorch.channel.identity import (
    FINGERPRINT_PREFIX,
    Identity,
    decode_public_key,
    fingerprint,
)
from qorch.channel.provider import ML_DSA_65, SignatureScheme, get_provider

JOB_SIGNATURE_CONTEXT = b"qorch-djob-v2"
SIGNATURE_SCHEME = "mldsa65-v2"
V1_SIGNATURE_SCHEME = "mldsa65"
SIGNATURE_FIELD = "signature"
# Spec fields a signature does not cover: itself, and the hold a queue controller flips.
UNSIGNED_FIELDS = frozenset({SIGNATURE_FIELD, "suspend"})
JOB_KIND = "DistributedJob"
JOB_GROUP = "qorch.dev"
EXPIRY_FORMAT = "%Y%m%dT%H%M%SZ"
NONCE_HEX_DIGITS = 32  # 128 bits
CLOCK_SKEW_SECONDS = 60
DEFAULT_VALIDITY_SECONDS = 24 * 3600
DEFAULT_MAX_VALIDITY_SECONDS = 7 * 24 * 3600  # QORCH_MAX_SIGNATURE_VALIDITY_SECONDS
DEFAULT_NAMESPACE = "default"  # as kubectl chooses for a manifest without one

# Reasons, usable as Kubernetes condition reasons.
UNSIGNED = "Unsigned"
MALFORMED_SIGNATURE = "MalformedSignature"
OUTDATED_SIGNATURE = "SignatureOutdated"
UNKNOWN_SIGNER = "UnknownSigner"
INVALID_SIGNATURE = "InvalidSignature"
NOT_CANONICAL = "SpecNotCanonical"
WRONG_NAMESPACE = "SignatureWrongNamespace"
WRONG_NAME = "SignatureWrongName"
EXPIRED = "SignatureExpired"
VALIDITY_TOO_LONG = "SignatureValidityTooLong"
KEY_OUTSIDE_WINDOW = "SignerKeyOutsideWindow"
NONCE_REUSED = "NonceReused"
NONCE_RECORD_FULL = "NonceRecordFull"
NONCE_RECORD_UNAVAILABLE = "NonceRecordUnavailable"

_NONCE = re.compile(r"[0-9a-f]{32}")
_KEY_ENTRY = re.compile(r"(?P<stem>[-._a-zA-Z0-9]+)\.(?P<what>pub|notBefore|notAfter)")
# A trusted-key entry larger than this is not a key (a .pub is 2604 characters).
_MAX_ENTRY_BYTES = 16 * 1024


class SignatureError(Exception):
    """A job signature is missing or does not hold; `reason` is a CamelCase constant."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TrustedKey:
    """A submitter public key, the window it may sign in, and where it was found."""

    public_key: bytes
    source: str = ""
    not_before: datetime | None = None
    not_after: datetime | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)


@dataclass(frozen=True)
class Envelope:
    """What `spec.signature` carries besides the signature bytes."""

    signer: str
    namespace: str
    name: str
    nonce: str
    expires_at: datetime
    raw: bytes


@dataclass(frozen=True)
class VerifiedSigner:
    fingerprint: str
    public_key: bytes
    nonce: str
    expires_at: datetime


def now_utc() -> datetime:
    return datetime.now(UTC)


def format_expiry(when: datetime) -> str:
    return when.astimezone(UTC).strftime(EXPIRY_FORMAT)


def _parse_expiry(text: str) -> datetime:
    try:
        return datetime.strptime(text, EXPIRY_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError(
            MALFORMED_SIGNATURE, f"the expiry {text!r} is not a UTC time like 20260101T120000Z"
        ) from None


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


def canonical_job(
    spec: dict[str, Any], namespace: str, name: str, nonce: str, expires_at: datetime
) -> bytes:
    """The bytes a submitter signs: see the module docstring."""
    document = {
        "expires": format_expiry(expires_at),
        "name": name,
        "namespace": namespace,
        "nonce": nonce,
        "spec": {key: value for key, value in spec.items() if key not in UNSIGNED_FIELDS},
    }
    try:
        text = json.dumps(
            _normalise(document),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (TypeError, ValueError) as exc:
        raise SignatureError(NOT_CANONICAL, f"spec is not plain JSON data: {exc}") from None
    return text.encode("utf-8")


def new_nonce() -> str:
    return secrets.token_hex(NONCE_HEX_DIGITS // 2)


def sign_job(
    spec: dict[str, Any],
    namespace: str,
    name: str,
    identity: Identity,
    expires_at: datetime,
    nonce: str | None = None,
) -> str:
    """The `spec.signature` value binding `spec` to namespace/name until `expires_at`."""
    if identity.algorithm != ML_DSA_65:
        raise ValueError(f"jobs are signed with ML-DSA-65, not {identity.algorithm}")
    nonce = nonce or new_nonce()
    if not _NONCE.fullmatch(nonce):
        raise ValueError("a nonce is 32 lowercase hex digits")
    if not namespace or not name or "/" in namespace + name or ":" in namespace + name:
        raise ValueError(f"cannot sign for namespace {namespace!r} and name {name!r}")
    expires_at = expires_at.replace(microsecond=0)
    message = canonical_job(spec, namespace, name, nonce, expires_at)
    signature = base64.b64encode(identity.sign(message, JOB_SIGNATURE_CONTEXT)).decode()
    return ":".join(
        [
            SIGNATURE_SCHEME,
            identity.fingerprint,
            f"{namespace}/{name}",
            nonce,
            format_expiry(expires_at),
            signature,
        ]
    )


def parse_signature(signature: object) -> Envelope:
    """The envelope of a `spec.signature` value, or SignatureError saying what is wrong."""
    if signature is None or signature == "":
        raise SignatureError(UNSIGNED, "the job spec carries no signature")
    if not isinstance(signature, str):
        raise SignatureError(MALFORMED_SIGNATURE, "the signature is not a string")
    parts = signature.strip().split(":")
    if parts[0] == V1_SIGNATURE_SCHEME and len(parts) == 4:
        raise SignatureError(
            OUTDATED_SIGNATURE,
            "a v1 signature covers the spec only, not where and until when it may run:"
            " sign the job again with `qorch sign`",
        )
    if len(parts) != 7 or parts[0] != SIGNATURE_SCHEME or f"{parts[1]}:" != FINGERPRINT_PREFIX:
        raise SignatureError(
            MALFORMED_SIGNATURE,
            f"expected '{SIGNATURE_SCHEME}:sha256:<fingerprint>:<namespace>/<name>:<nonce>"
            ":<expiry>:<base64 signature>', as `qorch sign` writes it",
        )
    hex_digest = parts[2].lower()
    if len(hex_digest) != 64 or any(c not in "0123456789abcdef" for c in hex_digest):
        raise SignatureError(MALFORMED_SIGNATURE, "the signer fingerprint is not 64 hex digits")
    namespace, slash, name = parts[3].partition("/")
    if not slash or not namespace or not name:
        raise SignatureError(MALFORMED_SIGNATURE, "the signed place is not <namespace>/<name>")
    if not _NONCE.fullmatch(parts[4]):
        raise SignatureError(MALFORMED_SIGNATURE, "the nonce is not 32 lowercase hex digits")
    expires_at = _parse_expiry(parts[5])
    try:
        raw = base64.b64decode(parts[6], validate=True)
    except binascii.Error:
        raise SignatureError(MALFORMED_SIGNATURE, "the signature is not valid base64") from None
    return Envelope(FINGERPRINT_PREFIX + hex_digest, namespace, name, parts[4], expires_at, raw)


def _moment(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def verify_job(
    spec: dict[str, Any],
    namespace: str,
    name: str,
    signature: object,
    trusted_keys: Iterable[TrustedKey],
    *,
    now: datetime | None = None,
    max_validity_seconds: float = DEFAULT_MAX_VALIDITY_SECONDS,
    scheme: SignatureScheme | None = None,
) -> VerifiedSigner:
    """Check `signature` over the job at namespace/name against `trusted_keys` (those
    trusted for that namespace), or raise SignatureError; see the module docstring."""
    envelope = parse_signature(signature)
    now = now or now_utc()
    skew = timedelta(seconds=CLOCK_SKEW_SECONDS)
    # A key may be listed more than once (cluster-wide and for the namespace, each with its
    # own window): it may sign while any of its entries is in its window.
    entries = [key for key in trusted_keys if key.fingerprint == envelope.signer]
    if not entries:
        raise SignatureError(
            UNKNOWN_SIGNER,
            f"signed by {envelope.signer}, which is not a trusted submitter key in namespace"
            f" {namespace}",
        )
    message = canonical_job(
        spec, envelope.namespace, envelope.name, envelope.nonce, envelope.expires_at
    )
    public_key = entries[0].public_key
    if not (scheme or get_provider()).verify(
        public_key, envelope.raw, message, JOB_SIGNATURE_CONTEXT
    ):
        raise SignatureError(
            INVALID_SIGNATURE,
            f"signature by {envelope.signer} does not match the job (changed after signing,"
            " or corrupt)",
        )
    if envelope.namespace != namespace:
        raise SignatureError(
            WRONG_NAMESPACE,
            f"signed for namespace {envelope.namespace}, submitted in {namespace}: submit it"
            f" in {envelope.namespace}, or have it signed for {namespace}",
        )
    if envelope.name != name:
        raise SignatureError(
            WRONG_NAME,
            f"signed for the name {envelope.name}, submitted as {name}: submit it as"
            f" {envelope.name}, or have it signed for {name}",
        )
    if now > envelope.expires_at + skew:
        raise SignatureError(
            EXPIRED,
            f"the signature expired at {_moment(envelope.expires_at)}: have the job signed again",
        )
    longest = timedelta(seconds=max_validity_seconds)
    if envelope.expires_at - now > longest + skew:
        raise SignatureError(
            VALIDITY_TOO_LONG,
            f"the signature is valid until {_moment(envelope.expires_at)}, longer than the"
            f" {max_validity_seconds:g} s allowed: sign with a shorter --valid-for",
        )
    if not any(_in_window(key, now, skew) for key in entries):
        raise SignatureError(KEY_OUTSIDE_WINDOW, _outside_window(entries[0], now))
    return VerifiedSigner(envelope.signer, public_key, envelope.nonce, envelope.expires_at)


def _in_window(key: TrustedKey, now: datetime, skew: timedelta) -> bool:
    early = key.not_before is not None and now < key.not_before - skew
    late = key.not_after is not None and now > key.not_after + skew
    return not (early or late)


def _outside_window(key: TrustedKey, now: datetime) -> str:
    if key.not_before is not None and now < key.not_before:
        return (
            f"the signer key {key.fingerprint} is trusted only from"
            f" {_moment(key.not_before)} ({key.source}): sign with a key in use now"
        )
    assert key.not_after is not None
    return (
        f"the signer key {key.fingerprint} was retired at {_moment(key.not_after)}"
        f" ({key.source}): sign with its successor"
    )


# --- trusted keys -----------------------------------------------------------------------------


def _window_time(text: str, where: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{where}: not an RFC 3339 time like 2026-01-01T00:00:00Z") from None
    if when.tzinfo is None:
        raise ValueError(f"{where}: give the time zone, e.g. 2026-01-01T00:00:00Z")
    return when


def trusted_keys_from_entries(
    entries: Mapping[str, str | bytes], source: str
) -> tuple[list[TrustedKey], list[str]]:
    """Trusted keys from `<name>.pub` entries with optional `<name>.notBefore` and
    `<name>.notAfter` beside them; other entries are ignored. Returns the keys and a
    problem per unusable entry (the rest still count)."""
    found: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for entry, value in sorted(entries.items()):
        match = _KEY_ENTRY.fullmatch(entry)
        if not match:
            continue
        if len(value) > _MAX_ENTRY_BYTES:
            problems.append(f"{source} {entry}: larger than {_MAX_ENTRY_BYTES} bytes")
            continue
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        found.setdefault(match["stem"], {})[match["what"]] = text
    keys = []
    for stem, parts in found.items():
        where = f"{source} {stem}"
        try:
            if "pub" not in parts:
                raise ValueError(f"{where}.pub: missing, but its window is given")
            window = {
                what: _window_time(parts[what], f"{where}.{what}")
                for what in ("notBefore", "notAfter")
                if what in parts
            }
            try:
                public_key = decode_public_key(parts["pub"])
            except ValueError as exc:
                raise ValueError(f"{where}.pub: {exc}") from None
        except ValueError as exc:
            problems.append(str(exc))
            continue
        keys.append(
            TrustedKey(
                public_key, f"{source} {stem}.pub", window.get("notBefore"), window.get("notAfter")
            )
        )
    return keys, problems


def _read_bounded(path: Path) -> bytes:
    with path.open("rb") as stream:
        return stream.read(_MAX_ENTRY_BYTES + 1)


def load_trusted_keys(path: str | Path) -> list[TrustedKey]:
    """Trusted keys of a folder of entries, or of one PREFIX.pub file with its window files
    (PREFIX.notBefore, PREFIX.notAfter) beside it; ValueError names what is unusable."""
    path = Path(path)
    if path.is_dir():
        files = [p for p in path.iterdir() if _KEY_ENTRY.fullmatch(p.name) and p.is_file()]
        source = str(path)
    else:
        stem = path.name[: -len(".pub")] if path.name.endswith(".pub") else path.name
        files = [path] + [
            p
            for p in (path.with_name(f"{stem}.notBefore"), path.with_name(f"{stem}.notAfter"))
            if p.is_file()
        ]
        source = str(path.parent)
        if not path.name.endswith(".pub"):
            raise ValueError(f"{path}: a trusted key file is named PREFIX.pub")
    entries = {p.name: _read_bounded(p) for p in files}
    keys, problems = trusted_keys_from_entries(entries, source)
    if problems:
        raise ValueError("; ".join(problems))
    if not keys:
        raise ValueError(f"{path}: no trusted keys (*.pub)")
    return keys


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


def _place(document: dict[str, Any], index: int, namespace: str | None) -> tuple[str, str]:
    """Where the job will live: its manifest's namespace, else `namespace`, else
    "default", as kubectl chooses; a flag contradicting the manifest is an error, as in
    kubectl."""
    metadata = document.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise _UnusableInput(
            f"{_job_name(document, index)}: a signature binds the job's name, so it needs"
            " metadata.name (generateName cannot be signed)"
        )
    own = metadata.get("namespace")
    if own and namespace and own != namespace:
        raise _UnusableInput(
            f"{JOB_KIND}/{name}: the manifest says namespace {own}, --namespace says {namespace}"
        )
    return str(own or namespace or DEFAULT_NAMESPACE), name


Normalize = Callable[[dict[str, Any]], dict[str, Any]]


def sign_command(
    job_path: str,
    key_path: str,
    normalize: Normalize | None = None,
    *,
    namespace: str | None = None,
    valid_for_seconds: float = DEFAULT_VALIDITY_SECONDS,
    max_validity_seconds: float = DEFAULT_MAX_VALIDITY_SECONDS,
) -> int:
    """CLI: sign every DistributedJob in a manifest for its namespace and name, valid for
    `valid_for_seconds`, each with a fresh nonce; print the manifest to stdout.

    `normalize` maps a spec to the form the API server will store (defaults filled in), so
    the signature still verifies after admission. Exit 0 on success, 2 when the manifest,
    key or validity cannot be used.
    """
    try:
        if not 0 < valid_for_seconds <= max_validity_seconds:
            raise _UnusableInput(
                f"--valid-for must be more than 0 and at most {max_validity_seconds:g} s"
                " (QORCH_MAX_SIGNATURE_VALIDITY_SECONDS), which operators refuse beyond"
            )
        documents = _load_documents(job_path)
        try:
            identity = Identity.load(key_path)
        except OSError as exc:
            raise _UnusableInput(f"--key {key_path}: cannot read: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise _UnusableInput(f"--key {key_path}: {exc}") from None
        expires_at = now_utc() + timedelta(seconds=valid_for_seconds)
        for index, document in enumerate(documents):
            if not _is_job(document):
                continue
            job_namespace, name = _place(document, index, namespace)
            spec = document.get("spec")
            if not isinstance(spec, dict):
                raise _UnusableInput(f"{_job_name(document, index)} has no spec")
            signed = normalize(spec) if normalize else spec
            spec[SIGNATURE_FIELD] = sign_job(signed, job_namespace, name, identity, expires_at)
    except (_UnusableInput, SignatureError, OSError, ValueError, ProviderUnavailable) as exc:
        print(f"sign: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump_all(documents, sort_keys=False))
    return 0


def verify_command(
    job_path: str,
    trusted_pub_paths: list[str],
    normalize: Normalize | None = None,
    *,
    namespace: str | None = None,
    max_validity_seconds: float = DEFAULT_MAX_VALIDITY_SECONDS,
) -> int:
    """CLI: verify every DistributedJob's signature against the given public keys (each
    with its window files, if any), for its namespace and name, now.

    Exit 0 when all are valid, 1 when any is not (with its reason), 2 when the
    manifest or keys cannot be used. Whether a nonce was used is only the operator's to know.
    """
    try:
        if not trusted_pub_paths:
            raise _UnusableInput("no trusted public keys given")
        documents = _load_documents(job_path)
        trusted = []
        for path in trusted_pub_paths:
            try:
                trusted.extend(load_trusted_keys(path))
            except OSError as exc:
                raise _UnusableInput(
                    f"--trusted {path}: cannot read: {exc.strerror or exc}"
                ) from None
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
            job_namespace, job_name = _place(document, index, namespace)
            if not isinstance(spec, dict):
                raise SignatureError(UNSIGNED, "the job has no spec")
            signed = normalize(spec) if normalize else spec
            signer = verify_job(
                signed,
                job_namespace,
                job_name,
                spec.get(SIGNATURE_FIELD),
                trusted,
                max_validity_seconds=max_validity_seconds,
            )
        except _UnusableInput as exc:
            print(f"verify: {exc}", file=sys.stderr)
            return 2
        except SignatureError as exc:
            print(f"{name}: invalid ({exc.reason}): {exc}")
            status = 1
        else:
            print(
                f"{name}: valid in namespace {job_namespace}, signed by {signer.fingerprint},"
                f" expires {_moment(signer.expires_at)}"
            )
    return status
