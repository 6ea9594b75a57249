"""The reason registry: every machine-readable reason seald and sealctl use, in one table.

A reason travels in the ``seal-error-reason`` trailing metadata of a refused RPC, in
audit records and request states, and in sealctl's error line; scripts rely on it, so it
is part of the API contract. Each entry says which gRPC status a refusal with it answers
(``Status.NONE``: never an RPC answer, only a ledger record, request state or log line),
the ``sealctl`` exit code that status gives, and one line of meaning.

- Add a reason here first, then raise it: tests/unit/test_reasons.py fails on any
  reason in the code that is not registered, and on a raise site whose error class
  answers another status than the one registered.
- docs/reasons.md is generated from this table (``python scripts/gen_reasons.py``);
  a test fails when it is out of date.
- sealctl's exit codes (client/sealclient/exitcodes.py) are built from
  :data:`EXIT_FOR_STATUS`, so the two cannot disagree.

Pure: shared by the daemon and the client (no grpc here; statuses are named as in gRPC).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.Enum):
    """gRPC status codes by name (seald.api.errors and sealclient map them to grpc's)."""

    NONE = "none"  # not an RPC answer: ledger, request state or log only
    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    FAILED_PRECONDITION = "failed_precondition"
    ALREADY_EXISTS = "already_exists"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    UNAVAILABLE = "unavailable"
    UNIMPLEMENTED = "unimplemented"
    INTERNAL = "internal"
    DATA_LOSS = "data_loss"  # sealctl's own verification failures


class ExitCode(enum.IntEnum):
    """Exit codes of ``sealctl`` that scripts can rely on (also in docs/sealctl.md)."""

    OK = 0
    OTHER = 1
    USAGE = 2
    NOT_AUTHORISED = 3
    NOT_FOUND = 4
    FAILED_PRECONDITION = 5
    INVALID_ARGUMENT = 6
    ALREADY_DONE = 7
    UNAVAILABLE = 8
    RESOURCE_EXHAUSTED = 9
    VERIFICATION_FAILED = 10


EXIT_FOR_STATUS: dict[Status, ExitCode] = {
    Status.UNAUTHENTICATED: ExitCode.NOT_AUTHORISED,
    Status.PERMISSION_DENIED: ExitCode.NOT_AUTHORISED,
    Status.NOT_FOUND: ExitCode.NOT_FOUND,
    Status.FAILED_PRECONDITION: ExitCode.FAILED_PRECONDITION,
    Status.INVALID_ARGUMENT: ExitCode.INVALID_ARGUMENT,
    Status.ALREADY_EXISTS: ExitCode.ALREADY_DONE,
    Status.UNAVAILABLE: ExitCode.UNAVAILABLE,
    Status.RESOURCE_EXHAUSTED: ExitCode.RESOURCE_EXHAUSTED,
}
"""Status of a refused RPC -> sealctl exit code; any other status exits OTHER (1)."""


class Side(enum.Enum):
    DAEMON = "seald"
    CLIENT = "sealctl"
    BOTH = "both"


@dataclass(frozen=True)
class Reason:
    name: str
    status: Status
    meaning: str
    also: tuple[Status, ...] = ()  # other statuses some call sites answer with
    side: Side = Side.DAEMON  # who raises it: seald, sealctl itself, or both

    @property
    def exit_code(self) -> ExitCode | None:
        """What sealctl exits with when an RPC is refused with this reason (None: never)."""
        if self.status is Status.NONE:
            return None
        if self.status is Status.DATA_LOSS:  # sealctl's own check (LocalVerificationError)
            return ExitCode.VERIFICATION_FAILED
        if self.name == "client_config_invalid":  # sealctl's config, checked before any call
            return ExitCode.USAGE
        return EXIT_FOR_STATUS.get(self.status, ExitCode.OTHER)


S = Status


def _r(
    name: str, status: Status, meaning: str, *, also: tuple[Status, ...] = (), side: Side = Side.DAEMON
) -> Reason:
    return Reason(name, status, meaning, also, side)


_TABLE = (
    _r("active_content", S.INVALID_ARGUMENT, "the PDF has active content (actions that run, open or send something): remove it"),
    _r("already_approved", S.ALREADY_EXISTS, "this approver already approved the request"),
    _r("already_done", S.ALREADY_EXISTS, "the thing asked for is already so"),
    _r("already_revoked", S.ALREADY_EXISTS, "the security key is already revoked"),
    _r("anchor_ambiguous", S.INVALID_ARGUMENT, "a sealing job's anchor text occurs on a page more often than the mark allows (anchor_max_matches)"),
    _r("anchor_not_found", S.INVALID_ARGUMENT, "the anchor text does not occur on the page"),
    _r("anchor_search_failed", S.INVALID_ARGUMENT, "the document's text could not be extracted to find the anchor"),
    _r("anchor_search_timeout", S.INVALID_ARGUMENT, "searching the document for the anchor took over … s"),
    _r("anchor_text_too_long", S.INVALID_ARGUMENT, "the anchor text is longer than allowed"),
    _r("approval_signature_invalid", S.PERMISSION_DENIED, "the approval statement's signature does not verify with this connection's certificate"),
    _r("approval_unsigned", S.INVALID_ARGUMENT, "unsigned approval: approvals must carry a statement signed with your key"),
    _r("archive_file_mismatch", S.NONE, "the sealed file on disk does not match the SHA-256 the ledger records; not renewed, investigate (ledger)"),
    _r("archive_no_document_timestamp", S.NONE, "the sealed document has no document timestamp (not B-LTA); nothing to renew"),
    _r("archive_not_configured", S.FAILED_PRECONDITION, "archive renewal needs [trust] tsa_url and signing_roots"),
    _r("archive_not_due", S.NONE, "the last archive timestamp's certificate ends beyond [archive] renew_within_days"),
    _r("archive_renewal_due", S.NONE, "the last archive timestamp's certificate ends within [archive] renew_within_days"),
    _r("archive_renewal_failed", S.NONE, "the archive timestamp could not be renewed; nothing was changed (ledger)"),
    _r("archive_renewed", S.NONE, "a fresh archive timestamp was added; the ledger records old and new SHA-256 (ledger)"),
    _r("archive_timestamp_expired", S.NONE, "the last archive timestamp's certificate has ended; seald can no longer renew it"),
    _r("archive_tsa_unavailable", S.NONE, "the timestamp authority did not answer the renewal; nothing was changed"),
    _r("archive_validation_failed", S.NONE, "the last archive timestamp could not be validated with fresh revocation data; nothing was changed"),
    _r("archive_write_failed", S.NONE, "the renewed archive could not be written; nothing was changed"),
    _r("audit_conflict", S.UNAVAILABLE, "another writer appended to the audit ledger at the same time; nothing was recorded, retry"),
    _r("audit_file_unusable", S.UNAVAILABLE, "the audit ledger database file cannot be read or written"),
    _r("audit_key_unusable", S.INVALID_ARGUMENT, "the audit key cannot be loaded or created", also=(S.FAILED_PRECONDITION,)),
    _r("audit_unavailable", S.UNAVAILABLE, "the audit trail cannot be written; nothing was changed and no signature is released (R10)"),
    _r("backup_destination_relative", S.INVALID_ARGUMENT, "backup destination … must be an absolute path on the seal host"),
    _r("backup_exists", S.FAILED_PRECONDITION, "the backup destination exists already"),
    _r("backup_failed", S.FAILED_PRECONDITION, "the backup cannot be written"),
    _r("backup_file_mismatch", S.FAILED_PRECONDITION, "a document or certificate in the backup does not match its manifest or the ledger (named); refusing to restore"),
    _r("backup_invalid", S.FAILED_PRECONDITION, "the backup or its manifest does not verify (signature, checksum or chain)"),
    _r("bad_amount", S.INVALID_ARGUMENT, "give both amount and amount_currency, a positive decimal and a currency code"),
    _r("bad_anchor", S.INVALID_ARGUMENT, "the anchor text must be one word without spaces"),
    _r("bad_anchor_text", S.INVALID_ARGUMENT, "the anchor text contains control, format or bidirectional characters"),
    _r("bad_base64url", S.INVALID_ARGUMENT, "a field is not base64url"),
    _r("bad_category", S.INVALID_ARGUMENT, "the category contains control characters"),
    _r("bad_certificate", S.INVALID_ARGUMENT, "a certificate is not a readable PEM/DER certificate", side=Side.BOTH),
    _r("bad_certification", S.NONE, "unknown certification mode in the config"),
    _r("bad_client_request_key", S.INVALID_ARGUMENT, "the client request key contains control, format or bidirectional characters"),
    _r("bad_code_number", S.INVALID_ARGUMENT, "code_number must contain digits only"),
    _r("bad_comment", S.INVALID_ARGUMENT, "the comment contains control characters"),
    _r("bad_credential_id", S.INVALID_ARGUMENT, "the credential id is not base64url of 16..1024 bytes"),
    _r("bad_credential_name", S.INVALID_ARGUMENT, "a credential name must be 1..… printable characters"),
    _r("bad_custody_kind", S.INVALID_ARGUMENT, "the custody change kind must be HANDOVER or DELEGATION"),
    _r("bad_delegation_category", S.INVALID_ARGUMENT, "a delegation category is empty"),
    _r("bad_delegation_range", S.INVALID_ARGUMENT, "the delegation ends before it starts"),
    _r("bad_display_name", S.INVALID_ARGUMENT, "the display name contains control, format or bidirectional characters"),
    _r("bad_document_hash", S.INVALID_ARGUMENT, "a document hash is not a valid SHA-256"),
    _r("bad_document_index", S.INVALID_ARGUMENT, "the request has no document with that index"),
    _r("bad_document_name", S.INVALID_ARGUMENT, "the document name contains control characters"),
    _r("bad_dpi", S.INVALID_ARGUMENT, "the seal image resolution is outside 72..1200 dpi"),
    _r("bad_holder_name", S.INVALID_ARGUMENT, "a square seal needs a holder name of 2 to 4 characters"),
    _r("bad_on_behalf_of", S.INVALID_ARGUMENT, "on_behalf_of names the approver themself; leave it empty"),
    _r("bad_organisation", S.INVALID_ARGUMENT, "a round seal needs the organisation name"),
    _r("bad_job_file", S.INVALID_ARGUMENT, "sealctl: the --job file is not a readable TOML/JSON job (unknown key, no marks, bad document entry)", side=Side.CLIENT),
    _r("bad_manifest", S.INVALID_ARGUMENT, "sealclient: a manifest needs one mark list per document", side=Side.CLIENT),
    _r("bad_mark", S.INVALID_ARGUMENT, "a sealing job's mark is malformed (no seal, anchor and cross-page together, bad anchor match count)", side=Side.BOTH),
    _r("bad_page_set", S.INVALID_ARGUMENT, "a mark's page set is not one page, a list, a range, \"last\" or \"all\"", side=Side.BOTH),
    _r("bad_page_token", S.INVALID_ARGUMENT, "bad page_token"),
    _r("bad_placement", S.INVALID_ARGUMENT, "the placement is out of range"),
    _r("bad_preview_dpi", S.INVALID_ARGUMENT, "the preview resolution is outside the allowed range"),
    _r("bad_preview_page", S.INVALID_ARGUMENT, "the preview page range is out of range (first page, page count)", side=Side.BOTH),
    _r("bad_reason", S.INVALID_ARGUMENT, "the reason contains control characters"),
    _r("bad_rotate", S.INVALID_ARGUMENT, "the page's /Rotate is not a multiple of 90"),
    _r("bad_seal_code", S.INVALID_ARGUMENT, "the seal code given with an impression is not 1..32 letters, digits or -"),
    _r("bad_seal_id", S.INVALID_ARGUMENT, "a mark's seal id contains control, format or bidirectional characters"),
    _r("bad_seal_image", S.INVALID_ARGUMENT, "the seal image is not a readable PNG"),
    _r("bad_shape", S.INVALID_ARGUMENT, "that seal type cannot have that shape"),
    _r("bad_signature_level", S.NONE, "unknown signature level in the config"),
    _r("bad_size", S.INVALID_ARGUMENT, "the seal size or resolution is out of range"),
    _r("bad_state", S.INVALID_ARGUMENT, "unknown delivery state: use pending, delivered, dead or nothing"),
    _r("bad_statement", S.INVALID_ARGUMENT, "a WebAuthn statement must approve and name no certificate"),
    _r("bad_timestamp", S.INVALID_ARGUMENT, "a time in the request is not a valid timestamp"),
    _r("bad_to_principal", S.INVALID_ARGUMENT, "the new custodian's name contains control, format or bidirectional characters"),
    _r("bad_trust_root", S.INVALID_ARGUMENT, "a trust root is not a PEM/DER certificate"),
    _r("bad_tsa_url", S.NONE, "[trust] tsa_url is not an http(s) URL"),
    _r("bad_window", S.INVALID_ARGUMENT, "a delegation needs a window with start before end (R09)"),
    _r("broken_page_tree", S.INVALID_ARGUMENT, "the PDF's page tree is damaged"),
    _r("broken_xref", S.INVALID_ARGUMENT, "the PDF's cross-reference table or trailer is damaged"),
    _r("busy", S.FAILED_PRECONDITION, "too many sign-ins in progress; retry later"),
    _r("category_out_of_scope", S.PERMISSION_DENIED, "the seal may not be used for that category (R03)"),
    _r("category_too_long", S.INVALID_ARGUMENT, "the category is longer than allowed"),
    _r("certificate_algorithm_mismatch", S.INVALID_ARGUMENT, "the certificate's key is of another kind than the seal's (subjectPublicKeyInfo.algorithm: SM2 for an RSA seal, RSA or P-256 for an SM2 seal)"),
    _r("certificate_key_mismatch", S.INVALID_ARGUMENT, "the certificate's public key is not the key on the seal's token"),
    _r("certificate_key_usage", S.INVALID_ARGUMENT, "the certificate's key usage allows neither digitalSignature nor nonRepudiation"),
    _r("certificate_not_found", S.NONE, "no certificate with the seal's label on the token"),
    _r("certificate_not_listed", S.UNAUTHENTICATED, "your certificate (SHA-256 …) is not on this seal host's allow-list"),
    _r("certificate_not_valid_now", S.INVALID_ARGUMENT, "the certificate is not valid now"),
    _r("certificate_unchanged", S.ALREADY_EXISTS, "that certificate is already the seal's registered certificate"),
    _r("certificate_untrusted_issuer", S.INVALID_ARGUMENT, "the certificate was not issued by the seal CA"),
    _r("certification_not_first", S.NONE, "a certification seal must be the document's first signature"),
    _r("certified_no_changes", S.NONE, "the document is certified with 'no changes allowed' (DocMDP P=1): it cannot be sealed again"),
    _r("challenge_expired", S.PERMISSION_DENIED, "the approval challenge expired"),
    _r("challenge_mismatch", S.PERMISSION_DENIED, "the assertion's challenge is not the statement's"),
    _r("challenge_other_request", S.PERMISSION_DENIED, "the assertion approves another request"),
    _r("challenge_unknown", S.PERMISSION_DENIED, "this assertion answers no open challenge (replayed, already used, or never issued)"),
    _r("checkpoint_invalid", S.FAILED_PRECONDITION, "an audit checkpoint is missing its key, badly signed, or contradicts the ledger"),
    _r("client_cancelled", S.NONE, "the client cancelled the call (log line only)"),
    _r("client_config_invalid", S.INVALID_ARGUMENT, "sealctl's config (file or flags) is incomplete or invalid (exit 2)", side=Side.CLIENT),
    _r("client_request_key_reused", S.ALREADY_EXISTS, "the submit's client_request_key already belongs to a request with other documents or details; use a new key"),
    _r("client_request_key_too_long", S.INVALID_ARGUMENT, "the client request key is longer than allowed"),
    _r("comment_too_long", S.INVALID_ARGUMENT, "the comment is longer than allowed", also=(S.FAILED_PRECONDITION,)),
    _r("config_invalid", S.INVALID_ARGUMENT, "an SM2 PKCS#11 profile in the config is invalid"),
    _r("conflict", S.ALREADY_EXISTS, "a write broke a uniqueness rule of the state database; nothing was changed, read the state and retry"),
    _r("conflicting_arguments", S.INVALID_ARGUMENT, "sealctl: arguments that exclude each other were given together", side=Side.CLIENT),
    _r("crash_between_intent_and_result", S.NONE, "the daemon stopped between intent and result; the request went back to APPROVED (ledger)"),
    _r("credential_exists", S.FAILED_PRECONDITION, "this security key is already enrolled"),
    _r("credential_mismatch", S.PERMISSION_DENIED, "the assertion was made by another security key than the one the challenge was issued for"),
    _r("credential_not_approved", S.PERMISSION_DENIED, "the security key waits for a second admin's approval"),
    _r("credential_not_yours", S.PERMISSION_DENIED, "this security key belongs to someone else"),
    _r("credential_revoked", S.FAILED_PRECONDITION, "the security key is revoked", also=(S.PERMISSION_DENIED,)),
    _r("credential_unknown", S.PERMISSION_DENIED, "the security key is not enrolled with the seal appliance", also=(S.NOT_FOUND,)),
    _r("cross_page_needs_pages", S.INVALID_ARGUMENT, "a cross-page seal needs more pages"),
    _r("cross_page_too_many_pages", S.INVALID_ARGUMENT, "too many pages: the cross-page seal's slices would be too thin"),
    _r("csr_file", S.INVALID_ARGUMENT, "sealctl cannot write the CSR file", side=Side.CLIENT),
    _r("custody_change_not_found", S.NOT_FOUND, "no custody change with that id"),
    _r("delegate_is_requester", S.FAILED_PRECONDITION, "the delegate is the requester of an open request on the seal"),
    _r("delegation_ambiguous", S.INVALID_ARGUMENT, "the delegate holds delegations from several approvers: name one (on_behalf_of)"),
    _r("delegation_final", S.FAILED_PRECONDITION, "the delegation has already ended"),
    _r("delegation_in_past", S.INVALID_ARGUMENT, "the delegation's range ends in the past", also=(S.FAILED_PRECONDITION,)),
    _r("delegation_needs_signed_statement", S.INVALID_ARGUMENT, "a delegate approves with a statement signed by their client key (sealctl approve --for)"),
    _r("delegation_not_found", S.NOT_FOUND, "no delegation with that id"),
    _r("delegation_not_in_force", S.PERMISSION_DENIED, "the delegation is not in force for that seal, category or time", also=(S.FAILED_PRECONDITION,)),
    _r("delegation_not_proposed", S.FAILED_PRECONDITION, "the delegation is not waiting for approval"),
    _r("delegation_overlaps", S.FAILED_PRECONDITION, "the delegator already has a delegation for that scope and time"),
    _r("delegation_to_self", S.INVALID_ARGUMENT, "a principal cannot delegate to themselves"),
    _r("delegation_too_long", S.INVALID_ARGUMENT, "the delegation lasts longer than requests.max_delegation_days"),
    _r("digest_mismatch", S.INVALID_ARGUMENT, "the approval digest does not match this request (documents, seal, placement, reason, category, requester)", also=(S.FAILED_PRECONDITION,)),
    _r("display_name_too_long", S.INVALID_ARGUMENT, "the display name is longer than allowed"),
    _r("document_gone", S.FAILED_PRECONDITION, "a document's file vanished during DownloadAllDocuments (the request changed); retry"),
    _r("document_hash_mismatch", S.INVALID_ARGUMENT, "the document SHA-256 you approved is not the submitted document's"),
    _r("document_index_out_of_range", S.INVALID_ARGUMENT, "sealctl: no document with that index in the request", side=Side.CLIENT),
    _r("document_name_too_long", S.INVALID_ARGUMENT, "the document name is longer than allowed"),
    _r("document_too_large", S.RESOURCE_EXHAUSTED, "a document is over max_document_bytes"),
    _r("download_hash_mismatch", S.DATA_LOSS, "sealctl: the downloaded document does not hash to what the daemon announced", side=Side.CLIENT),
    _r("download_incomplete", S.DATA_LOSS, "sealctl: the one-stream download skipped, repeated or reordered a document", side=Side.CLIENT),
    _r("download_hash_missing", S.DATA_LOSS, "sealctl: the daemon announced no hash for the download", side=Side.CLIENT),
    _r("duplicate", S.ALREADY_EXISTS, "this admin already approved the custody change"),
    _r("duplicate_header", S.INVALID_ARGUMENT, "the header was sent twice"),
    _r("empty", S.INVALID_ARGUMENT, "the document is empty (0 bytes)"),
    _r("empty_download", S.DATA_LOSS, "sealctl: the download carried no data", side=Side.CLIENT),
    _r("empty_message", S.INVALID_ARGUMENT, "empty SubmitRequest message"),
    _r("encrypted", S.INVALID_ARGUMENT, "the PDF is encrypted or password-protected"),
    _r("enrolment_code_invalid", S.PERMISSION_DENIED, "the enrolment code is wrong"),
    _r("enrolment_expired", S.PERMISSION_DENIED, "the enrolment code expired"),
    _r("enrolment_not_found", S.NOT_FOUND, "no enrolment with that id"),
    _r("enrolment_unused", S.FAILED_PRECONDITION, "redeem the enrolment before registering"),
    _r("enrolment_used", S.PERMISSION_DENIED, "this enrolment code was already used"),
    _r("error", S.INTERNAL, "an error without a more precise reason"),
    _r("evidence_ledger_missing", S.FAILED_PRECONDITION, "the request has no ledger records: the ledger is damaged"),
    _r("evidence_not_sealed", S.FAILED_PRECONDITION, "evidence exists only for sealed requests"),
    _r("failed_precondition", S.FAILED_PRECONDITION, "not now: wrong state, token absent or locked, seal stopped"),
    _r("field_exists", S.NONE, "the document already has a signed field of that name"),
    _r("gbt38540_data_hash_mismatch", S.INVALID_ARGUMENT, "the document was changed after sealing (GB/T 38540 dataHash differs)"),
    _r("gbt38540_embed_failed", S.INTERNAL, "the SES_Signature did not fit the space reserved in the PDF; nothing was released"),
    _r("gbt38540_invalid", S.INVALID_ARGUMENT, "a GB/T 38540 seal or signature is invalid"),
    _r("gbt38540_maker_key_mismatch", S.INVALID_ARGUMENT, "the seal maker's key did not produce a signature its certificate verifies: wrong key or certificate"),
    _r("gbt38540_maker_untrusted", S.INVALID_ARGUMENT, "the GB/T 38540 seal maker is not a configured seal maker"),
    _r("gbt38540_malformed", S.INVALID_ARGUMENT, "a GB/T 38540 structure is malformed"),
    _r("gbt38540_not_found", S.INVALID_ARGUMENT, "the PDF has no GB/T 38540 signature"),
    _r("gbt38540_oversized", S.INVALID_ARGUMENT, "a GB/T 38540 structure is over its size limit"),
    _r("gbt38540_picture_unsupported", S.INVALID_ARGUMENT, "the SES_Seal picture type is not supported"),
    _r("gbt38540_seal_expired", S.INVALID_ARGUMENT, "the GB/T 38540 seal had expired"),
    _r("gbt38540_seal_not_yet_valid", S.INVALID_ARGUMENT, "the GB/T 38540 seal was not yet valid"),
    _r("gbt38540_seal_signature_invalid", S.INVALID_ARGUMENT, "the seal maker's signature over SES_SealInfo does not verify"),
    _r("gbt38540_signature_invalid", S.INVALID_ARGUMENT, "SES_Signature.signature: the signer's signature over TBS_Sign does not verify"),
    _r("gbt38540_signer_cert_expired", S.INVALID_ARGUMENT, "the signer certificate was not valid at the signing time"),
    _r("gbt38540_signer_key_mismatch", S.INVALID_ARGUMENT, "the token's key does not match the signer certificate"),
    _r("gbt38540_signer_not_holder", S.INVALID_ARGUMENT, "the signer certificate is not among the seal's holders"),
    _r("gbt38540_timestamp_invalid", S.INVALID_ARGUMENT, "SES_Signature.timeStamp is not an RFC 3161 token"),
    _r("gbt38540_timestamp_mismatch", S.INVALID_ARGUMENT, "SES_Signature.timeStamp: the token's message imprint is not the hash of SES_Signature.signature"),
    _r("gbt38540_unsupported_algorithm", S.INVALID_ARGUMENT, "the GB/T 38540 signature algorithm is not supported"),
    _r("gbt38540_unsupported_version", S.INVALID_ARGUMENT, "the GB/T 38540 version is not supported"),
    _r("impression_active_content", S.INVALID_ARGUMENT, "the SVG impression has scripts, event attributes, embedded objects, animation, external references or a DTD"),
    _r("impression_code_mismatch", S.INVALID_ARGUMENT, "the seal code given with the impression is not the seal's configured code_number"),
    _r("impression_format", S.INVALID_ARGUMENT, "the impression is neither a PNG nor an SVG"),
    _r("impression_low_resolution", S.INVALID_ARGUMENT, "the PNG impression has fewer pixels per inch across the seal's size than [impression] min_dpi"),
    _r("impression_no_ink", S.INVALID_ARGUMENT, "the impression is (almost) empty: under 2 % of its pixels carry ink"),
    _r("impression_no_resolution", S.INVALID_ARGUMENT, "the PNG impression does not state its resolution (pHYs), so its size in mm is unknown"),
    _r("impression_no_size", S.INVALID_ARGUMENT, "the SVG impression does not give width and height in mm, cm, in, pt or pc"),
    _r("impression_not_transparent", S.INVALID_ARGUMENT, "the impression has no alpha channel, or its edge or too much of it is not transparent"),
    _r("impression_proposal_unknown", S.NOT_FOUND, "no such open impression proposal for the seal"),
    _r("impression_sha256_mismatch", S.INVALID_ARGUMENT, "the SHA-256 the approving admin named is not the proposed impression's"),
    _r("impression_too_large", S.INVALID_ARGUMENT, "the impression file is over [impression] max_bytes, or has too many pixels", side=Side.BOTH),
    _r("impression_unchanged", S.ALREADY_EXISTS, "that impression is already the seal's registered impression"),
    _r("impression_unreadable", S.INVALID_ARGUMENT, "the impression file cannot be decoded or rendered"),
    _r("impression_wrong_colour", S.INVALID_ARGUMENT, "under 98 % of the impression's ink is seal red (hue within 15 degrees of red, saturation >= 0.6, value >= 0.45)"),
    _r("impression_wrong_size", S.INVALID_ARGUMENT, "the impression's physical width is not the seal's size_mm (tolerance max(0.5 mm, 1 %)), or its height exceeds it"),
    _r("in_effect", S.ALREADY_EXISTS, "the custody change is already in effect"),
    _r("incomplete_batch", S.FAILED_PRECONDITION, "not every document was sealed"),
    _r("incremental_update", S.INVALID_ARGUMENT, "the PDF has unsigned incremental updates"),
    _r("internal", S.NONE, "an unexpected fault; nothing was changed, the operator finds it in the seald log"),
    _r("invalid_audit_event", S.INVALID_ARGUMENT, "an audit event with a malformed field was refused by the ledger"),
    _r("invalid_config", S.NONE, "a SIGHUP reload found the config file invalid; the old one stays in force (ledger, log)"),
    _r("invalid_input", S.INVALID_ARGUMENT, "the caller sent something malformed"),
    _r("job_seal_missing", S.FAILED_PRECONDITION, "a seal of an approved sealing job is no longer in the registry; nothing is signed"),
    _r("job_step_out_of_order", S.FAILED_PRECONDITION, "a sealing job's signature was not the next one of its document's signing order; refused, never signed twice"),
    _r("javascript", S.INVALID_ARGUMENT, "the PDF contains JavaScript, which could change what the sealed document shows"),
    _r("ledger_invalid", S.FAILED_PRECONDITION, "the ledger in the backup does not verify"),
    _r("limit_exceeded", S.RESOURCE_EXHAUSTED, "over a configured limit"),
    _r("local_digest_mismatch", S.DATA_LOSS, "sealctl: the approval digest this machine computed differs from the request's (R06)", side=Side.CLIENT),
    _r("local_document_count_mismatch", S.DATA_LOSS, "sealctl: the request lists another number of documents than were downloaded", side=Side.CLIENT),
    _r("local_file_unreadable", S.INVALID_ARGUMENT, "sealctl cannot read a local file", side=Side.CLIENT),
    _r("local_file_unwritable", S.INVALID_ARGUMENT, "sealctl cannot write a local file", side=Side.CLIENT),
    _r("local_hash_mismatch", S.DATA_LOSS, "sealctl: a document hashes differently on this machine than the daemon says (R06)", side=Side.CLIENT),
    _r("marks_overlap", S.INVALID_ARGUMENT, "marks of two different seals overlap on a page and the seals' policies do not allow it"),
    _r("malformed", S.INVALID_ARGUMENT, "the PDF is malformed and cannot be parsed reliably"),
    _r("missing_category", S.INVALID_ARGUMENT, "the category is empty"),
    _r("missing_certificate", S.INVALID_ARGUMENT, "no certificate was sent"),
    _r("missing_comment", S.INVALID_ARGUMENT, "the comment is empty"),
    _r("missing_display_name", S.INVALID_ARGUMENT, "ChangeSeal needs a new display_name or a renewed certificate_der"),
    _r("missing_document_name", S.INVALID_ARGUMENT, "the document name is empty"),
    _r("missing_document_start", S.INVALID_ARGUMENT, "document data arrived before a document_start"),
    _r("missing_header", S.INVALID_ARGUMENT, "no header was sent"),
    _r("missing_reason", S.INVALID_ARGUMENT, "the reason is empty"),
    _r("missing_seal_id", S.INVALID_ARGUMENT, "a mark names no seal"),
    _r("no_approval", S.FAILED_PRECONDITION, "the approver has no approval on the request to withdraw"),
    _r("no_certificate", S.UNAUTHENTICATED, "no client certificate"),
    _r("no_change", S.ALREADY_EXISTS, "the principal already holds the seal's custody"),
    _r("no_cjk_font", S.INVALID_ARGUMENT, "no CJK font on the seal host to draw the seal text", also=(S.FAILED_PRECONDITION,)),
    _r("no_delegation", S.NOT_FOUND, "the approver holds no delegation in force for that seal and category"),
    _r("no_documents", S.INVALID_ARGUMENT, "the request has no document"),
    _r("no_principal", S.INVALID_ARGUMENT, "name the principal who takes custody (to_principal)"),
    _r("not_a_custodian", S.PERMISSION_DENIED, "only a custodian of the seal may unlock, lock or change its PIN (R07)"),
    _r("not_a_png", S.INVALID_ARGUMENT, "sealctl: the seal image file is not a PNG", side=Side.CLIENT),
    _r("not_a_relay", S.PERMISSION_DENIED, "only the web console may present a web session"),
    _r("not_a_requester", S.PERMISSION_DENIED, "the caller is not a designated requester for the seal (R04)"),
    _r("not_allowed_evidence", S.PERMISSION_DENIED, "only the requester and the seal's auditors and admins may fetch evidence"),
    _r("not_allowed_to_preview", S.PERMISSION_DENIED, "only the requester and the seal's approvers, admins and auditors may preview (R04)"),
    _r("not_allowed_to_read", S.PERMISSION_DENIED, "only the requester and the seal's approvers, admins and auditors may read a request's documents (R04)"),
    _r("not_an_admin", S.PERMISSION_DENIED, "only admins may create backups"),
    _r("no_marks", S.INVALID_ARGUMENT, "a sealing job has no marks", side=Side.BOTH),
    _r("not_an_approver", S.PERMISSION_DENIED, "the caller is not a designated approver for the seal (R05)", also=(S.INVALID_ARGUMENT,)),
    _r("not_an_archive_operator", S.PERMISSION_DENIED, "only auditors and admins may renew archive timestamps"),
    _r("not_an_auditor", S.PERMISSION_DENIED, "only auditors and admins may read the audit trail"),
    _r("not_approved", S.FAILED_PRECONDITION, "the request (or custody change) is not approved yet"),
    _r("not_delegation_party", S.PERMISSION_DENIED, "only the delegator, the delegate or an admin may end the delegation"),
    _r("not_delegator_or_admin", S.PERMISSION_DENIED, "only the delegator or an admin may delegate the delegator's approvals"),
    _r("not_eligible_custodian", S.INVALID_ARGUMENT, "the new custodian is not a custodian-role principal of the seal"),
    _r("not_expired", S.FAILED_PRECONDITION, "the request has not expired"),
    _r("not_found", S.NOT_FOUND, "no such object"),
    _r("not_in_approval_path", S.PERMISSION_DENIED, "the approver is not in the seal's approver groups, or outside their authorisation window (R05)"),
    _r("not_on_the_web", S.PERMISSION_DENIED, "the RPC is not available through the web console"),
    _r("not_owner", S.PERMISSION_DENIED, "only the key's owner, or the web console carrying their browser, approves with it"),
    _r("not_pdf", S.INVALID_ARGUMENT, "the document is not a PDF (it does not start with %PDF-)"),
    _r("not_signed", S.FAILED_PRECONDITION, "the request is not SIGNED, so there is no sealed document"),
    _r("not_signing", S.FAILED_PRECONDITION, "the request is not being signed"),
    _r("not_the_delegate", S.PERMISSION_DENIED, "the delegation is held by someone else"),
    _r("not_the_holder", S.PERMISSION_DENIED, "the caller does not hold the seal's custody now (R09)"),
    _r("not_the_requester", S.PERMISSION_DENIED, "only the requester (or an auditor) may download the sealed document"),
    _r("not_visible", S.PERMISSION_DENIED, "the caller has no role on the request's seal (same answer as a missing request)"),
    _r("not_your_enrolment", S.PERMISSION_DENIED, "only the enrolled person (or the web console carrying their browser) registers a key"),
    _r("nothing_to_change", S.INVALID_ARGUMENT, "sealctl seal change was given nothing to change", side=Side.CLIENT),
    _r("nothing_to_write", S.INVALID_ARGUMENT, "sealctl seal impression show --out: there is no such impression to write", side=Side.CLIENT),
    _r("off_page", S.INVALID_ARGUMENT, "the seal does not fit on the page at that position"),
    _r("out_of_hours", S.FAILED_PRECONDITION, "outside the seal's allowed hours: unlock refused, the token is locked (R08)"),
    _r("output_not_a_directory", S.INVALID_ARGUMENT, "sealctl: the output path is not a directory", side=Side.CLIENT),
    _r("output_not_directory", S.INVALID_ARGUMENT, "sealctl: the output path is not a directory", side=Side.CLIENT),
    _r("outside_validity_window", S.FAILED_PRECONDITION, "the principal or seal is used outside its validity window (R03)"),
    _r("page_out_of_range", S.INVALID_ARGUMENT, "the seal is placed on a page the document does not have"),
    _r("permission_denied", S.PERMISSION_DENIED, "the caller is known but may not do this"),
    _r("pin_confirmation_mismatch", S.INVALID_ARGUMENT, "sealctl: the two PIN entries differ", side=Side.CLIENT),
    _r("pin_empty", S.INVALID_ARGUMENT, "sealctl: an empty PIN was entered", side=Side.CLIENT),
    _r("pin_incorrect", S.PERMISSION_DENIED, "wrong PIN for the token (its retry counter may be low)"),
    _r("pin_locked", S.FAILED_PRECONDITION, "the token is PIN-locked"),
    _r("pin_missing", S.INVALID_ARGUMENT, "the PIN is empty"),
    _r("pin_must_change", S.FAILED_PRECONDITION, "the token still has its initial user PIN (R07)"),
    _r("pin_weak", S.INVALID_ARGUMENT, "the new PIN must have at least 6 characters and differ from the current one"),
    _r("pkcs11_module", S.UNAVAILABLE, "the PKCS#11 module cannot be loaded"),
    _r("placement_unsupported", S.FAILED_PRECONDITION, "anchor-text placement is not supported for GB/T 38540 seals yet"),
    _r("preview_failed", S.INVALID_ARGUMENT, "a page of the document could not be rendered"),
    _r("preview_timeout", S.INVALID_ARGUMENT, "rendering a preview page took too long"),
    _r("principal_not_found", S.NOT_FOUND, "no such principal in the allow-list"),
    _r("principal_unknown", S.NOT_FOUND, "no such principal in seald.toml"),
    _r("proposal_done", S.ALREADY_EXISTS, "proposal … was already confirmed and carried out"),
    _r("proposal_expired", S.FAILED_PRECONDITION, "the proposal is older than allowed"),
    _r("proposal_id_required", S.INVALID_ARGUMENT, "the action needs two administrators: give a proposal id, then a second admin confirms it"),
    _r("proposal_mismatch", S.INVALID_ARGUMENT, "the proposal is for another action or seal"),
    _r("quorum_not_met", S.FAILED_PRECONDITION, "the approval policy is no longer met at signing time (R05)"),
    _r("quota_documents_per_request", S.RESOURCE_EXHAUSTED, "the seal's quota of documents per request is exceeded"),
    _r("quota_exceeded", S.RESOURCE_EXHAUSTED, "a seal quota is exhausted"),
    _r("quota_uses_per_day", S.RESOURCE_EXHAUSTED, "the seal's quota of uses per day is used up"),
    _r("quota_uses_per_month", S.RESOURCE_EXHAUSTED, "the seal's quota of uses per month is used up"),
    _r("rate_limited", S.RESOURCE_EXHAUSTED, "more calls per second than the per-principal rate limit allows; retry later"),
    _r("reason_too_long", S.INVALID_ARGUMENT, "the reason is longer than allowed"),
    _r("registration_not_started", S.FAILED_PRECONDITION, "no registration in progress for this enrolment (or it took too long)"),
    _r("report_format_unknown", S.INVALID_ARGUMENT, "unknown report format …"),
    _r("report_period_empty", S.INVALID_ARGUMENT, "the report period is empty: --to must be after --from"),
    _r("report_period_missing", S.INVALID_ARGUMENT, "a usage report needs from_time and to_time (--from/--to)"),
    _r("request_expired", S.FAILED_PRECONDITION, "the request's approval time ran out"),
    _r("request_final", S.FAILED_PRECONDITION, "the request is already final (signed, rejected, cancelled, expired or failed)"),
    _r("request_not_found", S.NOT_FOUND, "no request with that id"),
    _r("request_signing", S.FAILED_PRECONDITION, "the request is being signed right now"),
    _r("requester_cannot_approve", S.PERMISSION_DENIED, "the requester can never approve their own request (R05)"),
    _r("restart_required", S.NONE, "a SIGHUP reload changed settings that are read only at start; restart seald (ledger, log)"),
    _r("restore", S.NONE, "the state was restored from a backup (ledger)"),
    _r("restored_from_backup", S.NONE, "the request was voided by a restore from backup: its approvals may have been used (ledger)"),
    _r("same_admin", S.PERMISSION_DENIED, "the second admin of a two-admin action must be another person"),
    _r("same_day_return", S.NONE, "the token was not returned by the end of allowed hours plus grace (R08 alert, ledger)"),
    _r("seal_active", S.ALREADY_EXISTS, "the seal is active", also=(S.FAILED_PRECONDITION,)),
    _r("seal_algorithm_unsupported", S.INVALID_ARGUMENT, "the seal's key algorithm is not supported on a PKCS#11 token"),
    _r("seal_certificate_changed", S.FAILED_PRECONDITION, "the seal's certificate changed after the request was approved"),
    _r("seal_certificate_invalid", S.NONE, "the seal certificate could not be validated to the trust roots with revocation info"),
    _r("seal_certificate_renewed", S.NONE, "the seal certificate was renewed; approvals of open requests are void (ledger)"),
    _r("seal_certificate_revoked", S.NONE, "the seal certificate is revoked according to its CA's OCSP/CRL"),
    _r("seal_certificate_unknown", S.FAILED_PRECONDITION, "the certificate the request was bound to is not registered"),
    _r("seal_destroyed", S.FAILED_PRECONDITION, "the seal is destroyed (R02)", also=(S.ALREADY_EXISTS,)),
    _r("seal_face_changed", S.NONE, "the seal got a new SES_Seal (face or validity changed); approvals of open requests are void (ledger)"),
    _r("seal_has_certificate", S.ALREADY_EXISTS, "the seal already has a certificate"),
    _r("seal_id_too_long", S.INVALID_ARGUMENT, "a mark's seal id is longer than allowed"),
    _r("seal_impression_changed", S.FAILED_PRECONDITION, "the seal's registered impression changed after the request was approved"),
    _r("seal_impression_registered", S.NONE, "a new impression was registered for the seal; approvals of open requests are void (ledger)"),
    _r("seal_key_missing", S.FAILED_PRECONDITION, "the seal's token does not hold exactly one private key with the seal's label"),
    _r("seal_key_type_mismatch", S.FAILED_PRECONDITION, "the token's key type is not the seal's algorithm"),
    _r("seal_lost", S.FAILED_PRECONDITION, "the seal is reported lost (R02)", also=(S.ALREADY_EXISTS,)),
    _r("seal_maker_unavailable", S.FAILED_PRECONDITION, "the seal maker cannot sign the seal's SES_Seal now (token absent, PIN refused, not configured); nothing was changed", also=(S.PERMISSION_DENIED,)),
    _r("seal_not_found", S.NOT_FOUND, "no seal with that id"),
    _r("seal_pending", S.FAILED_PRECONDITION, "the seal has no certificate yet (R02)", also=(S.ALREADY_EXISTS,)),
    _r("seal_suspended", S.ALREADY_EXISTS, "the seal is suspended (R02)", also=(S.FAILED_PRECONDITION,)),
    _r("seal_worker_died", S.NONE, "a seal worker process died; nothing was released, the request is retried", also=(S.UNAVAILABLE,)),
    _r("self_approval", S.PERMISSION_DENIED, "the proposer and the person receiving custody cannot approve the change (R09)"),
    _r("self_delegation", S.INVALID_ARGUMENT, "the custodian cannot be their own delegate"),
    _r("server_streams_full", S.RESOURCE_EXHAUSTED, "the server already holds max_open_streams streams for all clients"),
    _r("ses_seal_expired", S.FAILED_PRECONDITION, "the seal's stored SES_Seal has expired (SES_Seal.eSealInfo.property.validEnd); the seal must be remade"),
    _r("ses_seal_missing", S.FAILED_PRECONDITION, "the GB/T 38540 seal has no SES_Seal in the registry (the maker could not make it)"),
    _r("ses_seal_not_yet_valid", S.FAILED_PRECONDITION, "the seal's stored SES_Seal is not valid yet (SES_Seal.eSealInfo.property.validStart)"),
    _r("ses_seal_stale", S.FAILED_PRECONDITION, "the seal's stored SES_Seal is for another certificate than the registered one"),
    _r("sign_count_regression", S.PERMISSION_DENIED, "the security key's signature counter did not advance: possibly cloned"),
    _r("signing_failed", S.NONE, "sealing failed in the signing layer"),
    _r("signing_key_unusable", S.INVALID_ARGUMENT, "sealctl cannot sign the approval statement with the client key", side=Side.CLIENT),
    _r("sm2_bad_signature", S.INVALID_ARGUMENT, "SM2 signature does not verify"),
    _r("sm2_invalid", S.INVALID_ARGUMENT, "an SM2 key, certificate or signature is wrong"),
    _r("sm2_profile_mismatch", S.FAILED_PRECONDITION, "the token's SM2 signature does not verify against the seal key"),
    _r("sm2_wrong_key_type", S.INVALID_ARGUMENT, "the key is not an SM2 key"),
    _r("statement_certificate_mismatch", S.PERMISSION_DENIED, "the approval statement names another certificate than the one you are connected with"),
    _r("statement_invalid", S.INVALID_ARGUMENT, "the signed approval statement cannot be parsed or checked"),
    _r("statement_mismatch", S.INVALID_ARGUMENT, "the signed approval statement does not say what is approved", also=(S.PERMISSION_DENIED,)),
    _r("statement_predates_withdrawal", S.INVALID_ARGUMENT, "the approval statement is dated before the approver's last withdrawal on the request; approve again (R06)"),
    _r("statement_replayed", S.INVALID_ARGUMENT, "this signed approval statement was already recorded; a statement counts once (R06)"),
    _r("statement_time_skew", S.INVALID_ARGUMENT, "the approval statement's time is too far from the seal host's clock"),
    _r("step_out_of_order", S.FAILED_PRECONDITION, "an approval chain step is approved before the steps before it are complete"),
    _r("store_closed", S.UNAVAILABLE, "the state database is not open"),
    _r("to_principal_too_long", S.INVALID_ARGUMENT, "the new custodian's name is longer than allowed"),
    _r("token_absent", S.FAILED_PRECONDITION, "the seal's token is not plugged in"),
    _r("token_backend_unsupported", S.FAILED_PRECONDITION, "the operation is not supported on this token backend (SKF)"),
    _r("token_error", S.FAILED_PRECONDITION, "the token failed during a key operation; the request waits APPROVED"),
    _r("token_locked", S.FAILED_PRECONDITION, "the seal's token is locked: its custodian must unlock it"),
    _r("token_objects_unavailable", S.NONE, "the key or certificate could not be read from the token"),
    _r("token_rogue", S.FAILED_PRECONDITION, "the token in the slot is not the registered one (label, certificate or key differ)"),
    _r("too_complex", S.INVALID_ARGUMENT, "the PDF has too many actions, fields or outline items to check"),
    _r("too_large", S.INVALID_ARGUMENT, "the PDF is larger than max_document_bytes"),
    _r("too_many_documents", S.RESOURCE_EXHAUSTED, "more documents in one request than max_documents_per_request"),
    _r("too_many_pages", S.INVALID_ARGUMENT, "the PDF has more pages than allowed"),
    _r("too_many_pending", S.RESOURCE_EXHAUSTED, "the requester already has max_pending_per_principal unfinished requests"),
    _r("too_many_marks", S.INVALID_ARGUMENT, "a sealing job has more marks than [limits] max_marks allows", side=Side.BOTH),
    _r("too_many_streams", S.RESOURCE_EXHAUSTED, "the principal already holds its cap of open server streams"),
    _r("tool_missing", S.FAILED_PRECONDITION, "a tool seald needs on the host (poppler) is missing", also=(S.INVALID_ARGUMENT,)),
    _r("truncated", S.INVALID_ARGUMENT, "the PDF is incomplete (no %%EOF at the end)"),
    _r("truncated_upload", S.INVALID_ARGUMENT, "fewer bytes arrived than the document announced"),
    _r("trust_roots_missing", S.NONE, "the signature level needs [trust] signing_roots (seal and TSA certificates)"),
    _r("trust_roots_unreadable", S.NONE, "a trust root file cannot be read"),
    _r("tsa_missing", S.NONE, "the signature level needs a timestamp authority: set [trust] tsa_url"),
    _r("tsa_unavailable", S.NONE, "the timestamp authority did not answer; the request FAILED, nothing released"),
    _r("unauthenticated", S.UNAUTHENTICATED, "the caller has no usable identity"),
    _r("unavailable", S.UNAVAILABLE, "the appliance cannot serve safely right now"),
    _r("unimplemented", S.UNIMPLEMENTED, "the RPC is not available in this daemon"),
    _r("unknown_action", S.INVALID_ARGUMENT, "sealctl: unknown action", side=Side.CLIENT),
    _r("unknown_seal", S.INVALID_ARGUMENT, "no seal with that id in the registry"),
    _r("unknown_seal_type", S.INVALID_ARGUMENT, "the seal type is not one the renderer knows"),
    _r("unreadable", S.INVALID_ARGUMENT, "the input document cannot be read"),
    _r("unreadable_file", S.INVALID_ARGUMENT, "sealctl cannot read a local file", side=Side.CLIENT),
    _r("unsupported_key_type", S.INVALID_ARGUMENT, "the client key type cannot sign approvals"),
    _r("unwritable_file", S.INVALID_ARGUMENT, "sealctl cannot write a local file", side=Side.CLIENT),
    _r("upload_hash_mismatch", S.INVALID_ARGUMENT, "the document arrived with another SHA-256 than announced"),
    _r("upload_too_long", S.INVALID_ARGUMENT, "document … is longer than its announced size"),
    _r("validation_failed", S.INVALID_ARGUMENT, "a signature in the document could not be validated"),
    _r("weak_code", S.INVALID_ARGUMENT, "an enrolment code must have at least 16 characters"),
    _r("web_session_expired", S.UNAUTHENTICATED, "the web session expired"),
    _r("web_session_unknown", S.UNAUTHENTICATED, "no web session (signed out or expired)"),
    _r("webauthn_assertion_invalid", S.PERMISSION_DENIED, "the WebAuthn assertion does not verify"),
    _r("webauthn_client_data_invalid", S.INVALID_ARGUMENT, "the assertion's client data has no challenge"),
    _r("webauthn_not_configured", S.FAILED_PRECONDITION, "WebAuthn approvals are not configured on this seal host"),
    _r("webauthn_registration_invalid", S.INVALID_ARGUMENT, "the security key's registration does not verify"),
    _r("zero_pages", S.INVALID_ARGUMENT, "the PDF has no pages"),
)

REASONS: dict[str, Reason] = {r.name: r for r in _TABLE}


def reason(name: str) -> Reason:
    """The registered reason ``name``; KeyError names the registry to extend."""
    try:
        return REASONS[name]
    except KeyError:
        raise KeyError(f"reason {name!r} is not registered in seald.domain.reasons") from None
