"""pyHanko's ExternalSigner with the CMS signed attributes encoded once per certificate
(issue 20).

Why: profiling the pipeline on one-page documents put about two thirds of a
document's CPU in asn1crypto building and re-encoding the PAdES signed attributes
(content type, message digest, ESS signing-certificate-v2 with the issuer's name and
the certificate hash), although only the message digest differs between the documents
sealed with one certificate. pyHanko has no option to reuse them: its ``signed_attrs``
builds them from scratch per signature. ``PreEncodedSigner`` overrides only that
method. The first call for a (digest algorithm, content type) runs pyHanko's own
``signed_attrs`` with a random placeholder digest and keeps the DER split around it;
later calls put the real digest where the placeholder was and load the result, so the
bytes the token signs are exactly the ones pyHanko would have built for that digest
(``tests/integration/test_volume_cms.py`` compares them and whole CMS structures).
Every other part of the signature (SignedData, SignerInfo, certificates, timestamps,
PAdES B-T..B-LTA) is pyHanko's, unchanged. Anything outside the cached case (CAdES
signed-attribute specs, a non-PAdES signature, a dry run, a custom provider spec)
goes to pyHanko unchanged.

Ordering: the attributes are a DER SET OF, ordered by their encodings; the
message-digest attribute's encoding differs from the others in its length and OID
before its value, so the digest bytes never change the order.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from asn1crypto import cms
from pyhanko.sign import signers
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes


class CmsTemplates:
    """The DER pieces pyHanko produced once for one signing certificate and chain,
    shared by every ``PreEncodedSigner`` made for that certificate in this process."""

    def __init__(self) -> None:
        # (digest algorithm, content type) -> signed attributes before/after the digest
        self.signed_attrs: dict[tuple[str, str], tuple[bytes, bytes]] = {}
        # (digest algorithm, signed attributes without their digest, signature length)
        # -> ContentInfo before the digest, between digest and signature, after it
        self.signed_data: dict[tuple[str, bytes, int], tuple[bytes, bytes, bytes]] = {}


class KeptContentInfo(cms.ContentInfo):  # type: ignore[misc]  # asn1crypto has no type hints
    """A ContentInfo made from DER we already have, dumped as those bytes while unchanged.

    Why: asn1crypto 1.5.1 takes any header whose LAST byte is 0x80 for the BER
    indefinite-length marker and then re-encodes the whole value (wbond/asn1crypto#249):
    a CMS of 0x0680 bytes (header 30 82 06 80) cost about 0.2-0.5 s per ``dump()`` here,
    on every document of a seal whose B-B signature has that length (the fixtures'
    official seal: bench/bench_job.py). Our bytes are DER already; once a field is
    read or changed (``children`` parsed), asn1crypto's own ``dump`` is used."""

    _kept: bytes | None = None

    @classmethod
    def keep(cls, der: bytes) -> KeptContentInfo:
        info: KeptContentInfo = cls.load(der)
        info._kept = der
        return info

    def dump(self, force: bool = False) -> bytes:
        if self._kept is not None and not force and self.children is None:
            return self._kept
        der: bytes = super().dump(force)
        return der


class PreEncodedSigner(signers.ExternalSigner):
    """An ``ExternalSigner`` whose PAdES signed attributes and CMS container are
    encoded once per certificate (``templates``) and filled in per document."""

    def __init__(self, *args: Any, templates: CmsTemplates, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._templates = templates

    async def signed_attrs(  # type: ignore[no-untyped-def]  # noqa: PLR0917 (pyHanko's signature)
        self,
        data_digest: bytes,
        digest_algorithm: str,
        attr_settings: PdfCMSSignedAttributes | None = None,
        content_type="data",
        use_pades=False,
        timestamper=None,
        dry_run=False,
        is_pdf_sig=True,
    ) -> cms.CMSAttributes:
        settings = attr_settings or PdfCMSSignedAttributes()
        cacheable = (
            use_pades
            and is_pdf_sig
            and not dry_run
            and self.signed_attr_prov_spec is None
            and settings.cades_signed_attrs is None
            and settings.adobe_revinfo_attr is None
            and isinstance(content_type, str)
            and len(data_digest) == _digest_size(digest_algorithm)
        )
        if not cacheable:
            return await super().signed_attrs(
                data_digest,
                digest_algorithm,
                attr_settings=attr_settings,
                content_type=content_type,
                use_pades=use_pades,
                timestamper=timestamper,
                dry_run=dry_run,
                is_pdf_sig=is_pdf_sig,
            )
        key = (digest_algorithm, content_type)
        template = self._templates.signed_attrs.get(key)
        if template is None:
            template = await self._signed_attrs_template(digest_algorithm, content_type, settings)
            self._templates.signed_attrs[key] = template
        before, after = template
        # Loaded, not built: asn1crypto keeps the bytes and dump() returns them as they are.
        return cms.CMSAttributes.load(before + data_digest + after)

    async def _signed_attrs_template(
        self, digest_algorithm: str, content_type: str, settings: PdfCMSSignedAttributes
    ) -> tuple[bytes, bytes]:
        """pyHanko's own attributes for a random digest, split around that digest."""
        placeholder = os.urandom(_digest_size(digest_algorithm))
        attrs = await super().signed_attrs(
            placeholder, digest_algorithm, attr_settings=settings, content_type=content_type, use_pades=True
        )
        before, after = _split(attrs.dump(), placeholder)
        return before, after

    async def async_sign_prescribed_attributes(  # type: ignore[no-untyped-def]  # noqa: PLR0917 (pyHanko's)
        self,
        digest_algorithm: str,
        signed_attrs: cms.CMSAttributes,
        cms_version="v1",
        dry_run=False,
        timestamper=None,
        encap_content_info=None,
    ) -> cms.ContentInfo:
        """The CMS ContentInfo around the signed attributes and this signer's signature
        value: from the per-certificate template when nothing else goes in it (no
        signature timestamp, no other unsigned attribute), else pyHanko's own."""
        attrs_der: bytes = signed_attrs.dump()
        digest_algorithm = digest_algorithm.lower()
        message_digest = _message_digest(signed_attrs)
        signature = await self.async_sign_raw(attrs_der, digest_algorithm, dry_run)
        cacheable = (
            not dry_run
            and timestamper is None
            and cms_version == "v1"
            and encap_content_info is None
            and self.unsigned_attr_prov_spec is None
            and message_digest is not None
            and attrs_der.count(message_digest) == 1
        )
        if not cacheable or message_digest is None:
            return await super().async_sign_prescribed_attributes(
                digest_algorithm,
                signed_attrs,
                cms_version=cms_version,
                dry_run=dry_run,
                timestamper=timestamper,
                encap_content_info=encap_content_info,
            )
        # Keyed by the attributes themselves (less the digest): the template's copy of
        # them is the one that ends up in the output.
        key = (digest_algorithm, attrs_der.replace(message_digest, b""), len(signature))
        template = self._templates.signed_data.get(key)
        if template is None:
            template = await self._signed_data_template(
                digest_algorithm, attrs_der, message_digest, len(signature)
            )
            self._templates.signed_data[key] = template
        before, middle, after = template
        return KeptContentInfo.keep(before + message_digest + middle + signature + after)

    async def _signed_data_template(
        self, digest_algorithm: str, attrs_der: bytes, message_digest: bytes, signature_length: int
    ) -> tuple[bytes, bytes, bytes]:
        """pyHanko's own ContentInfo for a random digest and a random signature value of
        this length, split around both."""
        digest_placeholder = os.urandom(len(message_digest))
        signature_placeholder = os.urandom(signature_length)
        attrs = cms.CMSAttributes.load(attrs_der.replace(message_digest, digest_placeholder))
        reference = signers.ExternalSigner(
            signing_cert=self.signing_cert,
            cert_registry=self.cert_registry,
            signature_value=signature_placeholder,
            signature_mechanism=self.signature_mechanism,
            prefer_pss=self.prefer_pss,
            embed_roots=self.embed_roots,
        )
        info = await reference.async_sign_prescribed_attributes(digest_algorithm, attrs)
        before, rest = _split(info.dump(), digest_placeholder)
        middle, after = _split(rest, signature_placeholder)
        return before, middle, after


def _digest_size(digest_algorithm: str) -> int:
    try:
        return hashlib.new(digest_algorithm).digest_size
    except ValueError:
        return -1  # unknown here: never cached, pyHanko decides


def _message_digest(attrs: cms.CMSAttributes) -> bytes | None:
    for attr in attrs:
        if attr["type"].native == "message_digest" and len(attr["values"]) == 1:
            value: bytes = attr["values"][0].native
            return value
    return None


def _split(der: bytes, placeholder: bytes) -> tuple[bytes, bytes]:
    """``der`` around the one occurrence of ``placeholder`` (random bytes of 32 or more:
    another occurrence by chance has a probability of about 2^-248)."""
    if der.count(placeholder) != 1:
        raise ValueError("a placeholder is not found exactly once in pyHanko's encoding")
    before, _, after = der.partition(placeholder)
    return before, after
