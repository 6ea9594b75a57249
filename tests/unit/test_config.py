"""seald.toml is read strictly: every problem names the file, the key and the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fixture_layout import SealFixtures

from seald.config import load_config
from seald.domain.errors import ConfigError


def write(tmp_path: Path, fx: SealFixtures, edit: str, new: str) -> Path:
    text = fx.config.read_text(encoding="utf-8")
    assert re.search(edit, text, flags=re.M), edit
    path = tmp_path / "seald.toml"
    path.write_text(re.sub(edit, new, text, count=1, flags=re.M), encoding="utf-8")
    return path


def test_the_fixture_config_loads(seal_fixtures: SealFixtures) -> None:
    config = load_config(seal_fixtures.config)
    assert set(config.seals) == {"official", "contract"}
    assert config.principal_for_fingerprint(seal_fixtures.principals["li.na-laptop"].fingerprint_sha256)
    assert config.principal_for_fingerprint("0" * 64) is None


@pytest.mark.parametrize(
    ("edit", "new", "expected"),
    [
        (r"^host_name = .*$", 'host_name = "h"\nhots_name = "typo"', r"unknown key 'server\.hots_name'"),
        (r"^required_approvals = 2$", "required_approvals = 1", r"required_approvals.*at least 2"),
        (r'^type = "contract"$', 'type = "stamp"', r"seal\[contract\]\.type.*use one of"),
        (r'^roles = \["requester"\]$', 'roles = ["boss"]', r"principal\[zhang\.wei\]\.roles.*'boss'"),
        (r"^certificates = \[\"[0-9a-f]+\"\]$", 'certificates = ["abc"]', r"certificates.*SHA-256"),
        (r"^client_ca = .*$", 'client_ca = "/nonexistent/ca.pem"', r"server\.client_ca.*no such file"),
        (r"^listen = .*\n", "", r"missing key 'server\.listen'"),
    ],
)
def test_bad_config_names_file_key_and_fix(
    seal_fixtures: SealFixtures, tmp_path: Path, edit: str, new: str, expected: str
) -> None:
    path = write(tmp_path, seal_fixtures, edit, new)
    with pytest.raises(ConfigError) as bad:
        load_config(path)
    assert str(path) in str(bad.value)
    assert re.search(expected, str(bad.value)), str(bad.value)


def test_a_certificate_may_identify_only_one_principal(seal_fixtures: SealFixtures, tmp_path: Path) -> None:
    li = seal_fixtures.principals["li.na"].fingerprint_sha256
    path = write(tmp_path, seal_fixtures, r'^certificates = \["[0-9a-f]+"\]$', f'certificates = ["{li}"]')
    with pytest.raises(ConfigError, match="exactly one principal"):
        load_config(path)
