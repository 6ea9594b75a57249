"""Issue 6 config keys: per-seal PAdES level and certification, [trust] TSA and roots
(strict: bad values name the file, the key and the fix)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fixture_layout import SealFixtures

from seald.config import load_config
from seald.domain.errors import ConfigError


def _write(tmp_path: Path, fx: SealFixtures, edits: list[tuple[str, str]]) -> Path:
    text = fx.config.read_text(encoding="utf-8")
    for pattern, new in edits:
        assert re.search(pattern, text, flags=re.M), pattern
        text = re.sub(pattern, new, text, count=1, flags=re.M)
    path = tmp_path / "seald.toml"
    path.write_text(text, encoding="utf-8")
    return path


CONTRACT_SIZE = r'^(id = "contract"\n(?:.*\n)*?size_mm = [\d.]+)$'


def test_r14_level_defaults_to_b_b_without_tsa(seal_fixtures: SealFixtures) -> None:
    config = load_config(seal_fixtures.config)
    assert {s.level for s in config.seals.values()} == {"B-B"}
    assert {s.certify for s in config.seals.values()} == {"none"}
    assert config.trust.tsa_url == "" and config.trust.signing_roots == ()


def test_r14_level_and_trust_keys_load(seal_fixtures: SealFixtures, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        seal_fixtures,
        [
            (
                r"^(\[trust\])$",
                f'\\1\ntsa_url = "http://127.0.0.1:8080/tsa"\n'
                f'signing_roots = ["{seal_fixtures.seal_ca}"]\nfetch_revocation = false',
            ),
            (CONTRACT_SIZE, '\\1\nlevel = "B-LTA"\ncertify = "form_filling"'),
        ],
    )
    config = load_config(path)
    assert config.seals["contract"].level == "B-LTA"
    assert config.seals["contract"].certify == "form_filling"
    assert config.trust.tsa_url == "http://127.0.0.1:8080/tsa"
    assert config.trust.signing_roots == (seal_fixtures.seal_ca,)
    assert config.trust.fetch_revocation is False


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        ([(CONTRACT_SIZE, '\\1\nlevel = "B-T"')], r"needs a timestamp authority.*trust\.tsa_url"),
        ([(CONTRACT_SIZE, '\\1\nlevel = "B-X"')], r"seal\[contract\]\.level.*use one of B-B"),
        ([(CONTRACT_SIZE, '\\1\ncertify = "yes"')], r"seal\[contract\]\.certify.*no_changes"),
        ([(r"^(\[trust\])$", '\\1\ntsa_url = "ftp://x/tsa"')], r"trust\.tsa_url.*http://"),
        ([(r"^(\[trust\])$", '\\1\nsigning_roots = ["/nonexistent/ca.pem"]')], r"signing_roots"),
    ],
)
def test_r14_bad_level_settings_are_refused(
    seal_fixtures: SealFixtures, tmp_path: Path, edits: list[tuple[str, str]], expected: str
) -> None:
    path = _write(tmp_path, seal_fixtures, edits)
    with pytest.raises(ConfigError) as bad:
        load_config(path)
    assert str(path) in str(bad.value)
    assert re.search(expected, str(bad.value)), str(bad.value)
