"""The seal maker's key (GB/T 38540 制章人): what signs a seal's ``SES_Seal`` (issue 19).

Two kinds, chosen by ``[seal_maker]``:

- ``SkfMakerKey``: an SM2 key in a container of the maker's own SKF token (the production
  form; the token is not any seal's token). Each ``sign`` connects to the device found by
  its DEVINFO serial, verifies the user PIN read from ``pin_file`` at that moment, signs
  with ``SKF_ECCSignData`` (e = SM3(Z||M) prepared here, as for seal tokens), logs out and
  closes. The PIN is never kept, logged or put into a message.
- ``PemMakerKey``: a software SM2 key file, for tests and development only.

The maker signs when a seal is made or remade (registry/ses_seal.py), never per document;
sealing uses the stored ``SES_Seal`` and works while the maker's token is away.
Every signature is checked against the maker certificate by ``ses.build_seal``.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from seald.config import SealMakerConfig
from seald.domain.errors import PermissionDenied, PreconditionFailed
from seald.gm.sm2 import Sm2PrivateKey
from seald.tokens import skf


class MakerKey(Protocol):
    def sign(self, message: bytes) -> bytes:
        """DER SM2 signature (default user id) over ``message``; blocking (run it off the loop)."""
        ...


class PemMakerKey:
    """A PEM key file: tests and development only (a file key can be copied)."""

    def __init__(self, pem: bytes) -> None:
        self._key = Sm2PrivateKey.from_pem(pem)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


class SkfMakerKey:
    def __init__(
        self, library: skf.SkfLibrary, *, device_serial: str, application: str, container: str, pin: bytes
    ) -> None:
        self._lib = library
        self._serial = device_serial
        self._application = application
        self._container = container
        self._pin = pin  # read from pin_file when the maker is needed; dropped with this object

    def _device(self) -> skf.SkfDevice:
        for name in self._lib.enum_devices():
            try:
                dev = self._lib.connect(name)
            except skf.SkfError:
                continue
            try:
                if dev.info().serial == self._serial:
                    return dev
            except skf.SkfError:
                pass
            with contextlib.suppress(skf.SkfError):
                dev.close()
        raise PreconditionFailed(
            f"the seal maker's token (serial {self._serial}) is not inserted; insert it and repeat "
            "the seal change (nothing was made)",
            reason="seal_maker_unavailable",
        )

    def sign(self, message: bytes) -> bytes:
        dev = self._device()
        app = con = None
        try:
            app = dev.open_application(self._application)
            app.verify_pin(self._pin.decode("utf-8").strip())
            con = app.open_container(self._container)
            return con.sign(message)
        except skf.SkfPinIncorrect as exc:
            raise PermissionDenied(
                f"the seal maker's token refused the PIN in [seal_maker] pin_file ({exc.retries_left} tries "
                "left); fix the file - seald does not retry",
                reason="seal_maker_unavailable",
            ) from None
        except skf.SkfError as exc:
            raise PreconditionFailed(
                f"the seal maker's token refused: {exc.code_name} (application {self._application!r}, "
                f"container {self._container!r}); nothing was made",
                reason="seal_maker_unavailable",
            ) from None
        finally:
            for closer in (con, app):
                if closer is not None:
                    with contextlib.suppress(skf.SkfError):
                        closer.close()
            with contextlib.suppress(skf.SkfError):
                dev.close()


def maker_key(config: SealMakerConfig, library: skf.SkfLibrary | None) -> MakerKey:
    """The configured maker key; file contents are read now (call it when the maker is needed)."""
    if config.token is not None:
        if library is None:
            raise PreconditionFailed(
                "[seal_maker] token keys need [skf] library; add it", reason="seal_maker_unavailable"
            )
        t = config.token
        mode = t.pin_file.stat().st_mode
        if mode & 0o007:
            # Fail closed: a PIN anyone on the host can read is no second factor.
            raise PreconditionFailed(
                f"[seal_maker] pin_file {t.pin_file} is readable by other users (mode {mode & 0o777:o}); "
                "chmod 600 it (or use a systemd credential)",
                reason="seal_maker_unavailable",
            )
        return SkfMakerKey(
            library,
            device_serial=t.device_serial,
            application=t.application,
            container=t.container,
            pin=t.pin_file.read_bytes(),
        )
    if config.key is None:  # config.py refuses this; kept explicit for the type checker
        raise PreconditionFailed("[seal_maker] has no key", reason="seal_maker_unavailable")
    return PemMakerKey(config.key.read_bytes())
