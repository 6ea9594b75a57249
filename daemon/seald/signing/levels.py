"""PAdES signature levels (SEAL-RULES R14: verifiable for years).

- B-B: signature only.
- B-T: plus an RFC 3161 signature timestamp from the configured TSA.
- B-LT: plus certificates, OCSP responses and CRLs for the signer and the TSA in the
  document security store (DSS), so the document validates offline later.
- B-LTA: plus a document timestamp over all of that (renewable archive chain).

The signature container's space is reserved explicitly per level (pyHanko #515:
an estimate made without the timestamp token can be too small).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import pem, x509
from pyhanko.sign import fields
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko_certvalidator import ValidationContext

from .errors import SigningError


class SignatureLevel(enum.Enum):
    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"

    @classmethod
    def parse(cls, text: str) -> SignatureLevel:
        for level in cls:
            if level.value == text.strip().upper():
                return level
        raise SigningError(
            f"unknown signature level {text!r}; use one of " + ", ".join(level.value for level in cls),
            reason="bad_signature_level",
        )

    @property
    def needs_timestamp(self) -> bool:
        return self is not SignatureLevel.B_B

    @property
    def embeds_validation_info(self) -> bool:
        return self in (SignatureLevel.B_LT, SignatureLevel.B_LTA)


class Certification(enum.Enum):
    """DocMDP certification of the first seal (ISO 32000 12.8.2.2)."""

    NONE = "none"
    NO_CHANGES = "no_changes"  # P=1: any later change (even another seal) invalidates it
    FORM_FILLING = "form_filling"  # P=2: later seals (signatures) stay allowed

    @classmethod
    def parse(cls, text: str) -> Certification:
        for mode in cls:
            if mode.value == text.strip().lower():
                return mode
        raise SigningError(
            f"unknown certification {text!r}; use one of " + ", ".join(m.value for m in cls),
            reason="bad_certification",
        )

    @property
    def mdp_perm(self) -> fields.MDPPerm | None:
        if self is Certification.NO_CHANGES:
            return fields.MDPPerm.NO_CHANGES
        if self is Certification.FORM_FILLING:
            return fields.MDPPerm.FILL_FORMS
        return None


# Bytes reserved for the CMS (hex-encoded in the file: twice this on disk).
# B-B: RSA-4096 + a few certificates. B-T and up add the timestamp token with the
# TSA's own chain; measured ~6 KiB with a 2-level RSA-2048 PKI, so 64 KiB leaves
# room for 4096-bit keys and longer chains.
SIGNATURE_BYTES = {
    SignatureLevel.B_B: 32 * 1024,
    SignatureLevel.B_T: 64 * 1024,
    SignatureLevel.B_LT: 64 * 1024,
    SignatureLevel.B_LTA: 64 * 1024,
}


@dataclass(frozen=True)
class LevelSettings:
    """What a seal's signatures need beyond B-B (from the [trust] and [[seal]] config)."""

    level: SignatureLevel = SignatureLevel.B_B
    tsa_url: str = ""
    # Roots the signer's and the TSA's chains must end in; required for B-LT/B-LTA so
    # that pyHanko can collect the chain and its revocation info.
    trust_roots_pem: tuple[bytes, ...] = ()
    # Intermediate certificates to include (PEM/DER).
    other_certs_pem: tuple[bytes, ...] = ()
    # Fetch OCSP/CRL over HTTP while signing (B-LT/B-LTA need it unless the
    # responders are unreachable from the seal host: then signing fails closed).
    fetch_revocation: bool = True
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.level.needs_timestamp and not self.tsa_url:
            raise SigningError(
                f"signature level {self.level.value} needs a timestamp authority; "
                "set [trust] tsa_url or use level B-B",
                reason="tsa_missing",
            )
        if self.tsa_url and not self.tsa_url.startswith(("http://", "https://")):
            raise SigningError(
                f"tsa_url {self.tsa_url!r} must be an http:// or https:// URL", reason="bad_tsa_url"
            )
        if self.level.embeds_validation_info and not self.trust_roots_pem:
            raise SigningError(
                f"signature level {self.level.value} embeds revocation info and needs the "
                "trust roots of the seal and TSA certificates; set [trust] signing_roots",
                reason="trust_roots_missing",
            )

    @property
    def signature_bytes(self) -> int:
        return SIGNATURE_BYTES[self.level]

    def timestamper(self) -> HTTPTimeStamper | None:
        if not self.level.needs_timestamp:
            return None
        return HTTPTimeStamper(self.tsa_url, timeout=int(max(1, self.timeout_s)))

    def validation_context(self) -> ValidationContext | None:
        if not self.level.embeds_validation_info:
            return None
        return ValidationContext(
            trust_roots=load_certificates(self.trust_roots_pem),
            other_certs=load_certificates(self.other_certs_pem),
            allow_fetching=self.fetch_revocation,
            # No revocation info = no B-LT signature: refuse rather than ship a
            # document that silently fails long-term validation.
            revocation_mode="hard-fail",
        )

    def collected_validation_context(
        self,
        *,
        certs: Sequence[x509.Certificate],
        ocsps: Sequence[bytes],
        crls: Sequence[bytes],
    ) -> ValidationContext | None:
        """The context of a signature's post-signature step (the pipeline's finish):
        what its pre-signing validation collected, and no fetching.

        One-step ``PdfSigner.sign_pdf`` keeps one context from the pre-signing
        validation to the DSS and the document timestamp, so those reuse its cached
        OCSP responses; a fresh context allowed to fetch would ask the responders
        again (pyHanko fetches whenever it may) and embed the answers twice. Offline
        with the same data, the DSS is the same, and anything new (a TSA answering
        with another certificate) fails closed instead of being fetched.
        """
        if not self.level.embeds_validation_info:
            return None
        return ValidationContext(
            trust_roots=load_certificates(self.trust_roots_pem),
            other_certs=[*load_certificates(self.other_certs_pem), *certs],
            ocsps=list(ocsps),
            crls=list(crls),
            allow_fetching=False,
            revocation_mode="hard-fail",
        )


def load_certificates(blobs: Sequence[bytes]) -> list[x509.Certificate]:
    """Certificates from PEM (one or several per blob) or DER blobs."""
    certs: list[x509.Certificate] = []
    for blob in blobs:
        try:
            if pem.detect(blob):
                certs.extend(x509.Certificate.load(der) for _, _, der in pem.unarmor(blob, True))
            else:
                certs.append(x509.Certificate.load(blob))
        except Exception as ex:
            raise SigningError(
                "a configured trust certificate is not a PEM/DER certificate; fix the file",
                reason="bad_certificate",
            ) from ex
    return certs


def level_settings(
    level: str,
    *,
    tsa_url: str,
    trust_root_files: Sequence[Path],
    fetch_revocation: bool = True,
) -> LevelSettings:
    """LevelSettings from the daemon's config values (files read now, per signature,
    so a replaced CA file is picked up without a restart)."""
    parsed = SignatureLevel.parse(level)
    roots: tuple[bytes, ...] = ()
    if parsed.embeds_validation_info:
        try:
            roots = tuple(path.read_bytes() for path in trust_root_files)
        except OSError as ex:
            raise SigningError(
                f"cannot read a trust root file ({ex.strerror}); check [trust] signing_roots",
                reason="trust_roots_unreadable",
            ) from ex
    return LevelSettings(
        level=parsed,
        tsa_url=tsa_url if parsed.needs_timestamp else "",
        trust_roots_pem=roots,
        fetch_revocation=fetch_revocation,
    )
