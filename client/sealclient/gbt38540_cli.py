"""``sealctl verify --offline FILE``: GB/T 38540 seal signatures checked on this machine.

No daemon is needed: every ``/SubFilter /GBT38540.SES`` signature in the PDF is checked
with seald's own verifier (the ByteRange SM3 hash is ``TBS_Sign.dataHash``; the seal
maker's signature over ``SES_SealInfo``; the seal valid at the signing time; the signer
certificate among the seal's holders; the SM2 signature over ``TBS_Sign``; the
timestamp's imprint). ``--seal-maker CERT`` (repeatable, PEM or DER) pins the makers whose
seals are accepted; without it the maker is reported, not checked against a list.
``--tsa-root CERT`` (repeatable) checks a timestamp's TSA signature and chain too (offline,
pyHanko's token validation); a timestamp that fails it makes the document NOT VALID.
PAdES (CMS) signatures are verified by the daemon: ``sealctl verify FILE``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Protocol

from sealclient.exitcodes import ExitCode


class _Output(Protocol):
    def emit(self, human: str, data: Any) -> None: ...


def _der(data: bytes) -> bytes:
    if data.lstrip().startswith(b"-----BEGIN"):
        from cryptography import x509  # noqa: PLC0415
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

        return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    return data


def cmd_verify_offline(args: argparse.Namespace, out: _Output) -> int:
    # Only this offline mode runs seald's GB/T 38540 verifier in the client process.
    from seald.domain.errors import SealError  # noqa: PLC0415
    from seald.signing import gbt38540_pdf  # noqa: PLC0415

    try:
        data = args.file.read_bytes()
        makers = [_der(p.read_bytes()) for p in args.seal_maker] or None
        tsa_roots = [_der(p.read_bytes()) for p in args.tsa_root]
    except OSError as ex:
        print(f"sealctl: error: cannot read: {ex}", file=sys.stderr)
        return ExitCode.OTHER
    try:
        checks = gbt38540_pdf.verify_gbt38540_pdf(data, trusted_makers=makers)
    except SealError as ex:
        out.emit(
            f"{args.file}: NOT VALID: {ex.message} ({ex.reason})",
            {"file": str(args.file), "valid": False, "reason": ex.reason, "problem": ex.message},
        )
        return ExitCode.VERIFICATION_FAILED
    lines, items = [], []
    timestamps_ok = True
    for c in checks:
        r = c.report
        whole = "covers the whole file" if c.covers_whole_document else "DATA WAS APPENDED after it"
        stamp, problem = "", ""
        if r.timestamp_time is not None:
            stamp = f"; timestamp {r.timestamp_time.isoformat()}"
            if tsa_roots:
                der, _hash = gbt38540_pdf.signature_and_hash(data, c.field_name)
                problem = gbt38540_pdf.timestamp_problem_blocking(der, tsa_roots)
                stamp += f" NOT VALID: {problem}" if problem else " (TSA trusted)"
            else:
                stamp += " (imprint checked; pass --tsa-root to check its TSA)"
        timestamps_ok &= not problem
        lines.append(
            f"{c.field_name}: valid GB/T 38540 seal signature ({', '.join(r.checks)}); seal {r.seal.name!r} "
            f"(esID {r.seal.es_id}, maker {r.seal.maker_subject}); signer {r.signer_subject}; "
            f"signed {r.time_info.isoformat()}{stamp}; {whole}"
        )
        items.append(
            {
                "field": c.field_name,
                "checks": list(r.checks),
                "seal_name": r.seal.name,
                "es_id": r.seal.es_id,
                "maker": r.seal.maker_subject,
                "signer": r.signer_subject,
                "time_info": r.time_info.isoformat(),
                "covers_whole_document": c.covers_whole_document,
                "timestamp": r.timestamp_time.isoformat() if r.timestamp_time else None,
                "timestamp_problem": problem,
            }
        )
    if makers is None:
        lines.append("note: seal makers not checked against a list (pass --seal-maker CERT)")
    valid = timestamps_ok and all(c.covers_whole_document for c in checks)
    out.emit("\n".join(lines), {"file": str(args.file), "valid": valid, "signatures": items})
    return ExitCode.OK if valid else ExitCode.VERIFICATION_FAILED
