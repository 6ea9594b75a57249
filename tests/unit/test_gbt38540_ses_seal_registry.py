"""The stored SES_Seal (issue 19): what the signer may embed, and the [seal_maker] config.

``check_usable`` is the signer's gate on the SES_Seal the registry stores: missing, for
another certificate, destroyed, not yet valid or expired are refused with the reason and
the SES_Seal field named. The structures here are real (built and signed with SM2 keys by
seald.gm); only the storage row is made in memory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import cast

import pytest
from fixture_layout import SealFixtures

from seald.config import SealMakerConfig, SealMakerTokenConfig, load_config
from seald.domain.errors import ConfigError, PreconditionFailed
from seald.gm import ses
from seald.service.ses_seal_check import check_usable, stored_face
from seald.store.ses_seals import StoredSesSeal
from seald.tokens.seal_maker import SkfMakerKey, maker_key
from seald.tokens.skf import SkfLibrary
from seald_testing.sm2_pki import maker_and_holder

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _stored(destroyed: str = "") -> tuple[StoredSesSeal, bytes]:
    pki = maker_and_holder(START - dt.timedelta(days=1), END + dt.timedelta(days=1))
    spec = ses.SealSpec(
        es_id="host-sm2",
        name="合同专用章",
        holder_certs=[pki.holder_cert],
        created=START,
        valid_start=START,
        valid_end=END,
        picture=PNG,
    )
    der = ses.build_seal(spec, maker_cert=pki.maker_cert, maker_sign=pki.maker.sign)
    row = StoredSesSeal(
        "sm2", 1, START, "certificate imported", hashlib.sha256(der).hexdigest(), START, END, der, destroyed
    )
    return row, pki.holder_cert


def test_gbt38540_stored_ses_seal_usable_inside_its_validity() -> None:
    row, holder = _stored()
    assert check_usable(row, seal_id="sm2", holder_der=holder, now=START + dt.timedelta(days=10)) == row.der
    face = stored_face(row.der)
    assert (face.name, face.holder_der, face.valid_start, face.valid_end) == (
        "合同专用章",
        holder,
        START,
        END,
    )
    assert face.picture_sha256 == hashlib.sha256(PNG).hexdigest()


@pytest.mark.parametrize(
    ("case", "reason", "text"),
    [
        ("missing", "ses_seal_missing", "has no SES_Seal in the registry"),
        ("other holder", "ses_seal_stale", "property.certList"),
        ("destroyed", "seal_destroyed", "destroyed"),
        (
            "too early",
            "ses_seal_not_yet_valid",
            "SES_Seal.eSealInfo.property.validStart is 2026-01-01T00:00:00+00:00",
        ),
        (
            "too late",
            "ses_seal_expired",
            "SES_Seal.eSealInfo.property.validEnd was 2027-01-01T00:00:00+00:00",
        ),
    ],
)
def test_gbt38540_signer_refuses_a_stored_ses_seal_naming_the_field(
    case: str, reason: str, text: str
) -> None:
    row, holder = _stored(destroyed="2026-06-01T00:00:00+00:00" if case == "destroyed" else "")
    now = {"too early": START - dt.timedelta(seconds=1), "too late": END + dt.timedelta(seconds=1)}.get(
        case, START + dt.timedelta(days=1)
    )
    with pytest.raises(PreconditionFailed) as refused:
        check_usable(
            None if case == "missing" else row,
            seal_id="sm2",
            holder_der=b"another certificate" if case == "other holder" else holder,
            now=now,
        )
    assert refused.value.reason == reason and text in refused.value.message


# ---------------------------------------------------------------------------- [seal_maker]

SM2_SEAL = 'algorithm = "sm2"\nformat = "gbt38540"\nskf_application = "SEAL"'


def _load(tmp_path: Path, fx: SealFixtures, maker: str, *, skf: bool = True) -> object:
    lib = tmp_path / "libskf.so"
    lib.write_bytes(b"")
    for name in ("maker.pem", "maker.key", "maker.pin"):
        (tmp_path / name).write_text("x")
    text = fx.config.read_text(encoding="utf-8")
    text = re.sub(r'^(id = "contract"\ntype = "contract")$', "\\1\n" + SM2_SEAL, text, count=1, flags=re.M)
    text += (f'\n[skf]\nlibrary = "{lib}"\n' if skf else "") + "\n[seal_maker]\n" + maker + "\n"
    path = tmp_path / "seald.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


TOKEN_KEYS = "\n".join(
    (
        'certificate = "maker.pem"',
        'token_serial = "MAKER01"',
        'application = "MAKER"',
        'container = "maker"',
        'pin_file = "maker.pin"',
    )
)


def test_gbt38540_seal_maker_on_a_token_loads(seal_fixtures: SealFixtures, tmp_path: Path) -> None:
    config = _load(tmp_path, seal_fixtures, TOKEN_KEYS)
    maker = config.seal_maker  # type: ignore[attr-defined]
    assert maker.key is None and maker.token.device_serial == "MAKER01" and maker.token.container == "maker"
    pem = _load(tmp_path, seal_fixtures, 'certificate = "maker.pem"\nkey = "maker.key"')
    assert pem.seal_maker.key == tmp_path / "maker.key" and pem.seal_maker.token is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("maker", "message"),
    [
        (TOKEN_KEYS + '\nkey = "maker.key"', r"has both 'key' \(a PEM file\) and token keys"),
        ('certificate = "maker.pem"', r"\[seal_maker\] has no key; add token_serial, application, container"),
        (TOKEN_KEYS + '\nslot = "1"', r"unknown key 'seal_maker.slot'; remove it or fix its spelling"),
        (TOKEN_KEYS.replace('container = "maker"\n', ""), r"missing key 'seal_maker.container'"),
        (
            TOKEN_KEYS.replace("maker.pin", "nowhere.pin"),
            r"'seal_maker.pin_file' = nowhere.pin: no such file",
        ),
    ],
)
def test_gbt38540_seal_maker_config_refused_naming_the_key(
    seal_fixtures: SealFixtures, tmp_path: Path, maker: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, seal_fixtures, maker)


def test_gbt38540_seal_maker_pin_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    pin = tmp_path / "maker.pin"
    pin.write_text("13572468\n")
    token = SealMakerTokenConfig(
        device_serial="MAKER01", application="MAKER", container="maker", pin_file=pin
    )
    config = SealMakerConfig(certificate=tmp_path / "maker.pem", token=token)
    pin.chmod(0o644)
    with pytest.raises(PreconditionFailed) as refused:
        maker_key(config, cast(SkfLibrary, object()))
    assert refused.value.reason == "seal_maker_unavailable" and "chmod 600" in refused.value.message
    assert "13572468" not in refused.value.message
    pin.chmod(0o600)
    assert isinstance(maker_key(config, cast(SkfLibrary, object())), SkfMakerKey)
