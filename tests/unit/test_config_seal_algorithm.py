"""[[seal]] algorithm / format (issue 19): strict choices, naming the key and what to use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fixture_layout import SealFixtures

from seald.config import PKCS11_SM2_PROFILES, load_config
from seald.domain.errors import ConfigError
from seald.tokens.pkcs11_sm2 import KNOWN_PROFILES

CONTRACT_TYPE = r'^(id = "contract"\ntype = "contract")$'


def _load(tmp_path: Path, fx: SealFixtures, extra: str) -> object:
    text = fx.config.read_text(encoding="utf-8")
    assert re.search(CONTRACT_TYPE, text, flags=re.M)
    text = re.sub(CONTRACT_TYPE, "\\1\n" + extra, text, count=1, flags=re.M)
    path = tmp_path / "seald.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_ecdsa_algorithm_defaults_to_rsa_pades(seal_fixtures: SealFixtures) -> None:
    config = load_config(seal_fixtures.config)
    assert {(s.algorithm, s.format) for s in config.seals.values()} == {("rsa", "pades")}


def test_ecdsa_p256_algorithm_loads(seal_fixtures: SealFixtures, tmp_path: Path) -> None:
    config = _load(tmp_path, seal_fixtures, 'algorithm = "ecdsa-p256"')
    assert config.seals["contract"].algorithm == "ecdsa-p256"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            'algorithm = "sm2"',
            r"'seal\[contract\]\.algorithm' = 'sm2' with format = 'pades': SM2 seals sign in",
        ),
        ('format = "gbt38540"', r"algorithm' = 'rsa' with format = 'gbt38540'"),
        ('algorithm = "dsa"', r"'seal\[contract\]\.algorithm' = 'dsa'; use one of rsa, ecdsa-p256, sm2"),
        (
            'algorithm = "sm2"\nformat = "gbt38540"',
            r"seal\(s\) contract use algorithm = \"sm2\": add \[skf\] library",
        ),
        # issue 19: an SM2 key on a PKCS#11 token names its token model's vendor profile
        (
            'algorithm = "sm2"\nformat = "gbt38540"\npkcs11_sm2_profile = "sansec-hsm"',
            r"seal\(s\) contract use algorithm = \"sm2\": add \[seal_maker\] certificate / key",
        ),
        (
            'algorithm = "sm2"\nformat = "gbt38540"\npkcs11_sm2_profile = "acme-hsm"',
            r"'seal\[contract\]\.pkcs11_sm2_profile' = 'acme-hsm'; use one of sansec-hsm, ",
        ),
        (
            'pkcs11_sm2_profile = "sansec-hsm"',
            r"'seal\[contract\]\.pkcs11_sm2_profile' = 'sansec-hsm' with algorithm = 'rsa'",
        ),
        # B-T is a GB/T 38540 timeStamp; long-term validation and DocMDP are PAdES notions
        ('algorithm = "sm2"\nformat = "gbt38540"\nlevel = "B-LT"', r"B-LT, B-LTA and certify are PAdES only"),
        (
            'algorithm = "sm2"\nformat = "gbt38540"\ncertify = "no_changes"',
            r"certify = 'no_changes': a gbt38540 seal uses level",
        ),
    ],
)
def test_sm2_algorithm_and_format_must_fit_together_refused_by_name(
    seal_fixtures: SealFixtures, tmp_path: Path, extra: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, seal_fixtures, extra)


def test_sm2_pkcs11_profile_names_in_config_are_the_known_profiles() -> None:
    # the config lists the names without importing token code; they must stay the same set
    assert set(PKCS11_SM2_PROFILES) == set(KNOWN_PROFILES)
