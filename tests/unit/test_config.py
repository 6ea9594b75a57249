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
        (r"^host_name = .*$", 'host_name = "h"\nseal_workers = -1', r"server\.seal_workers.*0 \(one worker"),
        (r"^required_approvals = 2$", "required_approvals = 2\nmax_documents_per_request = 0", r"\.\. 20000"),
        (r"^required_approvals = 2$", "required_approvals = 2\nmax_documents_per_request = 20001", "split"),
        (r"^host_name = .*$", 'host_name = "h"\nseal_workers = "two"', r"seal_workers.*count of sealing"),
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


def test_volume_seal_workers_is_configuration(seal_fixtures: SealFixtures, tmp_path: Path) -> None:
    assert load_config(seal_fixtures.config).server.seal_workers == 0  # default: one per core
    path = write(tmp_path, seal_fixtures, r"^host_name = .*$", 'host_name = "h"\nseal_workers = 1')
    assert load_config(path).server.seal_workers == 1


def test_a_certificate_may_identify_only_one_principal(seal_fixtures: SealFixtures, tmp_path: Path) -> None:
    li = seal_fixtures.principals["li.na"].fingerprint_sha256
    path = write(tmp_path, seal_fixtures, r'^certificates = \["[0-9a-f]+"\]$', f'certificates = ["{li}"]')
    with pytest.raises(ConfigError, match="exactly one principal"):
        load_config(path)


# --- [audit] (issue 5): checkpoint interval, audit key directory, checkpoint timestamps ---


def with_audit(tmp_path: Path, fx: SealFixtures, body: str) -> Path:
    return write(tmp_path, fx, r"^\[trust\]$", f"[audit]\n{body}\n\n[trust]")


def test_r10_audit_defaults_without_an_audit_table(seal_fixtures: SealFixtures) -> None:
    config = load_config(seal_fixtures.config)
    assert config.audit.checkpoint_interval_s == 300.0
    assert config.audit_dir == config.store.state_dir / "audit"
    assert not config.audit.timestamp_checkpoints and config.audit.tsa_url == ""


def test_r10_audit_interval_and_key_dir_are_read(seal_fixtures: SealFixtures, tmp_path: Path) -> None:
    path = with_audit(tmp_path, seal_fixtures, 'checkpoint_interval_seconds = 60\nkey_dir = "keys/audit"')
    config = load_config(path)
    assert config.audit.checkpoint_interval_s == 60.0
    assert config.audit_dir == tmp_path / "keys" / "audit"  # relative to the config file


def test_r10_audit_timestamps_use_trust_tsa_url_by_default(
    seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    roots = f'tsa_roots = ["{seal_fixtures.tls_ca}"]'
    path = with_audit(tmp_path, seal_fixtures, f"timestamp_checkpoints = true\n{roots}")
    text = path.read_text(encoding="utf-8").replace("[trust]\n", '[trust]\ntsa_url = "http://127.0.0.1:9/tsa"\n')
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert config.audit.timestamp_checkpoints
    assert config.audit.tsa_url == "http://127.0.0.1:9/tsa"
    assert config.audit.tsa_roots == (seal_fixtures.tls_ca,)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("checkpoint_intervall = 60", r"unknown key 'audit\.checkpoint_intervall'"),
        ("checkpoint_interval_seconds = 0", r"'audit\.checkpoint_interval_seconds' = 0; use 1 to 86400"),
        ("checkpoint_interval_seconds = 90000", r"checkpoint_interval_seconds' = 90000; use 1 to 86400"),
        ('checkpoint_interval_seconds = "5m"', r"'audit\.checkpoint_interval_seconds' = '5m' is not valid"),
        ('key_dir = ""', r"'audit\.key_dir' is empty"),
        ("timestamp_checkpoints = 1", r"'audit\.timestamp_checkpoints' = 1 is not valid; it must be true or"),
        ("timestamp_checkpoints = true", r"needs a timestamp authority; set 'audit\.tsa_url'"),
        (
            'timestamp_checkpoints = true\ntsa_url = "http://127.0.0.1:9/tsa"',
            r"needs 'audit\.tsa_roots'",
        ),
        (
            'timestamp_checkpoints = true\ntsa_url = "ftp://tsa"\ntsa_roots = ["/etc/hostname"]',
            r"'audit\.tsa_url' must start with http",
        ),
        ('tsa_roots = ["/nonexistent/tsa-root.pem"]', r"'audit\.tsa_roots'.*does not exist"),
        ('tsa_url = "http://127.0.0.1:9/tsa"', r"timestamp_checkpoints' is not true"),
    ],
)
def test_r10_bad_audit_config_names_file_key_and_fix(
    seal_fixtures: SealFixtures, tmp_path: Path, body: str, expected: str
) -> None:
    path = with_audit(tmp_path, seal_fixtures, body)
    with pytest.raises(ConfigError) as bad:
        load_config(path)
    assert str(path) in str(bad.value)
    assert re.search(expected, str(bad.value)), str(bad.value)


def test_r10_audit_key_dir_that_is_a_file_is_refused(seal_fixtures: SealFixtures, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    path = with_audit(tmp_path, seal_fixtures, 'key_dir = "afile"')
    with pytest.raises(ConfigError, match=r"'audit\.key_dir' = .*afile is not a directory"):
        load_config(path)


# --- issue 14: names and categories meet the one text policy ---------------------------


@pytest.mark.parametrize(
    ("edit", "new", "expected"),
    [
        (r'^display_name = "张伟"$', 'display_name = "张伟\\\\u202e"', r"wei\]\.display_name.*U\+202E"),
        (r'^name = "li\.na"$', 'name = "li.na\\\\u001b"', r"principal\.name.*U\+001B"),
        (r'^categories = \["contract"\]$', 'categories = ["contract\\\\u0085"]', r"categories.*U\+0085"),
    ],
)
def test_r04_names_and_categories_with_control_characters_are_refused(
    seal_fixtures: SealFixtures, tmp_path: Path, edit: str, new: str, expected: str
) -> None:
    path = write(tmp_path, seal_fixtures, edit, new)
    with pytest.raises(ConfigError) as bad:
        load_config(path)
    assert str(path) in str(bad.value) and "visible text only" in str(bad.value)
    assert re.search(expected, str(bad.value)), str(bad.value)
