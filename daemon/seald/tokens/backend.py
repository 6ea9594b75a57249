"""The one protocol every seal-key backend offers: presence, custody, certificate, signing.

Two backends implement it: ``TokenManager`` (PKCS#11: SoftHSM, RSA-2048 and ECDSA P-256,
SM2 through a vendor mechanism profile) and ``SkfTokenManager`` (GM/T 0016 SKF tokens, SM2).
What a caller may rely on, whatever the token:

- ``state``/``states``/``add_listener``: presence and lock state (``TokenState``); a listener
  hears every change, whether it came from a presence source (udev, SKF_WaitForDevEvent), a
  custodian's unlock/lock, or a removal noticed during a key operation;
- ``unlock``/``lock``/``change_pin``: custody (R07); a wrong PIN is ``PermissionDenied``
  (``pin_incorrect``) saying how many tries the token has left when it says so;
- ``certificate_der``: the registered certificate of the seal (b"" for a new seal);
- ``sign(seal_id, message)``: a signature over ``message`` with the seal's key on its token
  (RSA PKCS#1 v1.5/SHA-256, ECDSA/SHA-256 or SM2/SM3 with the default id, all DER), run on
  the token's own thread, failing closed (``PreconditionFailed``) when the token is absent,
  locked, or removed while it signs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from seald.tokens.manager import TokenState


class KeyBackend(Protocol):
    def add_listener(self, listener: Callable[[TokenState], None]) -> None: ...

    def state(self, seal_id: str) -> TokenState: ...

    def states(self) -> list[TokenState]: ...

    def certificate_der(self, seal_id: str) -> bytes: ...

    async def refresh(self) -> None: ...

    async def unlock(self, seal_id: str, pin: str, principal: str) -> TokenState: ...

    async def lock(self, seal_id: str) -> TokenState: ...

    async def change_pin(self, seal_id: str, old_pin: str, new_pin: str) -> None: ...

    async def sign(self, seal_id: str, message: bytes) -> bytes: ...

    async def close(self) -> None: ...
