"""The test harness's config builder (seald_testing.config) writes what seald reads.

The daemon fixtures write every test daemon's TOML through it, so a builder that lost or
changed a key would weaken every daemon test at once: the fixtures' config must come
back from a render unchanged, and an edit of a seal or principal that does not exist
must fail loudly instead of leaving the config as it was.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
from fixture_layout import SealFixtures

from seald.config import load_config
from seald_testing.config import DaemonConfig, chain
from seald_testing.daemon import SealDaemon


def test_rendered_fixture_config_loads_to_the_same_config(
    seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    rendered = tmp_path / "seald.toml"
    rendered.write_text(DaemonConfig.from_file(seal_fixtures.config).render(), encoding="utf-8")
    # Every key and value (one equal to seald's default too), then what seald makes of it.
    with seal_fixtures.config.open("rb") as source, rendered.open("rb") as copy:
        assert tomllib.load(copy) == tomllib.load(source)
    original = load_config(seal_fixtures.config)
    assert dataclasses.replace(load_config(rendered), path=original.path) == original


def test_edits_land_where_seald_reads_them(seal_fixtures: SealFixtures, tmp_path: Path) -> None:
    config = DaemonConfig.from_file(seal_fixtures.config)
    chain(
        lambda c: c.set_seal("contract", level="B-T", hours="09:00-17:00"),
        lambda c: c.set("trust", tsa_url="http://127.0.0.1:9/tsa"),
        lambda c: c.set("requests", max_documents_per_request=7),
        lambda c: c.add_principal(
            "sun.li", roles=["custodian"], seals=["contract"], certificates=["ab" * 32]
        ),
        lambda c: c.metrics(9),
    )(config)
    rendered = tmp_path / "seald.toml"
    rendered.write_text(config.render(), encoding="utf-8")
    loaded = load_config(rendered)
    before = load_config(seal_fixtures.config)
    assert loaded.seals["contract"].level == "B-T"
    assert loaded.seals["contract"].hours != before.seals["contract"].hours
    assert loaded.seals["official"] == before.seals["official"]
    assert loaded.trust.tsa_url == "http://127.0.0.1:9/tsa"
    assert loaded.requests.max_documents_per_request == 7
    assert loaded.principals["sun.li"].certificates == {"ab" * 32}
    assert loaded.metrics.listen == "127.0.0.1:9"


def test_unknown_seal_or_principal_is_an_error_naming_the_known_ones(seal_fixtures: SealFixtures) -> None:
    config = DaemonConfig.from_file(seal_fixtures.config)
    with pytest.raises(KeyError, match="contract") as missing:
        config.set_seal("contrakt", level="B-T")
    assert "contrakt" in str(missing.value)
    with pytest.raises(KeyError, match=r"zhang\.wei"):
        config.set_principal("nobody", roles=["admin"])
    with pytest.raises(AssertionError, match="exists already"):
        config.add_principal("zhang.wei", roles=["admin"], seals=[], certificates=[])


def test_daemon_config_file_has_its_own_port_and_the_edit(fresh_seal_fixtures: SealFixtures) -> None:
    d = SealDaemon(fresh_seal_fixtures, lambda c: c.set("requests", max_documents_per_request=3))
    written = load_config(d.config_path)
    assert written.server.listen == d.target != fresh_seal_fixtures.listen
    assert written.requests.max_documents_per_request == 3
