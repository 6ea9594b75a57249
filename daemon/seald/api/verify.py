"""VerifyService: check the seals of an uploaded PDF (pyHanko validation, off the loop)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from sealapi.v1 import verify_pb2, verify_pb2_grpc
from seald.api import convert
from seald.api.call import CallInfo, Gate, Servicer, rpc
from seald.domain.errors import InvalidInput, LimitExceeded
from seald.domain.model import Principal
from seald.gm.certs import pem_or_der
from seald.signing.errors import SigningError
from seald.signing.verify import CERTIFICATION_P, verify_pdf
from seald.store.database import Store
from seald.tokens.manager import TokenManager


class VerifyServicer(Servicer, verify_pb2_grpc.VerifyServiceServicer):
    def __init__(self, gate: Gate, *, store: Store, tokens: TokenManager) -> None:
        super().__init__(gate)
        self.store = store
        self.tokens = tokens

    @rpc
    async def VerifyDocument(
        self,
        principal: Principal,
        info: CallInfo,
        request_iterator: AsyncIterator[verify_pb2.VerifyDocumentChunk],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> verify_pb2.VerifyReport:

        limit = self.gate.live.current.requests.max_document_bytes
        with tempfile.TemporaryDirectory(dir=self.store.incoming_dir) as tmp:
            path = Path(tmp) / "verify.pdf"
            digest = hashlib.sha256()
            size = 0
            with path.open("wb") as f:
                async for chunk in request_iterator:
                    size += len(chunk.data)
                    if size > limit:
                        raise LimitExceeded(
                            f"the document is over {limit} bytes (max_document_bytes)",
                            reason="document_too_large",
                        )
                    f.write(chunk.data)
                    digest.update(chunk.data)
            trust = self.gate.live.current.trust
            # seal CA + the TSA/LTV roots (issue 6) so timestamps and DSS validate too
            roots = [p.read_bytes() for p in (trust.seal_ca, *trust.signing_roots)]
            maker = self.gate.live.current.seal_maker
            makers = [pem_or_der(maker.certificate.read_bytes())] if maker is not None else []
            loop = asyncio.get_running_loop()
            try:
                checks = await loop.run_in_executor(
                    None, functools.partial(verify_pdf, path, roots, seal_makers=makers)
                )
            except SigningError as ex:
                raise InvalidInput(str(ex), reason=ex.reason) from ex
        certs = {self.tokens.certificate_sha256(s): s for s in self.gate.live.current.seals}
        reports = [
            verify_pb2.SignatureReport(
                field_name=c.field_name,
                signer_subject=c.signer_subject,
                signer_certificate_sha256=c.signer_certificate_sha256,
                seal_id=certs.get(c.signer_certificate_sha256, ""),
                signing_time=convert.timestamp(c.signing_time),
                timestamp_time=convert.timestamp(c.timestamp_time),
                intact=c.intact,
                valid=c.valid,
                trusted=c.trusted,
                revocation=c.revocation,
                covers_whole_document=c.covers_whole_document,
                modification_level=c.modification_level,
                summary=c.summary,
                certification=c.certification,
                certification_level=CERTIFICATION_P.get(c.certification, 0),
            )
            for c in checks
        ]
        return verify_pb2.VerifyReport(
            signatures=reports,
            all_valid=bool(reports) and all(r.valid and r.trusted for r in reports),
            document_sha256=digest.hexdigest(),
        )
