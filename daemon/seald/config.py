"""seald.toml -> frozen, validated dataclasses.

Every problem names the file, the key and the fix. Unknown keys are errors (a
typo must never silently weaken a rule), and so are missing keys and bad values.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from seald.domain.archive import RENEW_WITHIN_DAYS_RANGE
from seald.domain.chains import (
    AllOf,
    AnyOf,
    Chain,
    Condition,
    Expr,
    Group,
    MOf,
    Money,
    Step,
    When,
    check_chain,
    group_names,
    parse_money,
    resolve,
)
from seald.domain.custody import ALWAYS, SealHours, parse_hours
from seald.domain.errors import ConfigError, SealError
from seald.domain.marks import DEFAULT_MAX_MARKS
from seald.domain.model import Principal, Role, Seal, SealRequest, SealType
from seald.domain.outbox import EventType
from seald.domain.policy import AnyPolicy, ApprovalPolicy, JobPolicy, build_policy
from seald.domain.quotas import Quotas
from seald.domain.seal_shapes import SEAL_SHAPES, allowed_shapes, default_shape
from seald.domain.text_policy import describe, refused_character

FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
SEAL_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
CREDENTIAL_PREFIX = "credential:"


@dataclass(frozen=True)
class ServerConfig:
    listen: str
    host_name: str
    tls_cert: Path
    tls_key: Path
    client_ca: Path
    # Worker processes for the CPU-bound halves of sealing; 0 = one per core (issue 20:
    # the throughput scales with it until the token or the daemon's own share binds,
    # bench/README.md "Scaling").
    seal_workers: int = 0


# A SealRequest of 10,000 documents with two approvals is ~4.2 MB on the wire; this
# keeps the largest one well below the 32 MiB send limit (issue 20).
MAX_DOCUMENTS_PER_REQUEST = 20_000
# More workers than this buys nothing on one token (bench/README.md "Scaling").
MAX_SEAL_WORKERS = 256


@dataclass(frozen=True)
class StoreConfig:
    state_dir: Path


@dataclass(frozen=True)
class MetricsConfig:
    """[metrics]: Prometheus text exposition; off (None) unless a listen address is set."""

    listen: str | None


LOOPBACK_LISTEN = re.compile(r"^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\]):\d{1,5}$")


@dataclass(frozen=True)
class Pkcs11Config:
    module: Path


@dataclass(frozen=True)
class SkfConfig:
    """[skf]: the token vendor's SKF (GM/T 0016) library, for sm2 seals."""

    library: Path


@dataclass(frozen=True)
class SealMakerTokenConfig:
    """[seal_maker] token keys: the maker's SM2 key in a container of an SKF token of its own.

    Separate from every seal's token: the maker signs a seal's SES_Seal when the seal is
    made or remade, never a document. The PIN comes from ``pin_file`` (best a systemd
    credential, ``credential:NAME``), read only at that moment and never logged."""

    device_serial: str
    application: str
    container: str
    pin_file: Path


@dataclass(frozen=True)
class SealMakerConfig:
    """[seal_maker]: who makes the GB/T 38540 SES_Seal of sm2 seals: its SM2 certificate and
    either a key on an SKF token (``token``, production) or a PEM key file (``key``: tests
    and development only - a file key can be copied)."""

    certificate: Path
    key: Path | None = None
    token: SealMakerTokenConfig | None = None


@dataclass(frozen=True)
class TrustConfig:
    seal_ca: Path
    # Issue 19: the CA that issues SM2 seal certificates (ImportSealCertificate of sm2 seals).
    sm2_seal_ca: Path | None = None
    # Issue 6: B-T and up ask this RFC 3161 TSA; B-LT/B-LTA chain seal and TSA
    # certificates to signing_roots (default: seal_ca) and embed their OCSP/CRL.
    tsa_url: str = ""
    signing_roots: tuple[Path, ...] = ()
    fetch_revocation: bool = True


@dataclass(frozen=True)
class AuditConfig:
    """[audit] (issue 5): signed checkpoints of the ledger head and the audit key.

    ``key_dir`` None: <state_dir>/audit. It holds audit-key.pem (0600, created at
    first start), audit-cert.pem and latest-checkpoint.json. ``timestamp_checkpoints``:
    each checkpoint's signed head also gets an RFC 3161 timestamp from ``tsa_url``
    (default: [trust] tsa_url), whose signature must chain to ``tsa_roots``.
    """

    checkpoint_interval_s: float = 300.0
    key_dir: Path | None = None
    timestamp_checkpoints: bool = False
    tsa_url: str = ""
    tsa_roots: tuple[Path, ...] = ()

    def key_directory(self, state_dir: Path) -> Path:
        return self.key_dir if self.key_dir is not None else state_dir / "audit"


@dataclass(frozen=True)
class ArchiveConfig:
    """[archive] (issue 16): renewal of B-LTA documents' archive timestamps.

    A document is due when its newest document timestamp's TSA certificate (or that
    certificate's chain) ends within ``renew_within_days``; the renewal asks [trust]
    tsa_url and validates against [trust] signing_roots.
    """

    renew_within_days: int = 90


# A checkpoint bounds how much of the tail a truncation could hide; at least daily.
CHECKPOINT_INTERVAL_RANGE_S = (1.0, 86400.0)


@dataclass(frozen=True)
class RequestsConfig:
    required_approvals: int
    approval_ttl_hours: float
    max_document_bytes: int
    max_documents_per_request: int
    # Once a request has its quorum, it must be signed within this time (R06).
    approval_use_hours: float = 24.0
    # Issue 8: per-client limits. Unfinished (pending/approved/signing) requests per
    # requester, and a token bucket per principal over every RPC.
    max_pending_per_principal: int = 1000
    rate_limit_per_second: float = 100.0
    rate_limit_burst: int = 500
    # Server-streaming calls (watches, downloads, previews, audit queries, reports) open at
    # once, per principal and in total: a watch holds its slot until it ends.
    max_streams_per_principal: int = 8
    max_open_streams: int = 1024
    # Issue 17: the longest approver delegation an admin may approve.
    max_delegation_days: float = 90.0


@dataclass(frozen=True)
class ImpressionConfig:
    """[impression]: limits for a seal's registered impression (印模, issue 16)."""

    max_bytes: int = 2 * 1024 * 1024
    min_dpi: int = 300


# The image travels in one gRPC message (4 MiB); 150 dpi is the least a seal stays sharp at.
IMPRESSION_MAX_BYTES_RANGE = (1024, 3 * 1024 * 1024)
IMPRESSION_MIN_DPI_RANGE = (150, 1200)


@dataclass(frozen=True)
class LimitsConfig:
    """[limits] of sealing jobs (issue 16)."""

    # Marks per request (and per manifest document): each is drawn and previewed.
    max_marks: int = DEFAULT_MAX_MARKS
    # Whether marks of DIFFERENT seals may overlap on a page (a seal over another seal's
    # impression hides it): refused unless set.
    allow_mark_overlap: bool = False


@dataclass(frozen=True)
class TokensConfig:
    """[tokens]: allow-listed USB token models and the idle auto-lock (issue 3)."""

    models: frozenset[str]  # "vendor:product", lower-case hex, e.g. "096e:0807"
    idle_lock_minutes: float  # 0 = no idle auto-lock


USB_MODEL = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{4}$")


@dataclass(frozen=True)
class SealConfig:
    seal_id: str
    seal_type: SealType
    organisation: str
    display_name: str
    token_label: str
    token_serial: str
    key_label: str
    # None: a new seal (刻制): its key is created on the token and its certificate imported
    # through the API (CreateSealKey, ImportSealCertificate); the database keeps it.
    certificate: Path | None
    categories: frozenset[str]
    size_mm: float
    required_approvals: int
    hours: SealHours = ALWAYS  # R08; "00:00-24:00" when not configured
    # R05: approver groups (default: the seal type's authority) and the optional
    # "one approval from each group" factor; R03: validity window (None = open).
    approver_groups: tuple[str, ...] = ()
    one_from_each_group: bool = False
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    # Issue 6: PAdES level ("B-B", "B-T", "B-LT", "B-LTA") and DocMDP certification
    # when this seal is a document's first signature ("none", "no_changes", "form_filling").
    level: str = "B-B"
    certify: str = "none"
    # Seal image (R01): "round" | "oval" (finance only) | "square" (people's seals);
    # holder_name = the name on a square seal; code_number = digits along the bottom.
    shape: str = "round"
    holder_name: str = ""
    code_number: str = ""
    # Issue 19: the seal key's algorithm and the signature format. "sm2" seals live on SKF
    # tokens ([skf] library; token_serial = DEVINFO serial, key_label = container), or on
    # PKCS#11 tokens with pkcs11_sm2_profile, and sign in the "gbt38540" format, with the
    # SES_Seal made by [seal_maker].
    algorithm: str = "rsa"
    format: str = "pades"
    skf_application: str = "SEAL"  # sm2 seals: the SKF application holding the container key_label
    # sm2 seals on a PKCS#11 token instead of SKF: the token model's vendor SM2 profile
    # (seald/tokens/pkcs11_sm2.py KNOWN_PROFILES); "" = the seal is on an SKF token.
    pkcs11_sm2_profile: str = ""
    # Issue 17: [seal.policy], an ordered / conditional approval chain (group names only;
    # members are filled from the principals when the policy is built).
    policy: Chain | None = None
    # Issue 17: [seal.quota] uses per day / month (in the seal's time_zone), documents per request.
    quotas: Quotas = field(default_factory=Quotas)


@dataclass(frozen=True)
class WebhookConfig:
    """[[notify.webhook]]: one receiver of outbox events (issue 17)."""

    name: str
    url: str
    secret: bytes = field(repr=False)
    ca: Path | None = None  # CA of the receiver's certificate (default: system CAs)
    client_cert: Path | None = None  # client authentication, where the receiver asks
    client_key: Path | None = None
    events: frozenset[str] = frozenset()  # empty = every event type


@dataclass(frozen=True)
class NotifyConfig:
    webhooks: tuple[WebhookConfig, ...] = ()
    initial_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 300.0
    dead_letter_hours: float = 24.0
    timeout_seconds: float = 10.0
    concurrency: int = 16


@dataclass(frozen=True)
class WebAuthnConfig:
    """[webauthn] (issue 18): the relying party the approvers' security keys are bound to.

    ``origin`` is the web console's URL as the browser sees it (https://host[:port]);
    ``rp_id`` its host name (or a registrable suffix of it). Assertions naming another
    origin or RP id are refused."""

    rp_id: str
    origin: str
    rp_name: str = "Seal appliance"


ORIGIN = re.compile(r"^https://[a-z0-9.-]+(:\d{1,5})?$")


def _webauthn(t: _Table) -> WebAuthnConfig:
    origin = t.text("origin", hint="the web console's origin, e.g. 'https://seal.example.com:8443'")
    rp_id = t.text("rp_id", hint="the console's host name, e.g. 'seal.example.com'")
    rp_name = t.text("rp_name", default="Seal appliance", hint="a name shown by the browser")
    t.finish()
    host = origin.removeprefix("https://").rpartition(":")[0] or origin.removeprefix("https://")
    if not ORIGIN.match(origin):
        raise ConfigError(
            f"{t.file}: 'webauthn.origin' = {origin!r}; use https://HOST[:PORT] in lower case, no path"
        )
    if not (host == rp_id or host.endswith("." + rp_id)):
        raise ConfigError(
            f"{t.file}: 'webauthn.rp_id' = {rp_id!r} is not the origin's host {host!r} or a suffix of it"
        )
    return WebAuthnConfig(rp_id=rp_id, origin=origin, rp_name=rp_name)


@dataclass(frozen=True)
class PrincipalConfig:
    principal: Principal
    certificates: frozenset[str]


@dataclass(frozen=True)
class Config:
    path: Path
    server: ServerConfig
    store: StoreConfig
    pkcs11: Pkcs11Config
    trust: TrustConfig
    requests: RequestsConfig
    seals: Mapping[str, SealConfig]
    principals: Mapping[str, PrincipalConfig]
    tokens: TokensConfig = field(default_factory=lambda: TokensConfig(frozenset(), 0.0))
    metrics: MetricsConfig = field(default_factory=lambda: MetricsConfig(None))
    audit: AuditConfig = field(default_factory=AuditConfig)
    webauthn: WebAuthnConfig | None = None
    skf: SkfConfig | None = None
    seal_maker: SealMakerConfig | None = None
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    impression: ImpressionConfig = field(default_factory=ImpressionConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)

    @property
    def audit_dir(self) -> Path:
        """Directory of the audit key, its certificate and the exported latest checkpoint."""
        return self.audit.key_directory(self.store.state_dir)

    def principal_for_fingerprint(self, fingerprint: str) -> Principal | None:
        for entry in self.principals.values():
            if fingerprint in entry.certificates:
                return entry.principal
        return None

    def policy_for(self, seal_id: str, now: datetime | None = None) -> ApprovalPolicy:
        """The seal's approval policy at ``now`` (who is eligible depends on time, R03)."""
        sc = self.seals[seal_id]
        return build_policy(
            seal_id=seal_id,
            seal_type=sc.seal_type,
            required_approvals=sc.required_approvals,
            approver_groups=sc.approver_groups,
            one_from_each_group=sc.one_from_each_group,
            principals=[p.principal for p in self.principals.values()],
            now=now or datetime.now(UTC),
            chain=sc.policy,
        )

    def policy_for_request(self, request: SealRequest, now: datetime | None = None) -> AnyPolicy:
        """A request's policy: its seal's, or for a sealing job (issue 16) every seal's."""
        if not request.is_job:
            return self.policy_for(request.seal_id, now)
        return JobPolicy(tuple((s, self.policy_for(s, now)) for s in request.seal_ids))

    def seal(self, seal_id: str, certificate_sha256: str = "") -> Seal:
        sc = self.seals[seal_id]
        return Seal(
            seal_id=sc.seal_id,
            seal_type=sc.seal_type,
            organisation=sc.organisation,
            display_name=sc.display_name,
            categories=sc.categories,
            required_approvals=sc.required_approvals,
            size_mm=sc.size_mm,
            certificate_sha256=certificate_sha256,
            valid_from=sc.valid_from,
            valid_until=sc.valid_until,
        )


class _Table:
    """A TOML table read strictly: every key must be taken, and only known keys."""

    def __init__(self, file: Path, where: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: [{where}] must be a table")
        self.file, self.where, self.data = file, where, data
        self.taken: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str, default: Any, kind: type | tuple[type, ...], hint: str) -> Any:
        self.taken.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise ConfigError(f"{self.file}: missing key '{self._key(key)}'; add it ({hint})")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(
                f"{self.file}: '{self._key(key)}' = {value!r} is not valid; it must be {hint}"
            )
        return value

    def text(self, key: str, default: Any = None, hint: str = "a string") -> str:
        value = self._get(key, _REQUIRED if default is None else default, str, hint)
        if not value.strip():
            raise ConfigError(f"{self.file}: '{self._key(key)}' is empty; set it ({hint})")
        return str(value)

    def label(self, key: str, default: Any = None, hint: str = "a string") -> str:
        """Text shown to people (names, display names): the one text policy (issue 14)."""
        value = self.text(key, default, hint)
        self.visible(key, value)
        return value

    def visible(self, key: str, value: str) -> None:
        found = refused_character(value)
        if found is not None:
            position, ch = found
            raise ConfigError(
                f"{self.file}: '{self._key(key)}' contains {describe(ch)} at character "
                f"{position + 1}; use visible text only (control, format and bidirectional "
                "characters are refused everywhere text is shown to people)"
            )

    def integer(self, key: str, default: int, hint: str) -> int:
        return int(self._get(key, default, int, hint))

    def number(self, key: str, default: float, hint: str) -> float:
        return float(self._get(key, default, (int, float), hint))

    def strings(self, key: str, hint: str) -> list[str]:
        value = self._get(key, _REQUIRED, list, hint)
        if not value or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{self.file}: '{self._key(key)}' must be {hint}")
        return list(value)

    def path(self, key: str, hint: str, *, must_exist: bool = True) -> Path:
        raw = self.text(key, hint=hint)
        if raw.startswith(CREDENTIAL_PREFIX):
            return credential_path(self.file, self._key(key), raw[len(CREDENTIAL_PREFIX) :])
        path = Path(raw)
        if not path.is_absolute():
            path = self.file.parent / path
        if must_exist and not path.exists():
            raise ConfigError(
                f"{self.file}: '{self._key(key)}' = {raw}: no such file; fix the path"
            )
        return path

    def optional_strings(self, key: str, hint: str) -> list[str]:
        value = self._get(key, [], list, hint)
        if not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{self.file}: '{self._key(key)}' must be {hint}")
        return list(value)

    def boolean(self, key: str, default: bool, hint: str) -> bool:
        return bool(self._get(key, default, bool, hint))

    def when(self, key: str) -> datetime | None:
        """An optional TOML date-time with offset (e.g. 2026-01-01T00:00:00+08:00) or date."""
        hint = "a date-time with offset such as 2026-01-01T00:00:00+08:00, or a date"
        value = self._get(key, None, (datetime, date), hint)
        if value is None:
            return None
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ConfigError(
                    f"{self.file}: '{self._key(key)}' = {value} has no UTC offset; add one "
                    "(e.g. +08:00) so the window is unambiguous"
                )
            return value
        return datetime(value.year, value.month, value.day, tzinfo=UTC)

    def table(self, key: str) -> _Table:
        self.taken.add(key)
        if key not in self.data:
            raise ConfigError(f"{self.file}: missing table [{self._key(key)}]; add it")
        return _Table(self.file, self._key(key), self.data[key])

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.taken)
        if unknown:
            raise ConfigError(
                f"{self.file}: unknown key '{self._key(unknown[0])}'; remove it or fix its spelling "
                "(see systemd/seald.example.toml for every key)"
            )


_REQUIRED = object()


def credential_path(file: Path, key: str, name: str) -> Path:
    """systemd LoadCredential=: the file lives in $CREDENTIALS_DIRECTORY."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ConfigError(
            f"{file}: '{key}' uses credential:{name} but $CREDENTIALS_DIRECTORY is not set; "
            "run under systemd with LoadCredential= or give a file path"
        )
    path = Path(directory) / name
    if not path.exists():
        raise ConfigError(f"{file}: '{key}': credential {name} not found in {directory}")
    return path


def _existing(file: Path, key: str, candidate: Path) -> Path:
    if not candidate.is_file():
        raise ConfigError(f"{file}: '{key}': {candidate} does not exist; give a CA PEM file")
    return candidate


def _seal(file: Path, raw: Any, default_approvals: int) -> SealConfig:
    t = _Table(file, "seal", raw)
    seal_id = t.text("id", hint="a short id such as 'contract'")
    if not SEAL_ID.match(seal_id):
        raise ConfigError(f"{file}: seal id '{seal_id}' must be lowercase letters, digits, - or _")
    t.where = f"seal[{seal_id}]"
    type_name = t.text("type", hint="one of " + ", ".join(s.value for s in SealType))
    try:
        seal_type = SealType(type_name)
    except ValueError as ex:
        raise ConfigError(
            f"{file}: '{t.where}.type' = {type_name!r}; use one of "
            + ", ".join(s.value for s in SealType)
        ) from ex
    required = t.integer("required_approvals", default_approvals, "an integer >= 2")
    if required < 2:
        raise ConfigError(f"{file}: '{t.where}.required_approvals' must be at least 2 (R05)")
    groups = t.optional_strings("approver_groups", "a list of approver group names")
    one_from_each = t.boolean("one_from_each_group", False, "true or false")
    if one_from_each and not groups:
        raise ConfigError(
            f"{file}: '{t.where}.one_from_each_group' needs '{t.where}.approver_groups'; "
            "list the groups that must each approve"
        )
    valid_from, valid_until = t.when("valid_from"), t.when("valid_until")
    if valid_from and valid_until and valid_until <= valid_from:
        raise ConfigError(f"{file}: '{t.where}.valid_until' must be after valid_from")
    size = t.number("size_mm", 42.0, "the seal diameter in mm, 10 to 100")
    if not 10.0 <= size <= 100.0:
        raise ConfigError(f"{file}: '{t.where}.size_mm' = {size}; use 10 to 100 mm")
    seal = SealConfig(
        seal_id=seal_id,
        seal_type=seal_type,
        organisation=t.label("organisation", hint="the organisation's registered name"),
        display_name=t.label("display_name", hint="e.g. 合同专用章"),
        token_label=t.text("token_label", hint="the PKCS#11 token label"),
        token_serial=t.text("token_serial", hint="the token's serial number"),
        key_label=t.text("key_label", hint="the label of the key and certificate on the token"),
        certificate=(
            t.path("certificate", "the seal certificate PEM (the one on the token)")
            if "certificate" in t.data
            else None
        ),
        categories=frozenset(
            _visible_all(t, "categories", t.strings("categories", "a non-empty list of document categories"))
        ),
        size_mm=size,
        required_approvals=required,
        hours=_hours(t),
        approver_groups=tuple(groups),
        one_from_each_group=one_from_each,
        valid_from=valid_from,
        valid_until=valid_until,
        level=_choice(t, "level", "B-B", SIGNATURE_LEVELS),
        certify=_choice(t, "certify", "none", CERTIFY_MODES),
        algorithm=_choice(t, "algorithm", "rsa", SEAL_ALGORITHMS),
        format=_choice(t, "format", "pades", SEAL_FORMATS),
        skf_application=t.text("skf_application", "SEAL", "the SKF application name on the token"),
        pkcs11_sm2_profile=(
            _choice(t, "pkcs11_sm2_profile", "sansec-hsm", PKCS11_SM2_PROFILES)
            if "pkcs11_sm2_profile" in t.data
            else ""
        ),
        **_seal_image_keys(t, seal_type),
        policy=_policy(t.table("policy")) if "policy" in t.data else None,
        quotas=_quotas(t.table("quota")) if "quota" in t.data else Quotas(),
    )
    if seal.policy is not None and (groups or one_from_each):
        raise ConfigError(
            f"{file}: '{t.where}.policy' replaces approver_groups and one_from_each_group; "
            "name the groups in the policy and remove those keys"
        )
    t.finish()
    if seal.pkcs11_sm2_profile and seal.algorithm != "sm2":
        raise ConfigError(
            f"{file}: '{t.where}.pkcs11_sm2_profile' = {seal.pkcs11_sm2_profile!r} with algorithm = "
            f"{seal.algorithm!r}: the profile says how a PKCS#11 token signs SM2; "
            "set algorithm = \"sm2\" or remove the key"
        )
    if (seal.algorithm == "sm2") != (seal.format == "gbt38540"):
        raise ConfigError(
            f"{file}: '{t.where}.algorithm' = {seal.algorithm!r} with format = {seal.format!r}: "
            "SM2 seals sign in the GB/T 38540 format (algorithm = \"sm2\", format = \"gbt38540\"), "
            "RSA and ECDSA seals in PAdES"
        )
    # GB/T 38540 has one optional addition to a signature: the RFC 3161 timeStamp (B-T);
    # DSS/long-term validation and DocMDP certification are PAdES notions.
    if seal.format == "gbt38540" and (seal.level not in ("B-B", "B-T") or seal.certify != "none"):
        raise ConfigError(
            f"{file}: '{t.where}.level' = {seal.level!r}, certify = {seal.certify!r}: a gbt38540 seal "
            "uses level = \"B-B\" (no timestamp) or \"B-T\" (an RFC 3161 timeStamp in the "
            "SES_Signature) and certify = \"none\"; B-LT, B-LTA and certify are PAdES only"
        )
    return seal


def _quotas(t: _Table) -> Quotas:
    values = {
        key: t.integer(key, 0, "a count >= 0 (0 = no quota)")
        for key in ("uses_per_day", "uses_per_month", "documents_per_request")
    }
    for key, value in values.items():
        if value < 0:
            raise ConfigError(
                f"{t.file}: '{t.where}.{key}' = {value}; give a count >= 0 (0 = no quota)"
            )
    t.finish()
    day, month = values["uses_per_day"], values["uses_per_month"]
    if day and month and month < day:
        raise ConfigError(
            f"{t.file}: '{t.where}.uses_per_month' is below uses_per_day; raise it or drop one"
        )
    return Quotas(**values)


LOOPBACK_HOSTS = ("localhost",)
WEBHOOK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MIN_SECRET_BYTES = 16


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_webhook_url(file: Path, key: str, url: str) -> str:
    """https only (plain http only to a loopback receiver, for tests)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host:
        raise ConfigError(f"{file}: '{key}' = {url!r} has no host; give https://host/path")
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host)):
        if parts.username or parts.password:
            raise ConfigError(
                f"{file}: '{key}' carries a user name or password; the HMAC secret authenticates "
                "seald, remove them from the URL"
            )
        return url
    raise ConfigError(
        f"{file}: '{key}' = {url!r} is not https; webhooks carry request ids and states and "
        "must be sent over TLS (plain http is allowed only to a loopback receiver, for tests)"
    )


def _seal_maker(path: Path, t: _Table) -> SealMakerConfig:
    """[seal_maker]: the certificate, and the key either on an SKF token or in a PEM file."""
    certificate = t.path("certificate", "the seal maker's SM2 certificate PEM")
    token_keys = ("token_serial", "application", "container", "pin_file")
    given = [k for k in token_keys if k in t.data]
    if "key" in t.data and given:
        raise ConfigError(
            f"{path}: [seal_maker] has both 'key' (a PEM file) and token keys ({', '.join(given)}); "
            "keep one: the token keys in production, 'key' only for tests and development"
        )
    if given:
        token = SealMakerTokenConfig(
            device_serial=t.text("token_serial", hint="the maker token's SKF device serial (DEVINFO)"),
            application=t.text("application", hint="the SKF application holding the maker's container"),
            container=t.text("container", hint="the SKF container holding the maker's SM2 key"),
            pin_file=t.path("pin_file", "a file (or credential:NAME) holding the maker token's user PIN"),
        )
        t.finish()
        return SealMakerConfig(certificate=certificate, token=token)
    if "key" not in t.data:
        raise ConfigError(
            f"{path}: [seal_maker] has no key; add token_serial, application, container and pin_file "
            "(the maker's key on an SKF token), or key = \"maker.key\" (a PEM file, tests only)"
        )
    key = t.path("key", "the seal maker's SM2 private key PEM (tests and development only)")
    t.finish()
    return SealMakerConfig(certificate=certificate, key=key)


def _notify(t: _Table) -> NotifyConfig:
    hooks: list[WebhookConfig] = []
    raw = t._get("webhook", [], list, "a list of [[notify.webhook]] tables")
    for i, item in enumerate(raw):
        w = _Table(t.file, f"{t.where}.webhook[{i}]", item)
        name = w.text("name", hint="a short name such as 'oa'")
        if not WEBHOOK_NAME.match(name) or name in {h.name for h in hooks}:
            raise ConfigError(
                f"{t.file}: '{w.where}.name' = {name!r}: give a unique lower-case name (a-z, 0-9, -, _)"
            )
        w.where = f"{t.where}.webhook[{name}]"
        url = check_webhook_url(t.file, f"{w.where}.url", w.text("url", hint="https://host/path"))
        secret_path = w.path("secret", "a file (or credential:NAME) holding the HMAC secret")
        secret = secret_path.read_bytes().strip()
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{t.file}: '{w.where}.secret': the secret in {secret_path} is shorter than "
                f"{MIN_SECRET_BYTES} bytes; generate one with `openssl rand -hex 32`"
            )
        events = w.optional_strings("events", "a list of event types")
        known = {e.value for e in EventType}
        unknown = [e for e in events if e not in known]
        if unknown:
            raise ConfigError(
                f"{t.file}: '{w.where}.events' has {unknown[0]!r}; use some of "
                + ", ".join(sorted(known))
            )
        cert = w.path("client_cert", "the client certificate PEM") if "client_cert" in w.data else None
        key = (
            w.path("client_key", "the client key PEM or credential:NAME")
            if "client_key" in w.data
            else None
        )
        if (cert is None) != (key is None):
            raise ConfigError(f"{t.file}: '{w.where}': give client_cert and client_key together")
        hooks.append(
            WebhookConfig(
                name=name,
                url=url,
                secret=secret,
                ca=w.path("ca", "the CA PEM of the receiver's certificate") if "ca" in w.data else None,
                client_cert=cert,
                client_key=key,
                events=frozenset(events),
            )
        )
        w.finish()
    config = NotifyConfig(
        webhooks=tuple(hooks),
        initial_backoff_seconds=t.number("initial_backoff_seconds", 1.0, "seconds, > 0"),
        max_backoff_seconds=t.number("max_backoff_seconds", 300.0, "seconds, >= initial"),
        dead_letter_hours=t.number("dead_letter_hours", 24.0, "hours, > 0"),
        timeout_seconds=t.number("timeout_seconds", 10.0, "seconds, > 0"),
        concurrency=t.integer("concurrency", 16, "deliveries in flight per webhook, 1 to 256"),
    )
    t.finish()
    if not 0 < config.initial_backoff_seconds <= config.max_backoff_seconds:
        raise ConfigError(
            f"{t.file}: 'notify.initial_backoff_seconds' must be > 0 and <= max_backoff_seconds"
        )
    if config.dead_letter_hours <= 0 or config.timeout_seconds <= 0:
        raise ConfigError(f"{t.file}: 'notify.dead_letter_hours' and 'notify.timeout_seconds' must be > 0")
    if not 1 <= config.concurrency <= 256:
        raise ConfigError(f"{t.file}: 'notify.concurrency' must be 1 to 256")
    return config


_EXPR_KEYS = ("group", "all_of", "any_of", "m_of")


def _policy(t: _Table) -> Chain:
    """[seal.policy]: ``sequence = [steps]`` or one expression (a one-step chain)."""
    if "sequence" in t.data:
        raw = t._get("sequence", _REQUIRED, list, "a list of steps { step = NAME, ... }")
        if not raw:
            raise ConfigError(f"{t.file}: '{t.where}.sequence' is empty; list at least one step")
        steps = []
        for i, item in enumerate(raw):
            st = _Table(t.file, f"{t.where}.sequence[{i}]", item)
            name = st.text("step", hint="a step name such as 'legal'")
            when = _condition(st.table("when")) if "when" in st.data else None
            steps.append(Step(name, _expr_of(st), when))
            st.finish()
        t.finish()
        return Chain(tuple(steps))
    expr = _expr_of(t)
    t.finish()
    return Chain((Step("approval", expr),))


def _expr(file: Path, where: str, raw: Any) -> Expr:
    if isinstance(raw, str):
        if not raw.strip():
            raise ConfigError(f"{file}: '{where}' is an empty group name")
        return Group(raw, frozenset())
    t = _Table(file, where, raw)
    expr = _expr_of(t)
    if "when" in t.data:
        expr = When(_condition(t.table("when")), expr)
    t.finish()
    return expr


def _expr_of(t: _Table) -> Expr:
    """The one expression key of a table (group / all_of / any_of / m_of)."""
    present = [k for k in _EXPR_KEYS if k in t.data]
    if len(present) != 1:
        raise ConfigError(
            f"{t.file}: '{t.where}' must have exactly one of " + ", ".join(_EXPR_KEYS)
            + (f" (has {', '.join(present)})" if present else "")
        )
    key = present[0]
    if key == "group":
        name = t.text("group", hint="an approver group name")
        count = t.integer("count", 1, "how many distinct members of the group, >= 1")
        if count < 1:
            raise ConfigError(f"{t.file}: '{t.where}.count' must be at least 1")
        return Group(name, frozenset(), count)
    if key == "m_of":
        mt = t.table("m_of")
        m = mt.integer("m", 0, "how many of the items must be met, >= 1")
        items = _items(mt, "of")
        mt.finish()
        return MOf(m, items)
    items = _items(t, key)
    return AllOf(items) if key == "all_of" else AnyOf(items)


def _items(t: _Table, key: str) -> tuple[Expr, ...]:
    raw = t._get(key, _REQUIRED, list, "a list of group names or expressions")
    if not raw:
        raise ConfigError(
            f"{t.file}: '{t.where}.{key}' is an empty group; an empty group never passes. "
            "List at least one group"
        )
    return tuple(_expr(t.file, f"{t.where}.{key}[{i}]", item) for i, item in enumerate(raw))


def _condition(t: _Table) -> Condition:
    categories = t.optional_strings("categories", "a list of document categories")
    over: Money | None = None
    if "amount_over" in t.data:
        value = t._get("amount_over", _REQUIRED, (str, int), 'a decimal as a string ("100000")')
        currency = t.text("currency", hint="the ISO 4217 code of amount_over, e.g. CNY")
        try:
            over = parse_money(str(value), currency)
        except SealError as ex:
            raise ConfigError(f"{t.file}: '{t.where}.amount_over': {ex.message}") from ex
    elif "currency" in t.data:
        raise ConfigError(f"{t.file}: '{t.where}.currency' needs amount_over")
    t.finish()
    if not categories and over is None:
        raise ConfigError(
            f"{t.file}: '{t.where}' has no condition; give categories and/or amount_over"
        )
    return Condition(frozenset(categories) if categories else None, over)


def _check_policies(
    path: Path, seals: Mapping[str, SealConfig], principals: Mapping[str, PrincipalConfig]
) -> None:
    """Issue 17: refuse to start with a chain that could not (or too cheaply) be met."""
    for seal in seals.values():
        if seal.policy is None:
            continue
        people = [p.principal for p in principals.values()]
        groups = group_names(seal.policy)
        members = {
            g: frozenset(
                p.name for p in people if p.has(Role.APPROVER, seal.seal_id) and g in p.groups
            )
            for g in groups
        }
        requesters = [p.name for p in people if p.has(Role.REQUESTER, seal.seal_id)]
        try:
            check_chain(
                seal.seal_id,
                resolve(seal.policy, members),
                required_approvals=seal.required_approvals,
                requesters=requesters,
            )
        except ConfigError as ex:
            raise ConfigError(f"{path}: {ex}") from ex


def _seal_image_keys(t: _Table, seal_type: SealType) -> dict[str, str]:
    """shape / holder_name / code_number, checked against the seal type (R01)."""
    shapes = allowed_shapes(seal_type.value)
    shape = _choice(t, "shape", default_shape(seal_type.value), SEAL_SHAPES)
    if shape not in shapes:
        raise ConfigError(
            f"{t.file}: '{t.where}.shape' = {shape!r} does not fit a {seal_type.value} seal; "
            "use " + " or ".join(repr(s) for s in shapes)
        )
    holder = "".join(str(t._get("holder_name", "", str, "the person's name")).split())
    if shape == "square" and not 2 <= len(holder) <= 4:
        raise ConfigError(
            f"{t.file}: '{t.where}.holder_name' = {holder!r}; a square seal needs the "
            "person's name, 2 to 4 characters (e.g. 张伟)"
        )
    if shape != "square" and holder:
        raise ConfigError(
            f"{t.file}: '{t.where}.holder_name' is only for square (personal) seals; remove it"
        )
    code = str(t._get("code_number", "", str, "the seal's registration code, digits only"))
    if code and not (code.isascii() and code.isdigit() and len(code) <= 20):
        raise ConfigError(
            f"{t.file}: '{t.where}.code_number' = {code!r}; use up to 20 digits (0-9)"
        )
    if code and shape == "square":
        raise ConfigError(
            f"{t.file}: '{t.where}.code_number' is not drawn on square seals; remove it"
        )
    return {"shape": shape, "holder_name": holder, "code_number": code}


SIGNATURE_LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
CERTIFY_MODES = ("none", "no_changes", "form_filling")
# Key algorithms and signature formats (issue 19): sm2 <=> gbt38540 on SKF tokens.
SEAL_ALGORITHMS = ("rsa", "ecdsa-p256", "sm2")
# The token models whose vendor SM2 mechanism is known (seald.tokens.pkcs11_sm2.KNOWN_PROFILES;
# a test checks the two agree: the config stays free of token imports).
PKCS11_SM2_PROFILES = ("sansec-hsm", "sansec-hsm-sm3-der", "tass-hsm", "tass-hsm-sm3")
SEAL_FORMATS = ("pades", "gbt38540")


def _choice(t: _Table, key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = t.text(key, default, "one of " + ", ".join(allowed))
    if value not in allowed:
        raise ConfigError(
            f"{t.file}: '{t.where}.{key}' = {value!r}; use one of " + ", ".join(allowed)
        )
    return value


def _hours(t: _Table) -> SealHours:
    """R08: per seal allowed hours, time zone and the same-day-return grace."""
    text = t.text("hours", default="00:00-24:00", hint="HH:MM-HH:MM, e.g. '08:30-18:00'")
    zone = t.text("time_zone", default="Asia/Shanghai", hint="an IANA zone, e.g. 'Asia/Shanghai'")
    grace = t.number("return_grace_minutes", 60.0, "minutes after the end of hours, >= 0")
    try:
        return parse_hours(text, zone, grace)
    except ConfigError as ex:
        raise ConfigError(f"{t.file}: '{t.where}': {ex}") from ex


def _tokens(file: Path, raw: Any) -> TokensConfig:
    t = _Table(file, "tokens", raw)
    models = [m.lower() for m in t.strings("models", "a list of USB 'vendor:product' hex ids")]
    bad = [m for m in models if not USB_MODEL.match(m)]
    if bad:
        raise ConfigError(f"{file}: 'tokens.models' has {bad[0]!r}; use 4+4 hex digits, e.g. '096e:0807'")
    idle = t.number("idle_lock_minutes", 0.0, "minutes without a signature before auto-lock; 0 = off")
    if idle < 0:
        raise ConfigError(f"{file}: 'tokens.idle_lock_minutes' must be >= 0 (0 turns it off)")
    t.finish()
    return TokensConfig(models=frozenset(models), idle_lock_minutes=idle)


def _metrics(t: _Table) -> MetricsConfig:
    listen = t.text("listen", hint="a loopback host:port, e.g. '127.0.0.1:9464'")
    # Local only: the numbers describe seal use; a remote scraper goes through the host.
    if not LOOPBACK_LISTEN.match(listen) or not 0 < int(listen.rpartition(":")[2]) < 65536:
        raise ConfigError(
            f"{t.file}: 'metrics.listen' = {listen!r}; use a loopback address and port such as "
            "'127.0.0.1:9464' (or remove [metrics] to turn the endpoint off)"
        )
    t.finish()
    return MetricsConfig(listen=listen)


def _visible_all(t: _Table, key: str, values: list[str]) -> list[str]:
    for value in values:
        t.visible(key, value)
    return values


def _principal(file: Path, raw: Any, seal_ids: frozenset[str]) -> PrincipalConfig:
    t = _Table(file, "principal", raw)
    name = t.label("name", hint="the person's or system's login name")
    t.where = f"principal[{name}]"
    roles: set[Role] = set()
    for role in t.strings("roles", "a list of: " + ", ".join(r.value for r in Role)):
        try:
            roles.add(Role(role))
        except ValueError as ex:
            raise ConfigError(
                f"{file}: '{t.where}.roles' has {role!r}; use " + ", ".join(r.value for r in Role)
            ) from ex
    if Role.RELAY in roles and roles != {Role.RELAY}:
        raise ConfigError(
            f"{file}: '{t.where}.roles' gives the relay role together with others; the web "
            "console's identity must be a relay only (it never approves, requests or holds a seal)"
        )
    # The relay acts on no seal of its own: 'seals' may be left out for it.
    relay_only = roles == {Role.RELAY}
    seal_hint = "a list of seal ids"
    seals = frozenset(t.optional_strings("seals", seal_hint) if relay_only else t.strings("seals", seal_hint))
    unknown = sorted(seals - seal_ids)
    if unknown:
        raise ConfigError(f"{file}: '{t.where}.seals' names unknown seal '{unknown[0]}'; define it")
    certs = [c.lower().replace(":", "") for c in t.strings("certificates", "SHA-256 fingerprints")]
    bad = [c for c in certs if not FINGERPRINT.match(c)]
    if bad:
        raise ConfigError(
            f"{file}: '{t.where}.certificates' has {bad[0]!r}; give the hex SHA-256 of the "
            "certificate's DER (openssl x509 -noout -fingerprint -sha256)"
        )
    groups = frozenset(t.optional_strings("groups", "a list of approver group names"))
    valid_from, valid_until = t.when("valid_from"), t.when("valid_until")
    if valid_from and valid_until and valid_until <= valid_from:
        raise ConfigError(f"{file}: '{t.where}.valid_until' must be after valid_from")
    entry = PrincipalConfig(
        principal=Principal(
            name=name,
            display_name=t.label("display_name", default=name, hint="a display name"),
            roles=frozenset(roles),
            seal_ids=seals,
            groups=groups,
            valid_from=valid_from,
            valid_until=valid_until,
        ),
        certificates=frozenset(certs),
    )
    t.finish()
    return entry


def _check_request_limits(path: Path, requests: RequestsConfig) -> None:
    """[requests] limits (issue 8): each must be a real bound; there is no "off" value."""
    if requests.max_document_bytes < 1:
        raise ConfigError(f"{path}: 'requests.max_document_bytes' must be at least 1 byte")
    if requests.max_pending_per_principal < 1:
        raise ConfigError(
            f"{path}: 'requests.max_pending_per_principal' must be at least 1; "
            "raise it instead of turning the limit off"
        )
    if not 0 < requests.rate_limit_per_second <= 1_000_000:
        raise ConfigError(
            f"{path}: 'requests.rate_limit_per_second' = {requests.rate_limit_per_second:g}; "
            "use calls per second per principal, > 0 (e.g. 100)"
        )
    if requests.rate_limit_burst < 1:
        raise ConfigError(
            f"{path}: 'requests.rate_limit_burst' = {requests.rate_limit_burst}; use a count >= 1 "
            "(calls a principal may make at once before the per-second rate applies)"
        )
    if requests.max_streams_per_principal < 1:
        raise ConfigError(
            f"{path}: 'requests.max_streams_per_principal' = {requests.max_streams_per_principal}; "
            "use a count >= 1 of streams (watches, downloads) one principal may hold open at once"
        )
    if requests.max_open_streams < requests.max_streams_per_principal:
        raise ConfigError(
            f"{path}: 'requests.max_open_streams' = {requests.max_open_streams} is below "
            f"'requests.max_streams_per_principal' = {requests.max_streams_per_principal}; "
            "the server-wide cap must allow at least one principal's streams (e.g. 1024)"
        )


def load_config(path: Path) -> Config:  # noqa: C901 - one section after another, each checked in place
    path = path.resolve()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as ex:
        raise ConfigError(f"{path}: no such config file; pass --config PATH") from ex
    except tomllib.TOMLDecodeError as ex:
        raise ConfigError(f"{path}: not valid TOML: {ex}") from ex
    root = _Table(path, "", raw)
    server_t = root.table("server")
    server = ServerConfig(
        listen=server_t.text("listen", hint="host:port, e.g. 127.0.0.1:50443"),
        host_name=server_t.text("host_name", hint="this seal host's name, recorded as the place"),
        tls_cert=server_t.path("tls_cert", "the server certificate PEM"),
        tls_key=server_t.path("tls_key", "the server key PEM or credential:NAME"),
        client_ca=server_t.path("client_ca", "the CA that issues client certificates"),
        seal_workers=server_t.integer(
            "seal_workers", 0, f"a count of sealing worker processes, 0 (one per core) .. {MAX_SEAL_WORKERS}"
        ),
    )
    server_t.finish()
    if not 0 <= server.seal_workers <= MAX_SEAL_WORKERS:
        raise ConfigError(
            f"{path}: 'server.seal_workers' = {server.seal_workers} is out of range; use 0 (one "
            f"worker process per core) or a count up to {MAX_SEAL_WORKERS}"
        )
    store_t = root.table("store")
    store = StoreConfig(
        state_dir=store_t.path("state_dir", "a writable directory", must_exist=False)
    )
    store_t.finish()
    pkcs_t = root.table("pkcs11")
    pkcs11 = Pkcs11Config(module=pkcs_t.path("module", "the PKCS#11 module .so"))
    pkcs_t.finish()
    trust_t = root.table("trust")
    trust = TrustConfig(
        seal_ca=trust_t.path("seal_ca", "the CA PEM of the seal certificates"),
        tsa_url=str(trust_t._get("tsa_url", "", str, "the RFC 3161 timestamp URL")).strip(),
        signing_roots=tuple(
            _existing(path, "trust.signing_roots", path.parent / Path(p))
            for p in trust_t.optional_strings("signing_roots", "a list of CA PEM paths")
        ),
        fetch_revocation=trust_t.boolean("fetch_revocation", True, "true or false"),
        sm2_seal_ca=(
            trust_t.path("sm2_seal_ca", "the SM2 CA certificate PEM that issues SM2 seal certificates")
            if "sm2_seal_ca" in trust_t.data
            else None
        ),
    )
    trust_t.finish()
    if trust.tsa_url and not trust.tsa_url.startswith(("http://", "https://")):
        raise ConfigError(f"{path}: 'trust.tsa_url' must start with http:// or https://")
    req_t = root.table("requests")
    requests = RequestsConfig(
        required_approvals=req_t.integer("required_approvals", 2, "an integer >= 2"),
        approval_ttl_hours=req_t.number("approval_ttl_hours", 72.0, "hours, > 0"),
        max_document_bytes=req_t.integer("max_document_bytes", 256 * 1024 * 1024, "bytes"),
        # Issue 20: volume requests (month-end invoices, payroll) are sealed in recorded
        # chunks. 2,000 documents keep seald and its workers under 512 MiB (asserted by
        # test_volume_daemon); 10,000 ran (bench_volume) but its peak was not yet shown
        # under that bound (bench/README.md), so larger runs are an explicit choice.
        max_documents_per_request=req_t.integer("max_documents_per_request", 10_000, "a count"),
        approval_use_hours=req_t.number("approval_use_hours", 24.0, "hours, > 0"),
        max_pending_per_principal=req_t.integer(
            "max_pending_per_principal", 1000, "a count of unfinished requests per requester, >= 1"
        ),
        rate_limit_per_second=req_t.number(
            "rate_limit_per_second", 100.0, "calls per second per principal, > 0"
        ),
        rate_limit_burst=req_t.integer("rate_limit_burst", 500, "calls in a burst per principal, >= 1"),
        max_streams_per_principal=req_t.integer(
            "max_streams_per_principal", 8, "a count of open streams per principal, >= 1"
        ),
        max_open_streams=req_t.integer(
            "max_open_streams", 1024, "a count of open streams for all principals together"
        ),
        max_delegation_days=req_t.number("max_delegation_days", 90.0, "days, > 0"),
    )
    req_t.finish()
    _check_request_limits(path, requests)
    if requests.required_approvals < 2:
        raise ConfigError(f"{path}: 'requests.required_approvals' must be at least 2 (R05)")
    if requests.approval_ttl_hours <= 0:
        raise ConfigError(f"{path}: 'requests.approval_ttl_hours' must be > 0")
    if requests.max_delegation_days <= 0:
        raise ConfigError(f"{path}: 'requests.max_delegation_days' must be > 0")
    if requests.approval_use_hours <= 0:
        raise ConfigError(f"{path}: 'requests.approval_use_hours' must be > 0")
    if not 1 <= requests.max_documents_per_request <= MAX_DOCUMENTS_PER_REQUEST:
        raise ConfigError(
            f"{path}: 'requests.max_documents_per_request' must be 1 .. {MAX_DOCUMENTS_PER_REQUEST} "
            "(a request's description, sent whole in status and watch replies, must stay far "
            "below the 32 MiB message limit); split bigger runs into several requests"
        )
    root.taken.update({"seal", "principal", "tokens"})
    tokens = _tokens(path, raw["tokens"]) if "tokens" in raw else TokensConfig(frozenset(), 0.0)
    seal_list = raw.get("seal", [])
    if not isinstance(seal_list, list) or not seal_list:
        raise ConfigError(f"{path}: no [[seal]] defined; add at least one seal")
    seals: dict[str, SealConfig] = {}
    for item in seal_list:
        seal = _seal(path, item, requests.required_approvals)
        if seal.seal_id in seals:
            raise ConfigError(f"{path}: seal id '{seal.seal_id}' is defined twice")
        seals[seal.seal_id] = seal
        if seal.level != "B-B" and not trust.tsa_url:
            raise ConfigError(
                f"{path}: 'seal[{seal.seal_id}].level' = {seal.level!r} needs a timestamp "
                "authority; set 'trust.tsa_url' or use level = \"B-B\""
            )
    principal_list = raw.get("principal", [])
    if not isinstance(principal_list, list) or not principal_list:
        raise ConfigError(f"{path}: no [[principal]] defined; add the allow-listed clients")
    principals: dict[str, PrincipalConfig] = {}
    owner: dict[str, str] = {}
    for item in principal_list:
        entry = _principal(path, item, frozenset(seals))
        name = entry.principal.name
        if name in principals:
            raise ConfigError(f"{path}: principal '{name}' is defined twice")
        for fp in entry.certificates:
            if fp in owner:
                raise ConfigError(
                    f"{path}: certificate {fp[:16]}… is listed for both '{owner[fp]}' and '{name}'; "
                    "a certificate identifies exactly one principal"
                )
            owner[fp] = name
        principals[name] = entry
    _check_policies(path, seals, principals)
    metrics = _metrics(root.table("metrics")) if "metrics" in raw else MetricsConfig(None)
    audit = _audit(root.table("audit"), trust) if "audit" in raw else AuditConfig()
    webauthn = _webauthn(root.table("webauthn")) if "webauthn" in raw else None
    skf = None
    if "skf" in raw:
        skf_t = root.table("skf")
        skf = SkfConfig(library=skf_t.path("library", "the SKF (GM/T 0016) library .so"))
        skf_t.finish()
    maker = None
    if "seal_maker" in raw:
        maker_t = root.table("seal_maker")
        maker = _seal_maker(path, maker_t)
    sm2_seals = [s.seal_id for s in seals.values() if s.algorithm == "sm2"]
    skf_seals = [s.seal_id for s in seals.values() if s.algorithm == "sm2" and not s.pkcs11_sm2_profile]
    if skf_seals and (skf is None or maker is None):
        raise ConfigError(
            f"{path}: seal(s) {', '.join(skf_seals)} use algorithm = \"sm2\": add [skf] library = "
            "\"/path/to/libskf.so\" (or pkcs11_sm2_profile = \"<token model>\" for an SM2 key on a "
            "PKCS#11 token) and [seal_maker] certificate / key"
        )
    if sm2_seals and maker is None:
        raise ConfigError(
            f"{path}: seal(s) {', '.join(sm2_seals)} use algorithm = \"sm2\": add [seal_maker] "
            "certificate / key (the maker of their GB/T 38540 SES_Seal)"
        )
    if sm2_seals and maker is not None and maker.token is not None and skf is None:
        raise ConfigError(f"{path}: [seal_maker] token keys need [skf] library (the maker's token is SKF)")
    notify = _notify(root.table("notify")) if "notify" in raw else NotifyConfig()
    impression = _impression(root.table("impression")) if "impression" in raw else ImpressionConfig()
    archive = _archive(root.table("archive")) if "archive" in raw else ArchiveConfig()
    limits = _limits(root.table("limits")) if "limits" in raw else LimitsConfig()
    root.finish()
    return Config(
        path=path,
        server=server,
        store=store,
        pkcs11=pkcs11,
        trust=trust,
        requests=requests,
        seals=seals,
        principals=principals,
        tokens=tokens,
        metrics=metrics,
        audit=audit,
        webauthn=webauthn,
        skf=skf,
        seal_maker=maker,
        notify=notify,
        impression=impression,
        archive=archive,
        limits=limits,
    )


def _impression(t: _Table) -> ImpressionConfig:
    low, high = IMPRESSION_MAX_BYTES_RANGE
    max_bytes = t.integer("max_bytes", ImpressionConfig.max_bytes, f"bytes, {low} to {high}")
    if not low <= max_bytes <= high:
        raise ConfigError(
            f"{t.file}: 'impression.max_bytes' = {max_bytes}; use {low} to {high} bytes (the "
            "image travels in one 4 MiB message)"
        )
    low_dpi, high_dpi = IMPRESSION_MIN_DPI_RANGE
    min_dpi = t.integer("min_dpi", ImpressionConfig.min_dpi, f"dpi, {low_dpi} to {high_dpi}")
    if not low_dpi <= min_dpi <= high_dpi:
        raise ConfigError(f"{t.file}: 'impression.min_dpi' = {min_dpi}; use {low_dpi} to {high_dpi} dpi")
    t.finish()
    return ImpressionConfig(max_bytes=max_bytes, min_dpi=min_dpi)


def _archive(t: _Table) -> ArchiveConfig:
    low, high = RENEW_WITHIN_DAYS_RANGE
    days = t.integer("renew_within_days", 90, f"days, {low} .. {high}")
    t.finish()
    if not low <= days <= high:
        raise ConfigError(
            f"{t.file}: 'archive.renew_within_days' = {days}; use {low} to {high} days (the daily "
            "renewal must see a document before its archive timestamp's certificate ends)"
        )
    return ArchiveConfig(renew_within_days=days)


def _limits(t: _Table) -> LimitsConfig:
    """[limits] (issue 16): max_marks, allow_mark_overlap."""
    limits = LimitsConfig(
        max_marks=t.integer("max_marks", DEFAULT_MAX_MARKS, "a count of marks per request, 1 to 1000"),
        allow_mark_overlap=t.boolean("allow_mark_overlap", False, "true or false"),
    )
    t.finish()
    if not 1 <= limits.max_marks <= 1000:
        raise ConfigError(
            f"{t.file}: 'limits.max_marks' = {limits.max_marks}; use 1 to 1000 marks per request"
        )
    return limits


def _audit(t: _Table, trust: TrustConfig) -> AuditConfig:
    low, high = CHECKPOINT_INTERVAL_RANGE_S
    interval = t.number("checkpoint_interval_seconds", 300.0, f"seconds between {low:g} and {high:g}")
    if not low <= interval <= high:
        raise ConfigError(
            f"{t.file}: 'audit.checkpoint_interval_seconds' = {interval:g}; use {low:g} to {high:g} "
            "seconds (a checkpoint at least daily bounds how much of the ledger a truncation can hide)"
        )
    key_dir = None
    if "key_dir" in t.data:
        key_dir = t.path("key_dir", "a directory for the audit key", must_exist=False)
    if key_dir is not None and key_dir.exists() and not key_dir.is_dir():
        raise ConfigError(f"{t.file}: 'audit.key_dir' = {key_dir} is not a directory; give a directory path")
    timestamp = t.boolean("timestamp_checkpoints", False, "true or false")
    tsa_url = str(t._get("tsa_url", "", str, "the RFC 3161 timestamp URL for checkpoints")).strip()
    tsa_roots = tuple(
        _existing(t.file, "audit.tsa_roots", t.file.parent / Path(p))
        for p in t.optional_strings("tsa_roots", "a list of CA PEM paths")
    )
    t.finish()
    if tsa_url and not tsa_url.startswith(("http://", "https://")):
        raise ConfigError(f"{t.file}: 'audit.tsa_url' must start with http:// or https://")
    if timestamp and not (tsa_url or trust.tsa_url):
        raise ConfigError(
            f"{t.file}: 'audit.timestamp_checkpoints' = true needs a timestamp authority; set "
            "'audit.tsa_url' (or 'trust.tsa_url'), or set timestamp_checkpoints = false"
        )
    if timestamp and not tsa_roots:
        raise ConfigError(
            f"{t.file}: 'audit.timestamp_checkpoints' = true needs 'audit.tsa_roots': the CA PEM(s) "
            "the timestamp authority's certificate must chain to (a token is only evidence if "
            "its signer is checked)"
        )
    if (tsa_url or tsa_roots) and not timestamp:
        raise ConfigError(
            f"{t.file}: 'audit.tsa_url'/'audit.tsa_roots' are set but 'audit.timestamp_checkpoints' "
            "is not true; set it to true, or remove them"
        )
    return AuditConfig(
        checkpoint_interval_s=interval,
        key_dir=key_dir,
        timestamp_checkpoints=timestamp,
        tsa_url=tsa_url or (trust.tsa_url if timestamp else ""),
        tsa_roots=tsa_roots,
    )


def fingerprint_of_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()
