"""Offline verification of an evidence package (issue 9; docs/evidence.md).

No daemon, no database, no network: the package (``seald.evidence/1``), the sealed
PDF(s) and the CA certificates the verifier trusts are all it reads. Every check
is reported with a verdict; the package is good only if all pass.

The canonical encodings are not re-implemented here: the ledger record hash, the
approval digest, the approval statement and the checkpoint payload come from the
same pure modules the daemon uses (``seald.domain.audit``, ``seald.domain.digest``,
``seald.domain.approval_statement``, ``seald.store.checkpoints.checkpoint_payload``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from seald.domain.approval_statement import (
    ApprovalStatement,
    StatementError,
    parse_statement,
    signature_verifies,
    statement_problems,
)
from seald.domain.audit import RECORD_COLUMNS, verify_segment
from seald.domain.chains import CountedApproval, RequestFacts, chain_from_data, evaluate, parse_money
from seald.domain.checkpoints import CHECKPOINT_FORMAT, checkpoint_payload
from seald.domain.digest import (
    DigestDocument,
    DigestPlacement,
    DigestSeal,
    canonical_approval_subject,
    digest_of,
)
from seald.domain.errors import InvalidInput
from seald.domain.marks import Mark, mark_from_canonical
from seald.domain.webauthn import WebAuthnStatement

EVIDENCE_FORMAT: Final = "seald.evidence/1"

# Check names, in the order they are reported (docs/evidence.md explains each).
CHECKS: Final = (
    "package_format",
    "checkpoint_signature",
    "checkpoint_certificate_trusted",
    "ledger_chain",
    "ledger_request",
    "approval_signatures",
    "approver_certificates_trusted",
    "approval_statements",
    "approvals_recorded",
    "approvals_not_replayed",
    "approval_policy",
    "seal_certificate",
    "pdf_hash",
    "pdf_signature",
    "pdf_coverage",
)
# Issue 16: reported after pdf_coverage (and before any GB/T 38540 check) for a sealing
# job's package only, so a single-seal package's checks are what they always were.
JOB_CHECKS: Final = (
    "job_seal_certificates",
    "job_signature_records",
    "job_hash_chain",
    "job_pdf_signatures",
)
# Issue 19: reported after pdf_coverage when a sealed PDF carries a GB/T 38540 seal signature
# (SES_Signature, /SubFilter /GBT38540.SES): its two layers, one check each (seald.gm.ses).
GBT38540_CHECKS: Final = (
    "gbt38540_seal_maker",
    "gbt38540_seal_validity",
    "gbt38540_signer_holder",
    "gbt38540_document_signature",
    "gbt38540_timestamp",
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def add(self, name: str, problems: Sequence[str], good: str) -> bool:
        self.checks.append(Check(name, not problems, "; ".join(problems) if problems else good))
        return not problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.__dict__ for c in self.checks]}


class PackageError(ValueError):
    """The package is not a readable seald evidence package."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def load_trust(paths: Sequence[Path]) -> list[x509.Certificate]:
    """Every certificate in the given PEM files (CA certificates, the audit certificate)."""
    anchors: list[x509.Certificate] = []
    for path in paths:
        anchors.extend(x509.load_pem_x509_certificates(path.read_bytes()))
    return anchors


def chain_problem(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    at: datetime,
) -> str:
    """'' if ``leaf`` is a trusted certificate or chains to one, valid at ``at``."""
    trusted = {_sha256(_der(a)) for a in anchors}
    current = leaf
    for _ in range(8):
        if not current.not_valid_before_utc <= at <= current.not_valid_after_utc:
            return f"{current.subject.rfc4514_string()} is not valid at {at.isoformat()}"
        if _sha256(_der(current)) in trusted:
            return ""
        issuer = next(
            (c for c in (*anchors, *intermediates) if c.subject == current.issuer and _issued(current, c)),
            None,
        )
        if issuer is None:
            return f"{leaf.subject.rfc4514_string()} does not chain to a trusted certificate (--ca)"
        current = issuer
    return f"{leaf.subject.rfc4514_string()}: certificate chain too long"


def _issued(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    if child.signature_algorithm_oid.dotted_string == _SM2_WITH_SM3:
        return _sm2_issued(child, issuer)
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


_SM2_WITH_SM3: Final = "1.2.156.10197.1.501"


def _sm2_issued(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """SM2-with-SM3 certificates (issue 19): ``cryptography`` cannot verify them, seald.gm can."""
    from seald.domain.errors import InvalidInput  # noqa: PLC0415
    from seald.gm import certs  # noqa: PLC0415 - tongsuopy, only for SM2 certificates

    try:
        key = certs.check_sm2_certificate(certs.load_certificate(_der(issuer)))
        certs.verify_certificate_signature(certs.load_certificate(_der(child)), key)
    except InvalidInput:
        return False
    return True


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _is_job(request: dict[str, Any]) -> bool:
    return "job_seals" in request


def _marks(raw: Any, what: str) -> tuple[Mark, ...]:
    try:
        return tuple(mark_from_canonical(m, what=f"{what}[{i}]") for i, m in enumerate(raw))
    except InvalidInput as ex:
        raise ValueError(ex.message) from ex


def _request_digest(request: dict[str, Any]) -> str:
    p = request["placement"]
    marks: tuple[Mark, ...] | None = None
    seals: list[DigestSeal] = []
    own_marks: dict[int, tuple[Mark, ...]] = {}
    if _is_job(request):  # issue 16: the job's marks and seals are in the digest
        marks = _marks(request["marks"], "marks")
        seals = [
            DigestSeal(s["seal_id"], s["certificate_sha256"], s["impression_sha256"])
            for s in request["job_seals"]
        ]
        for d in request["job_documents"]:
            if "marks" in d:
                own_marks[int(d["index"])] = _marks(d["marks"], f"document {d['index']} marks")
    subject = canonical_approval_subject(
        request_id=request["request_id"],
        seal_id=request["seal_id"],
        seal_certificate_sha256=request["seal_certificate_sha256"],
        requester=request["requester"],
        reason=request["reason"],
        category=request["category"],
        placement=DigestPlacement(
            p["page"], p["x_mm"], p["y_mm"], p["size_mm"], p["anchor_text"], p["cross_page"]
        ),
        documents=[
            DigestDocument(d["name"], d["sha256"], d["size"], own_marks.get(int(d["index"])))
            for d in request["documents"]
        ],
        amount=(request["amount"]["value"], request["amount"]["currency"]) if "amount" in request else None,
        seal_impression_sha256=request.get("seal_impression_sha256", ""),
        marks=marks,
        seals=seals,
    )
    return digest_of(subject)


@dataclass
class _Approval:
    raw: dict[str, Any]
    approver: str
    # Issue 17: the approver a delegate stood in for (empty: the approver themself).
    acting_for: str = ""
    delegation_id: str = ""

    @property
    def identity(self) -> str:
        """Who the approval counts for (a delegate counts as the delegator)."""
        return self.acting_for or self.approver

    def label(self) -> str:
        if not self.acting_for:
            return self.approver
        return f"{self.approver} for {self.acting_for} under delegation {self.delegation_id}"

    statement_bytes: bytes = b""
    statement: ApprovalStatement | None = None
    certificate: x509.Certificate | None = None
    valid: bool = True  # every per-approval check passed
    webauthn_key_sha256: str = ""  # issue 18: SHA-256 of the credential's COSE key


def _load_package(data: bytes) -> dict[str, Any]:
    try:
        package = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as ex:
        raise PackageError(f"not UTF-8 JSON ({ex})") from ex
    if not isinstance(package, dict) or package.get("format") != EVIDENCE_FORMAT:
        got = package.get("format") if isinstance(package, dict) else None
        raise PackageError(f"format is {got!r}, expected {EVIDENCE_FORMAT!r}")
    for key in ("request", "approvals", "seal", "ledger"):
        if key not in package:
            raise PackageError(f"the package has no {key!r}")
    return package


def verify_package(data: bytes, pdfs: Sequence[Path], anchors: Sequence[x509.Certificate]) -> Verdict:
    """Check the package and the sealed PDF(s) against the trusted certificates.

    Unreadable PDF files raise OSError (the caller reports it as an input error)."""
    verdict = Verdict()
    try:
        package = _load_package(data)
        request = package["request"]
        ledger = package["ledger"]
        checkpoint = ledger["checkpoint"]
        for key in ("records", "columns", "request_sequences"):
            if key not in ledger:
                raise PackageError(f"the package's ledger has no {key!r}")
    except (PackageError, KeyError, TypeError) as ex:
        verdict.add("package_format", [f"not a seald evidence package: {ex}"], "")
        return verdict
    verdict.add("package_format", [], f"{EVIDENCE_FORMAT}, request {request.get('request_id')}")
    try:
        _verify_checkpoint(verdict, checkpoint, anchors)
        request_records = _verify_ledger(verdict, request, ledger)
        approvals = _verify_approvals(verdict, package, anchors)
        _verify_recorded(verdict, approvals, request_records)
        _verify_not_replayed(verdict, approvals, request_records)
        _verify_policy(verdict, request, approvals, request_records, package.get("policy"))
        seal_cert, chain = _verify_seal(verdict, package, anchors)
        gbt = _verify_pdfs(
            verdict,
            request,
            request_records=request_records,
            pdfs=pdfs,
            seal_cert=seal_cert,
            chain=chain,
            anchors=anchors,
        )
        if _is_job(request):
            _verify_job(verdict, package, request_records, pdfs, anchors)
        if gbt is not None:
            for name in GBT38540_CHECKS:
                verdict.add(name, gbt[name], _GBT38540_GOOD[name])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, binascii.Error) as ex:
        done = {c.name for c in verdict.checks}
        names = (*CHECKS, *JOB_CHECKS) if isinstance(request, dict) and _is_job(request) else CHECKS
        missing = next((n for n in names if n not in done), "package_format")
        verdict.add(missing, [f"malformed package content ({type(ex).__name__}: {ex})"], "")
    return verdict


def _verify_checkpoint(
    verdict: Verdict, checkpoint: dict[str, Any], anchors: Sequence[x509.Certificate]
) -> None:
    certificate = x509.load_pem_x509_certificate(checkpoint["certificate_pem"].encode("ascii"))
    payload = checkpoint_payload(
        int(checkpoint["sequence"]), checkpoint["head_hash"], checkpoint["created_at"], checkpoint["host"]
    )
    key = certificate.public_key()
    problems = []
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        problems.append(f"the checkpoint's format is not {CHECKPOINT_FORMAT!r}")
    if not isinstance(key, ec.EllipticCurvePublicKey):
        problems.append("the audit certificate does not hold an EC key")
    else:
        try:
            signature = base64.b64decode(checkpoint["signature"], validate=True)
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            problems.append(
                f"checkpoint at record {checkpoint['sequence']} is not signed by the key of the audit "
                "certificate in the package (edited or re-signed checkpoint)"
            )
    verdict.add(
        "checkpoint_signature",
        problems,
        f"checkpoint at record {checkpoint['sequence']} signed by {certificate.subject.rfc4514_string()}",
    )
    problem = chain_problem(certificate, [], anchors, _time(checkpoint["created_at"]))
    verdict.add(
        "checkpoint_certificate_trusted",
        [f"audit certificate: {problem}; pass the appliance's audit-cert.pem with --ca"] if problem else [],
        f"audit certificate SHA-256 {_sha256(_der(certificate))} is trusted",
    )


def _verify_ledger(  # noqa: C901 - one check after another, each its own verdict line
    verdict: Verdict, request: dict[str, Any], ledger: dict[str, Any]
) -> list[dict[str, Any]]:
    records, checkpoint, columns = ledger["records"], ledger["checkpoint"], ledger["columns"]
    rows = [tuple(r[c] for c in RECORD_COLUMNS) for r in records]
    problems = []
    if columns != list(RECORD_COLUMNS):
        problems.append("the package's ledger columns are not seald.audit/1's")
    if not rows:
        problems.append("the package holds no ledger records")
    else:
        head = (int(checkpoint["sequence"]), str(checkpoint["head_hash"]))
        first = rows[0][0]
        segment = verify_segment(rows, first if isinstance(first, int) else -1, head)
        result = segment.result
        if not result.ok:
            problems.append(result.problem)
        elif result.head_sequence != head[0] or result.head_hash != head[1]:
            problems.append(
                f"the records end at {result.head_sequence}, not at the checkpointed record {head[0]} "
                "with the checkpoint's hash: they do not chain into the checkpoint"
            )
    verdict.add(
        "ledger_chain",
        problems,
        f"records {rows[0][0] if rows else '-'}..{checkpoint['sequence']} chain into the signed checkpoint",
    )
    own = [r for r in records if r["request_id"] == request["request_id"]]
    problems = []
    by_event: dict[str, list[dict[str, Any]]] = {}
    for r in own:
        by_event.setdefault(r["event"], []).append(r)
    submitted = by_event.get("request.submitted", [])
    originals = sorted(d["sha256"] for d in request["documents"])
    if sorted(r["document_sha256"] for r in submitted) != originals:
        problems.append("the ledger's request.submitted records do not name the package's documents")
    if any(r["principal"] != request["requester"] or r["seal_id"] != request["seal_id"] for r in submitted):
        problems.append("the ledger's request.submitted records name another requester or seal")
    for r in by_event.get("request.approved", []):
        if json.loads(r["details_json"]).get("approval_digest") != request["approval_digest"]:
            problems.append(f"ledger record {r['sequence']} approved another approval digest")
    for d in request["documents"]:
        hashes = sealed_hashes(own, d)
        if not hashes or hashes[-1] != d["sealed_sha256"]:
            problems.append(
                f"document {d['index']} ({d['name']}): no seal.signed record (or archive renewal "
                "of it) for its sealed hash"
            )
    if ledger["request_sequences"] != [r["sequence"] for r in own]:
        problems.append("the package's list of the request's records is not what the records say")
    if request.get("state") != "signed":
        problems.append(f"the request's state is {request.get('state')!r}, not 'signed'")
    if [d["index"] for d in request["documents"]] != list(range(len(request["documents"]))):
        problems.append("the request's documents are not numbered 0, 1, ... in order")
    if _request_digest(request) != request["approval_digest"]:
        problems.append("the request's fields do not hash to its approval digest (edited request)")
    verdict.add("ledger_request", problems, f"{len(own)} records of the request agree with the package")
    return own


def _verify_approvals(
    verdict: Verdict, package: dict[str, Any], anchors: Sequence[x509.Certificate]
) -> list[_Approval]:
    request = package["request"]
    approvals = [
        _Approval(
            raw=a,
            approver=str(a["approver"]),
            acting_for=str(a.get("acting_for", "")),
            delegation_id=str(a.get("delegation_id", "")),
        )
        for a in package["approvals"]
    ]
    signature_problems: list[str] = []
    trust_problems: list[str] = []
    content_problems: list[str] = []
    for a in approvals:
        who = a.approver
        if a.raw.get("webauthn_assertion"):
            _verify_webauthn_approval(a, request, signature_problems, content_problems)
            continue
        try:
            a.certificate = x509.load_pem_x509_certificate(a.raw["certificate_pem"].encode("ascii"))
            a.statement_bytes = a.raw["statement"].encode("utf-8")
            signature = base64.b64decode(a.raw["signature"], validate=True)
        except (ValueError, KeyError, AttributeError, binascii.Error):
            signature_problems.append(
                f"{who}: no readable certificate, statement or signature (unsigned approval)"
            )
            a.valid = False
            continue
        if not a.statement_bytes or not signature_verifies(a.certificate, a.statement_bytes, signature):
            signature_problems.append(
                f"{who}: the statement's signature does not verify with the certificate given "
                "(statement edited or certificate swapped)"
            )
            a.valid = False
        try:
            a.statement = parse_statement(a.statement_bytes)
        except StatementError as ex:
            content_problems.append(f"{who}: {ex.message}")
            a.valid = False
            continue
        if a.statement.signer_certificate_sha256 != _sha256(_der(a.certificate)) or a.raw.get(
            "certificate_sha256"
        ) != _sha256(_der(a.certificate)):
            signature_problems.append(f"{who}: the statement or the package names another certificate")
            a.valid = False
        problem = chain_problem(a.certificate, [], anchors, _time(a.statement.signed_at))
        if problem:
            trust_problems.append(f"{who}: {problem}")
            a.valid = False
        problems = statement_problems(
            a.statement,
            request_id=request["request_id"],
            approval_digest=request["approval_digest"],
            document_sha256=[d["sha256"] for d in request["documents"]],
            on_behalf_of=a.acting_for,  # the delegate signed that they approve for this person
        )
        if problems:
            content_problems.append(f"{who}: " + "; ".join(problems))
            a.valid = False
    names = ", ".join(a.label() for a in approvals) or "none"
    verdict.add("approval_signatures", signature_problems, f"{len(approvals)} statements signed ({names})")
    verdict.add("approver_certificates_trusted", trust_problems, "every approver certificate chains to --ca")
    verdict.add("approval_statements", content_problems, "every statement approves exactly this request")
    return approvals


def _verify_webauthn_approval(
    a: _Approval, request: dict[str, Any], signature_problems: list[str], content_problems: list[str]
) -> None:
    """Issue 18: the assertion's signature by the credential key it carries, over client data
    naming SHA-256 of seald's statement and its origin, UV set; the statement names the
    approver; the key is the one the signed ledger recorded (``_verify_recorded``)."""
    # Imported here: the client imports only seald.domain at module level (the WebAuthn
    # check needs the `webauthn` package, used by this one offline check).
    from seald.webauthn.approvals import offline_problems  # noqa: PLC0415

    who = a.approver
    a.statement_bytes = str(a.raw.get("statement", "")).encode("utf-8")
    problems, facts = offline_problems(a.statement_bytes, str(a.raw["webauthn_assertion"]))
    if problems or not facts:
        signature_problems.append(f"{who}: WebAuthn assertion: " + "; ".join(problems))
        a.valid = False
    if not facts:
        return
    statement: WebAuthnStatement = facts["statement"]
    a.statement = statement.base
    a.webauthn_key_sha256 = str(facts["public_key_sha256"])
    if statement.principal != who:
        signature_problems.append(f"{who}: the WebAuthn statement is signed for {statement.principal}")
        a.valid = False
    content = statement_problems(
        statement.base,
        request_id=request["request_id"],
        approval_digest=request["approval_digest"],
        document_sha256=[d["sha256"] for d in request["documents"]],
    )
    if content:
        content_problems.append(f"{who}: " + "; ".join(content))
        a.valid = False


def _effective_approvals(request_records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """principal -> the request.approved record still standing (withdrawals removed)."""
    standing: dict[str, dict[str, Any]] = {}
    for r in request_records:
        if r["event"] == "request.approved":
            standing[r["principal"]] = r
        elif r["event"] == "request.approval_withdrawn":
            standing.pop(r["principal"], None)
    return standing


def _verify_recorded(
    verdict: Verdict, approvals: list[_Approval], request_records: list[dict[str, Any]]
) -> None:
    standing = _effective_approvals(request_records)
    problems = []
    for a in approvals:
        record = standing.get(a.approver)
        details = json.loads(record["details_json"]) if record else {}
        statement_ok = details.get("statement_sha256") == _sha256(a.statement_bytes)
        if a.webauthn_key_sha256:
            # The ledger names the WebAuthn key the daemon verified for this approver.
            certificate_ok = details.get("webauthn_public_key_sha256") == a.webauthn_key_sha256
        else:
            certificate_ok = a.certificate is not None and details.get("certificate_sha256") == _sha256(
                _der(a.certificate)
            )
        if record is None or not statement_ok or not certificate_ok:
            problems.append(f"{a.approver}: this approval is not the one the ledger recorded")
            a.valid = False
    present = {a.approver for a in approvals}
    for principal, record in standing.items():
        if principal not in present:
            problems.append(
                f"the ledger records an approval by {principal} (record {record['sequence']}) "
                "that the package leaves out"
            )
    verdict.add("approvals_recorded", problems, f"{len(standing)} recorded approvals, all in the package")


def _verify_not_replayed(
    verdict: Verdict, approvals: list[_Approval], request_records: list[dict[str, Any]]
) -> None:
    """R06, an approval is used once (issue 14): a counted statement must not have been
    recorded before (ledger order), nor be signed before its approver's last withdrawal
    on this request (ledger time). Either way a withdrawn approval came back by replay."""
    standing = _effective_approvals(request_records)
    problems: list[str] = []
    for a in approvals:
        record = standing.get(a.approver)
        if record is None or a.statement is None:
            continue  # approvals_recorded / approval_statements report these
        statement_sha = _sha256(a.statement_bytes)
        earlier = [r for r in request_records if int(r["sequence"]) < int(record["sequence"])]
        own: list[str] = []
        for r in earlier:
            if (
                r["event"] == "request.approved"
                and json.loads(r["details_json"]).get("statement_sha256") == statement_sha
            ):
                own.append(
                    f"{a.approver}: the counted statement was already recorded at record "
                    f"{r['sequence']} ({r['time']}): a statement is used once, this one is replayed"
                )
                break
        withdrawals = [
            r for r in earlier if r["event"] == "request.approval_withdrawn" and r["principal"] == a.approver
        ]
        if withdrawals:
            last = withdrawals[-1]
            if _time(a.statement.signed_at) < _time(last["time"]):
                own.append(
                    f"{a.approver}: the counted statement was signed at {a.statement.signed_at}, "
                    f"before {a.approver} withdrew at record {last['sequence']} ({last['time']}): "
                    "a withdrawn approval replayed"
                )
        if own:
            problems += own
            a.valid = False
    verdict.add(
        "approvals_not_replayed",
        problems,
        "no counted statement was recorded before or predates its approver's withdrawal",
    )


def _verify_policy(
    verdict: Verdict,
    request: dict[str, Any],
    approvals: list[_Approval],
    request_records: list[dict[str, Any]],
    package_policy: Any,
) -> None:
    standing = _effective_approvals(request_records)
    recorded = [r for r in request_records if r["event"] == "request.approved"]
    problems = []
    policy: Any = None
    if recorded:
        details = json.loads(recorded[-1]["details_json"])
        policy = json.loads(details["policy"]) if "policy" in details else None
    if policy is None:
        problems.append("the ledger records no approval policy for this request (unsigned approvals)")
        policy = {"required": request.get("required_approvals", 2), "eligible": None, "groups": []}
    elif package_policy != policy:
        problems.append("the package's policy is not the one the ledger recorded")
    requester = request["requester"]
    seen: set[str] = set()
    for a in approvals:
        if requester in (a.approver, a.identity):
            who = a.approver if a.approver == requester else a.label()
            problems.append(f"{who} is the requester and can never approve the request")
        if a.identity in seen:
            # Issue 17: delegator plus delegate count once.
            problems.append(f"{a.identity} approves more than once (in person or by a delegate)")
        seen.add(a.identity)
    delegated = [a.label() for a in approvals if a.acting_for]
    if "seals" in policy:
        # Issue 16, a sealing job: every seal's own policy as recorded, each met by the
        # same approvals (an approver counts for each seal whose policy admits them).
        job_seals = [s["seal_id"] for s in request.get("job_seals", [])]
        if sorted(policy["seals"]) != sorted(job_seals):
            problems.append(
                f"the recorded policy covers seals {sorted(policy['seals'])}, the job has {job_seals}"
            )
        notes = []
        for seal_id in job_seals:
            if seal_id not in policy["seals"]:
                continue
            own, met, chain_note = _policy_problems(policy["seals"][seal_id], request, approvals, standing)
            problems += [f"seal {seal_id}: {p}" for p in own]
            notes.append(f"seal {seal_id}: {met}{chain_note}")
        good, chain_note = "; ".join(notes), ""
    else:
        own, good, chain_note = _policy_problems(policy, request, approvals, standing)
        problems += own
    verdict.add(
        "approval_policy",
        problems,
        good
        + f", none the requester {requester}"
        + (f"; by delegation: {'; '.join(delegated)}" if delegated else "")
        + chain_note,
    )


def _policy_problems(
    policy: Any,
    request: dict[str, Any],
    approvals: list[_Approval],
    standing: dict[str, dict[str, Any]],
) -> tuple[list[str], str, str]:
    """(problems, what was met, the chain's steps) of one recorded policy summary."""
    requester = request["requester"]
    problems = []
    eligible = None if policy.get("eligible") is None else set(policy["eligible"])
    counted = {
        a.identity
        for a in approvals
        if a.valid
        and requester not in (a.approver, a.identity)
        and a.approver in standing
        and (eligible is None or a.identity in eligible)
    }
    chain_note = ""
    if "chain" in policy:  # issue 17: the steps, in the order the ledger recorded them
        chain = chain_from_data(policy["chain"])
        amount = request.get("amount")
        facts = RequestFacts(
            str(request["category"]),
            parse_money(amount["value"], amount["currency"]) if amount else None,
        )
        given = [
            CountedApproval(a.identity, a.approver, _time(standing[a.approver]["time"]))
            for a in approvals
            if a.valid and a.approver in standing
        ]
        result = evaluate(chain, facts, requester, given)
        if not result.complete:
            problems.append(
                f"the approval chain is not complete: step '{result.current}' has no valid approval in order"
            )
        chain_note = "; chain " + " -> ".join(f"{s.name}:{s.state}" for s in result.steps)
    required = int(policy["required"])
    if len(counted) < required:
        problems.append(f"only {len(counted)} valid distinct approvals of the {required} required")
    for name, members in policy.get("groups", []):
        if not counted & set(members):
            problems.append(f"no valid approval from group {name}")
    met = f"{len(counted)} of {required} required distinct approvers ({', '.join(sorted(counted))})"
    return problems, met, chain_note


def _verify_seal(
    verdict: Verdict, package: dict[str, Any], anchors: Sequence[x509.Certificate]
) -> tuple[x509.Certificate | None, list[x509.Certificate]]:
    request = package["request"]
    pems = package["seal"]["certificate_chain_pem"]
    chain = [x509.load_pem_x509_certificate(p.encode("ascii")) for p in pems]
    problems = []
    seal_cert = chain[0] if chain else None
    if package["seal"].get("seal_id") != request["seal_id"]:
        problems.append("the package's seal section names another seal than the request")
    if seal_cert is None:
        problems.append("the package has no seal certificate")
    else:
        if _sha256(_der(seal_cert)) != request["seal_certificate_sha256"]:
            problems.append("the seal certificate is not the one the request (and the approvals) name")
        signed_at = _time(request["signed_at"]) if request.get("signed_at") else datetime.now(UTC)
        problem = chain_problem(seal_cert, chain[1:], anchors, signed_at)
        if problem:
            problems.append(problem)
    verdict.add(
        "seal_certificate",
        problems,
        f"seal {request['seal_id']}: {seal_cert.subject.rfc4514_string() if seal_cert else ''} "
        "chains to --ca",
    )
    return seal_cert, chain


def _verify_job(
    verdict: Verdict,
    package: dict[str, Any],
    request_records: list[dict[str, Any]],
    pdfs: Sequence[Path],
    anchors: Sequence[x509.Certificate],
) -> None:
    """Issue 16, a sealing job: every seal's certificate, every signature's ledger record
    in signing order, the recorded intermediate hashes chaining from the original to the
    sealed file, and one valid signature per seal in that order in each sealed PDF."""
    request = package["request"]
    job_seals = [str(s["seal_id"]) for s in request["job_seals"]]
    signed_at = _time(request["signed_at"]) if request.get("signed_at") else datetime.now(UTC)

    # job_seal_certificates: the package's seals are the job's, each certificate the one
    # the approvals bound (in the approval digest) and chaining to --ca.
    problems: list[str] = []
    certificates: dict[str, x509.Certificate] = {}
    chains: dict[str, list[x509.Certificate]] = {}
    given = package.get("seals", [])
    if [str(s.get("seal_id")) for s in given] != job_seals:
        problems.append(
            f"the package's seals {[s.get('seal_id') for s in given]} are not the job's {job_seals} "
            "in signing order"
        )
    for entry, recorded in zip(given, request["job_seals"], strict=False):
        seal_id = str(recorded["seal_id"])
        chain = [x509.load_pem_x509_certificate(p.encode("ascii")) for p in entry["certificate_chain_pem"]]
        if not chain:
            problems.append(f"seal {seal_id}: the package has no certificate")
            continue
        if _sha256(_der(chain[0])) != recorded["certificate_sha256"]:
            problems.append(
                f"seal {seal_id}: the certificate is not the one the approvals bound "
                f"(SHA-256 {recorded['certificate_sha256']})"
            )
            continue
        problem = chain_problem(chain[0], chain[1:], anchors, signed_at)
        if problem:
            problems.append(f"seal {seal_id}: {problem}")
            continue
        certificates[seal_id], chains[seal_id] = chain[0], chain
    verdict.add(
        "job_seal_certificates",
        problems,
        f"{len(job_seals)} seals ({', '.join(job_seals)}): each the certificate approved, chaining to --ca",
    )

    # job_signature_records: per document, one seal.job_signature record per seal in the
    # job's order, naming the intermediate the package gives; the last is the sealed file.
    problems = []
    steps_of: dict[int, list[dict[str, Any]]] = {}
    job_documents = {int(d["index"]): d for d in request["job_documents"]}
    for d in request["documents"]:
        index, name = int(d["index"]), d["name"]
        steps = list(job_documents.get(index, {}).get("steps", []))
        steps_of[index] = steps
        records = [
            r
            for r in sorted(request_records, key=lambda r: int(r["sequence"]))
            if r["event"] == "seal.job_signature"
            and json.loads(r["details_json"]).get("document_index") == index
            and r["document_sha256"] == d["sha256"]
        ]
        recorded = [(r["seal_id"], json.loads(r["details_json"]).get("intermediate_sha256")) for r in records]
        if [r[0] for r in recorded] != job_seals:
            problems.append(
                f"{name}: the ledger records signatures by {[r[0] for r in recorded]}, "
                f"not one per seal in the job's order {job_seals}"
            )
        if [(s["seal_id"], s["sha256"]) for s in steps] != recorded:
            problems.append(f"{name}: the package's signatures are not the ones the ledger recorded")
        if not steps or steps[-1]["sha256"] != d["sealed_sha256"]:
            problems.append(f"{name}: the last recorded signature's file is not the sealed document")
    verdict.add(
        "job_signature_records",
        problems,
        f"every document has one recorded signature per seal in the order {' -> '.join(job_seals)}",
    )

    # job_hash_chain and job_pdf_signatures, on each given PDF that is a document's
    # current sealed file (pdf_hash already reported the others).
    chain_problems: list[str] = []
    sig_problems: list[str] = []
    current = {d["sealed_sha256"]: d for d in request["documents"]}
    checked = 0
    for pdf in pdfs:
        data = pdf.read_bytes()
        document = current.get(_sha256(data))
        if document is None:
            continue
        checked += 1
        own_chain, own_sigs = _job_pdf_problems(
            pdf,
            data,
            document=document,
            steps=steps_of.get(int(document["index"]), []),
            certificates=certificates,
            chains=chains,
            anchors=anchors,
        )
        chain_problems += own_chain
        sig_problems += own_sigs
    if not checked:
        chain_problems.append("no sealed PDF of the job to check (see pdf_hash)")
        sig_problems.append("no sealed PDF of the job to check (see pdf_hash)")
    verdict.add(
        "job_hash_chain",
        chain_problems,
        "each signature's signed file is the ledger's recorded intermediate, original to sealed file",
    )
    verdict.add(
        "job_pdf_signatures",
        sig_problems,
        f"one valid, trusted signature per seal in the order {' -> '.join(job_seals)}, "
        "the last covering the whole file",
    )


def _job_pdf_problems(
    path: Path,
    data: bytes,
    *,
    document: dict[str, Any],
    steps: list[dict[str, Any]],
    certificates: dict[str, x509.Certificate],
    chains: dict[str, list[x509.Certificate]],
    anchors: Sequence[x509.Certificate],
) -> tuple[list[str], list[str]]:
    """(hash chain problems, signature problems) of one sealed PDF of a job."""
    from pyhanko.pdf_utils.reader import PdfFileReader  # noqa: PLC0415 - heavy, only here

    from seald.signing.errors import SigningError  # noqa: PLC0415
    from seald.signing.verify import verify_pdf  # noqa: PLC0415

    name = document["name"]
    chain_problems: list[str] = []
    sig_problems: list[str] = []
    if _sha256(data[: int(document["size"])]) != document["sha256"]:
        chain_problems.append(f"{name}: the sealed PDF does not start with the approved document's bytes")
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    # Signing order is file order: each signature is an incremental update of the last.
    every = sorted(reader.embedded_signatures, key=lambda s: int(s.byte_range[2]) + int(s.byte_range[3]))
    ends = {s.field_name: int(s.byte_range[2]) + int(s.byte_range[3]) for s in every}
    embedded = [s for s in every if str(s.sig_object.get("/Type", "")) != "/DocTimeStamp"]
    for number, (sig, step) in enumerate(zip(embedded, steps, strict=False), 1):
        # The last step is the sealed file, document timestamps (B-LTA) included.
        end = len(data) if number == len(steps) else ends[sig.field_name]
        if end != int(step["size"]) or _sha256(data[:end]) != step["sha256"]:
            chain_problems.append(
                f"{name}: signature {number} ({sig.field_name}) signed a file that is not the ledger's "
                f"recorded intermediate after seal {step['seal_id']} (SHA-256 {step['sha256']})"
            )
    roots = [c.public_bytes(serialization.Encoding.PEM) for c in anchors]
    for chain in chains.values():
        roots += [c.public_bytes(serialization.Encoding.PEM) for c in chain[1:]]
    try:
        checks = {c.field_name: c for c in verify_pdf(path, roots) if c.kind == "signature"}
    except SigningError as ex:
        return chain_problems, [f"{name}: its signatures cannot be validated ({ex.message})"]
    if len(embedded) != len(steps):
        sig_problems.append(
            f"{name}: the PDF has {len(embedded)} seal signatures, the job has {len(steps)} seals"
        )
    for number, (sig, step) in enumerate(zip(embedded, steps, strict=False), 1):
        seal_id = step["seal_id"]
        check = checks.get(sig.field_name)
        cert = certificates.get(seal_id)
        if check is None or cert is None:
            sig_problems.append(f"{name}: signature {number} cannot be checked against seal {seal_id}")
            continue
        if check.signer_certificate_sha256 != _sha256(_der(cert)):
            sig_problems.append(
                f"{name}: signature {number} ({sig.field_name}) is not by seal {seal_id}'s certificate"
            )
        if not (check.intact and check.valid and check.trusted):
            sig_problems.append(
                f"{name}: signature {number} (seal {seal_id}) is not intact, valid and trusted "
                f"({check.summary})"
            )
    # The last seal's signature covers the file up to its end; only document timestamps
    # (B-LTA), each covering everything before it, may follow it.
    if not embedded or max(ends.values()) != len(data):
        sig_problems.append(f"{name}: the last seal's signature does not cover the whole file")
    return chain_problems, sig_problems


def sealed_hashes(records: Sequence[dict[str, Any]], document: dict[str, Any]) -> list[str]:
    """The SHA-256s the ledger gives ``document``'s sealed file, oldest first: its
    seal.signed record's, then each ``archive.renewed`` (issue 16: a fresh archive
    timestamp, old -> new SHA-256) that continues from the previous one. Empty without a
    seal.signed record for the document."""
    ordered = sorted(records, key=lambda r: int(r["sequence"]))
    signed = [
        json.loads(r["details_json"]).get("sealed_sha256")
        for r in ordered
        if r["event"] == "seal.signed" and r["document_sha256"] == document["sha256"]
    ]
    if not signed or not signed[0]:
        return []
    hashes = [str(signed[0])]
    for r in ordered:
        if r["event"] != "archive.renewed":
            continue
        details = json.loads(r["details_json"])
        if details.get("document_index") == document["index"] and details.get("old_sha256") == hashes[-1]:
            hashes.append(str(details.get("new_sha256")))
    return hashes


def _verify_pdfs(
    verdict: Verdict,
    request: dict[str, Any],
    *,
    request_records: list[dict[str, Any]],
    pdfs: Sequence[Path],
    seal_cert: x509.Certificate | None,
    chain: list[x509.Certificate],
    anchors: Sequence[x509.Certificate],
) -> dict[str, list[str]] | None:
    """pdf_hash, pdf_signature, pdf_coverage; returns the GB/T 38540 layers' problems (None:
    no such seal), reported by the caller after a job's checks."""
    # Every sealed version of a document: the sealed file and each archive renewal of it
    # (issue 16); an auditor may hold any of them.
    by_sealed = {h: d for d in request["documents"] for h in sealed_hashes(request_records, d)}
    recorded = set(by_sealed)
    hash_problems: list[str] = []
    sig_problems: list[str] = []
    coverage_problems: list[str] = []
    gbt: dict[str, list[str]] | None = None
    if not pdfs:
        hash_problems.append("no sealed PDF given")
    matched: list[tuple[Path, dict[str, Any]]] = []
    for number, pdf in enumerate(pdfs, 1):
        data = pdf.read_bytes()
        digest = _sha256(data)
        document = by_sealed.get(digest)
        current = document is not None and digest == document["sealed_sha256"]
        if document is not None and current and document.get("sealed_size") != len(data):
            hash_problems.append(f"PDF {number}: the package gives another size for this sealed document")
        elif document is None or digest not in recorded:
            hash_problems.append(
                f"PDF {number} (SHA-256 {digest}) is not a sealed document of request "
                f"{request['request_id']} as the package and the ledger record it"
            )
        else:
            matched.append((pdf, document))
    for pdf, document in matched:
        problem_sig, problem_cov = pdf_problems(
            pdf, document, seal_cert, chain, anchors, later_signatures=_is_job(request)
        )
        sig_problems += problem_sig
        coverage_problems += problem_cov
        layers = gbt38540_problems(pdf, document, seal_cert, anchors)
        if layers is not None:
            gbt = gbt or {name: [] for name in GBT38540_CHECKS}
            for name, problems in layers.items():
                gbt[name] += problems
    verdict.add("pdf_hash", hash_problems, f"{len(matched)} PDF(s) are the recorded sealed documents")
    if not matched:
        sig_problems.append("no PDF to check (see pdf_hash)")
        coverage_problems.append("no PDF to check (see pdf_hash)")
    verdict.add("pdf_signature", sig_problems, "signed by the seal's key; intact, valid, trusted")
    verdict.add(
        "pdf_coverage",
        coverage_problems,
        "the signed revision is the approved document plus only the seal's signature",
    )
    return gbt


_GBT38540_GOOD: Final = {
    "gbt38540_seal_maker": "the SES_Seal is signed by its seal maker, whose certificate is or chains to --ca",
    "gbt38540_seal_validity": "the seal was valid (validStart..validEnd) at the signing time",
    "gbt38540_signer_holder": "the signer is the request's seal certificate and among the seal's holders",
    "gbt38540_document_signature": "the SM2 signature over TBS_Sign verifies; dataHash = SM3 of the ranges",
    "gbt38540_timestamp": "RFC 3161 timestamp over the signature by a TSA chaining to --ca, or none (B-B)",
}


def gbt38540_problems(
    path: Path,
    document: dict[str, Any],
    seal_cert: x509.Certificate | None,
    anchors: Sequence[x509.Certificate],
) -> dict[str, list[str]] | None:
    """Problems per GB/T 38540 check of one sealed PDF; None if it has no GB/T 38540 seal.

    The layers are checked by seald's verifier (``ses.layer_checks``, each on its own so a
    tampered document names every layer it breaks); what needs outside trust is added here:
    the seal maker's certificate is a --ca certificate or chains to one (SM2-with-SM3), the
    signer is the seal certificate the request was bound to, and the timestamp's TSA chains
    to --ca (pyHanko's token validation, offline)."""
    from seald.domain.errors import InvalidInput  # noqa: PLC0415
    from seald.gm import ses  # noqa: PLC0415 - tongsuopy, only for GB/T 38540 documents
    from seald.signing import gbt38540_pdf  # noqa: PLC0415

    pdf = path.read_bytes()
    if gbt38540_pdf.SUBFILTER.encode() not in pdf:
        return None
    fields = gbt38540_pdf.check_fields(pdf)
    if not fields:
        return None
    name = document["name"]
    out: dict[str, list[str]] = {n: [] for n in GBT38540_CHECKS}
    for field_result in fields:
        where = f"{name} ({field_result.field_name})"
        try:
            der, data_hash = gbt38540_pdf.signature_and_hash(pdf, field_result.field_name)
            layers = ses.layer_checks(der, data_hash=data_hash)
        except InvalidInput as ex:  # does not decode: no layer can be checked
            for n in GBT38540_CHECKS:
                out[n].append(f"{where}: {ex.message} ({ex.reason})")
            continue
        for layer in layers:
            if layer.problem:
                out[f"gbt38540_{layer.name}"].append(f"{where}: {layer.problem} ({layer.reason})")
        parsed = ses.parse_signature(der)
        tbs = parsed["to_sign"]
        when: datetime = tbs["time_info"].native
        maker = x509.load_der_x509_certificate(bytes(tbs["eseal"]["cert"].native))
        problem = chain_problem(maker, [], anchors, when)
        if problem:
            out["gbt38540_seal_maker"].append(
                f"{where}: SES_Seal.cert (seal maker): {problem}; pass the seal maker's certificate "
                "(or its CA) with --ca"
            )
        signer_der = bytes(parsed["cert"].native)
        if seal_cert is None or signer_der != _der(seal_cert):
            out["gbt38540_signer_holder"].append(
                f"{where}: SES_Signature.cert is not the seal certificate the request was bound to"
            )
        if parsed["time_stamp"].native is not None:
            roots = [_der(a) for a in anchors]
            ts_problem = gbt38540_pdf.timestamp_problem_blocking(der, roots)
            if ts_problem:
                out["gbt38540_timestamp"].append(f"{where}: {ts_problem}; pass the TSA's root with --ca")
    return out


def pdf_problems(
    path: Path,
    document: dict[str, Any],
    seal_cert: x509.Certificate | None,
    chain: list[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    *,
    later_signatures: bool = False,
) -> tuple[list[str], list[str]]:
    """(signature problems, coverage problems) of one sealed PDF whose hash already matched.

    ``document``: the approved original's ``name``, ``size`` and ``sha256``.
    ``later_signatures``: a sealing job's first seal (issue 16), after which the job's
    other seals sign; what they add is the job_* checks' (recorded hashes, signers)."""
    from pyhanko.pdf_utils.reader import PdfFileReader  # noqa: PLC0415 - heavy, only here
    from pyhanko.sign.validation.status import SignatureCoverageLevel  # noqa: PLC0415

    from seald.signing.errors import SigningError  # noqa: PLC0415
    from seald.signing.verify import verify_pdf  # noqa: PLC0415

    name = document["name"]
    if seal_cert is None:
        return [f"{name}: no seal certificate to check against"], []
    seal_sha = _sha256(_der(seal_cert))
    roots = [c.public_bytes(serialization.Encoding.PEM) for c in (*anchors, *chain[1:])]
    pdf = path.read_bytes()
    try:
        checks = verify_pdf(path, roots)
    except SigningError as ex:  # e.g. a timestamp whose TSA does not chain to --ca
        return [
            f"{name}: its signatures cannot be validated ({ex.message}); if it carries "
            "timestamps, pass the TSA's root certificate with --ca too"
        ], []
    mine = [
        c for c in checks if c.kind in ("signature", "gbt38540") and c.signer_certificate_sha256 == seal_sha
    ]
    if not mine:
        return [f"{name}: no signature by the seal's certificate in this PDF"], []
    check = mine[0]
    sig_problems = []
    if not (check.intact and check.valid):
        sig_problems.append(f"{name}: the seal's signature is not intact and valid ({check.summary})")
    if check.kind == "gbt38540":
        # Trust and the timestamp of a GB/T 38540 seal are the gbt38540_* checks.
        return sig_problems, _gbt38540_coverage(pdf, document, check.field_name)
    if not check.trusted:
        sig_problems.append(f"{name}: the seal's signer does not chain to --ca")
    tsa_hint = "it does not verify, or its TSA does not chain to --ca (pass the TSA's root certificate)"
    if check.timestamp_time is not None and not check.timestamp_valid:
        sig_problems.append(f"{name}: the seal's RFC 3161 timestamp cannot be trusted: {tsa_hint}")
    for stamp in (c for c in checks if c.kind == "document_timestamp"):
        if not (stamp.intact and stamp.valid and stamp.trusted):
            sig_problems.append(
                f"{name}: document timestamp {stamp.field_name} cannot be trusted: {tsa_hint}"
            )
    coverage: list[str] = []
    size, original_sha = int(document["size"]), document["sha256"]
    if _sha256(pdf[:size]) != original_sha:
        coverage.append(f"{name}: the sealed PDF does not start with the approved document's bytes")
        return sig_problems, coverage
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    embedded = next(s for s in reader.embedded_signatures if s.field_name == check.field_name)
    byte_range = [int(v) for v in embedded.byte_range]
    original_revisions = PdfFileReader(io.BytesIO(pdf[:size]), strict=False).xrefs.total_revisions
    if byte_range[0] != 0 or byte_range[1] < size:
        coverage.append(f"{name}: the signature's byte range does not cover the approved document")
    if embedded.signed_revision != original_revisions:
        coverage.append(
            f"{name}: the seal signed revision {embedded.signed_revision}, but the approved document "
            f"ends at revision {original_revisions - 1}: something else was added before the signature"
        )
    level = embedded.evaluate_signature_coverage()
    if level not in {SignatureCoverageLevel.ENTIRE_FILE, SignatureCoverageLevel.ENTIRE_REVISION}:
        coverage.append(f"{name}: the signature does not cover its whole revision ({level.name})")
    if (
        not later_signatures
        and not check.covers_whole_document
        and check.modification_level not in {"NONE", "LTA_UPDATES"}
    ):
        coverage.append(f"{name}: after the seal, the PDF was changed ({check.changed_after})")
    return sig_problems, coverage


def _gbt38540_coverage(pdf: bytes, document: dict[str, Any], field_name: str) -> list[str]:
    """pdf_coverage for a GB/T 38540 seal (pyHanko does not list it among its signatures):
    the file is the approved document plus one incremental update holding the seal, and the
    signature's byte range covers all of it but its own /Contents."""
    from pyhanko.pdf_utils.reader import PdfFileReader  # noqa: PLC0415 - heavy, only here

    from seald.signing import gbt38540_pdf  # noqa: PLC0415

    name = document["name"]
    size, original_sha = int(document["size"]), document["sha256"]
    if _sha256(pdf[:size]) != original_sha:
        return [f"{name}: the sealed PDF does not start with the approved document's bytes"]
    coverage = []
    byte_range = gbt38540_pdf.byte_range(pdf, field_name)
    if byte_range[0] != 0 or byte_range[1] < size:
        coverage.append(f"{name}: the signature's byte range does not cover the approved document")
    if byte_range[2] + byte_range[3] != len(pdf):
        coverage.append(f"{name}: after the seal, the PDF was changed (data appended after its byte range)")
    original_revisions = PdfFileReader(io.BytesIO(pdf[:size]), strict=False).xrefs.total_revisions
    revisions = PdfFileReader(io.BytesIO(pdf), strict=False).xrefs.total_revisions
    if revisions != original_revisions + 1:
        coverage.append(
            f"{name}: the sealed PDF has {revisions - original_revisions} revisions after the approved "
            "document; only the seal's own is allowed"
        )
    return coverage
