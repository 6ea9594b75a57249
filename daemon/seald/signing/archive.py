"""Archive timestamp renewal of B-LTA documents (issue 16 item 5; SEAL-RULES R14).

``archive_facts`` reads the newest document timestamp of a sealed PDF: its time and the
earliest end date of its TSA certificate and that certificate's chain (the pure rule in
domain/archive.py decides whether it is due). ``renew_archive`` is pyHanko's archival
timestamp chain update (``PdfTimeStamper.async_update_archival_timestamp_chain``): the
last timestamp is validated with revocation hard-fail (fresh OCSP/CRL fetched from the
responders), its chain and revocation data go into the DSS, and a new document timestamp
from the configured TSA covers all of it, as one incremental update. The earlier
revisions stay byte for byte a prefix, so every earlier signature still verifies.

Blocking (PDF parsing, HTTP): the daemon runs it in a thread, never on its loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from asn1crypto import cms, x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError

from seald.domain.archive import ArchiveFacts

from .errors import SigningError
from .levels import load_certificates

# The renewal's own field: several renewals of one document each get a new number.
FIELD_PREFIX = "ArchiveTimestamp"


@dataclass(frozen=True)
class RenewedArchive:
    sha256: str
    size: int
    facts: ArchiveFacts  # of the new, newest document timestamp


def archive_facts(path: Path, trust_roots_pem: Sequence[bytes] = ()) -> ArchiveFacts:
    """Facts of the newest document timestamp in the PDF at ``path`` (read from the file,
    never whole in memory)."""
    try:
        with path.open("rb") as handle:
            reader = PdfFileReader(handle, strict=False)
            stamps = list(reader.embedded_timestamp_signatures)
            return _facts(stamps, trust_roots_pem)
    except OSError as ex:
        raise SigningError(f"cannot read {path.name} ({ex.strerror})", reason="unreadable") from ex
    except SigningError:
        raise
    except Exception as ex:
        raise SigningError(
            f"{path.name} cannot be parsed ({type(ex).__name__}); check the file", reason="malformed"
        ) from ex


def _facts(stamps: Sequence[Any], trust_roots_pem: Sequence[bytes]) -> ArchiveFacts:
    if not stamps:
        return ArchiveFacts(None, None)
    signed_data: cms.SignedData = stamps[-1].signed_data
    tst_info = signed_data["encap_content_info"]["content"].parsed
    gen_time: datetime = tst_info["gen_time"].native
    signer = stamps[-1].signer_cert
    pool = [c.chosen for c in signed_data["certificates"] if isinstance(c.chosen, x509.Certificate)]
    pool += load_certificates(trust_roots_pem)
    return ArchiveFacts(gen_time, _chain_end(signer, pool), signer.subject.human_friendly)


def _chain_end(cert: x509.Certificate, pool: Sequence[x509.Certificate]) -> datetime:
    """The earliest notAfter along ``cert``'s issuer chain as far as ``pool`` reaches."""
    end: datetime = cert["tbs_certificate"]["validity"]["not_after"].native
    seen = {cert.sha256}
    current = cert
    while not current.self_issued:
        issuer = next(
            (c for c in pool if c.subject == current.issuer and c.sha256 not in seen), None
        )
        if issuer is None:
            break
        seen.add(issuer.sha256)
        end = min(end, issuer["tbs_certificate"]["validity"]["not_after"].native)
        current = issuer
    return end


def renew_archive(
    source: Path,
    output: Path,
    *,
    tsa_url: str,
    trust_roots_pem: Sequence[bytes],
    field_name: str,
    timeout_s: float = 10.0,
) -> RenewedArchive:
    """Write ``source`` plus a fresh archive timestamp to ``output`` (created, fsynced)."""
    context = ValidationContext(
        trust_roots=load_certificates(trust_roots_pem),
        allow_fetching=True,
        # No fresh revocation data = no renewal: the new timestamp must rest on evidence.
        revocation_mode="hard-fail",
    )
    stamper = PdfTimeStamper(HTTPTimeStamper(tsa_url, timeout=int(max(1, timeout_s))), field_name=field_name)
    try:
        with source.open("rb") as src, output.open("xb") as out:
            reader = PdfFileReader(src, strict=False)
            if not list(reader.embedded_timestamp_signatures):
                raise SigningError(
                    f"{source.name} has no document timestamp to renew",
                    reason="archive_no_document_timestamp",
                )
            asyncio.run(
                stamper.async_update_archival_timestamp_chain(reader, context, in_place=False, output=out)
            )
            out.flush()
            os.fsync(out.fileno())
    except SigningError:
        raise
    except TimestampRequestError as ex:
        raise SigningError(
            f"the timestamp authority {tsa_url} did not answer ({type(ex).__name__}); "
            "nothing was changed, the renewal is retried at the next run",
            reason="archive_tsa_unavailable",
        ) from ex
    except (PathBuildingError, PathValidationError) as ex:
        raise SigningError(
            "the last archive timestamp could not be validated with fresh revocation data "
            f"({type(ex).__name__}); check [trust] signing_roots and that the OCSP/CRL responders "
            "answer; nothing was changed",
            reason="archive_validation_failed",
        ) from ex
    except OSError as ex:
        raise SigningError(
            f"cannot write the renewed archive ({ex.strerror}); check the state directory",
            reason="archive_write_failed",
        ) from ex
    except Exception as ex:  # pyHanko raises many kinds; every one means: not renewed
        raise SigningError(
            f"the archive timestamp could not be renewed ({type(ex).__name__}: {str(ex)[:200]}); "
            "nothing was changed",
            reason="archive_renewal_failed",
        ) from ex
    digest, size = hashlib.sha256(), 0
    with output.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return RenewedArchive(digest.hexdigest(), size, archive_facts(output, trust_roots_pem))
