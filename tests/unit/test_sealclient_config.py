"""Client config: keys, relative paths, unknown keys, precedence flags > env > home."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealclient.config import CONFIG_ENV, ConfigOverrides, resolve_config
from sealclient.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


FULL = 'server = "{server}:7443"\nca = "ca.pem"\ncert = "certs/me.pem"\nkey = "/abs/me.key"\n'


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "etc" / "sealctl.toml", FULL.format(server="file"))
    config = resolve_config(ConfigOverrides(config=cfg), environ={}, home=tmp_path)
    assert config.server == "file:7443"
    assert config.ca == tmp_path / "etc" / "ca.pem"
    assert config.cert == tmp_path / "etc" / "certs" / "me.pem"
    assert config.key == Path("/abs/me.key")


def test_unknown_key_names_file_key_and_fix(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", FULL.format(server="s") + 'pin = "123456"\n')
    with pytest.raises(ConfigError) as caught:
        resolve_config(ConfigOverrides(config=cfg), environ={}, home=tmp_path)
    message = caught.value.message
    assert str(cfg) in message and "'pin'" in message and "remove or rename" in message
    assert "123456" not in message


def test_wrong_value_type_is_an_error(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "server = 7443\n")
    with pytest.raises(ConfigError, match="'server' must be a non-empty string"):
        resolve_config(ConfigOverrides(config=cfg), environ={}, home=tmp_path)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "server = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve_config(ConfigOverrides(config=cfg), environ={}, home=tmp_path)


def test_home_config_is_the_default(tmp_path: Path) -> None:
    write(tmp_path / ".config" / "sealctl" / "config.toml", FULL.format(server="home"))
    config = resolve_config(ConfigOverrides(), environ={}, home=tmp_path)
    assert config.server == "home:7443"


def test_env_config_beats_home_config(tmp_path: Path) -> None:
    write(tmp_path / ".config" / "sealctl" / "config.toml", FULL.format(server="home"))
    env_cfg = write(tmp_path / "env.toml", FULL.format(server="env"))
    config = resolve_config(ConfigOverrides(), environ={CONFIG_ENV: str(env_cfg)}, home=tmp_path)
    assert config.server == "env:7443"


def test_config_flag_beats_env(tmp_path: Path) -> None:
    env_cfg = write(tmp_path / "env.toml", FULL.format(server="env"))
    flag_cfg = write(tmp_path / "flag.toml", FULL.format(server="flag"))
    config = resolve_config(
        ConfigOverrides(config=flag_cfg), environ={CONFIG_ENV: str(env_cfg)}, home=tmp_path
    )
    assert config.server == "flag:7443"


def test_value_flags_beat_every_file(tmp_path: Path) -> None:
    env_cfg = write(tmp_path / "env.toml", FULL.format(server="env"))
    config = resolve_config(
        ConfigOverrides(server="flag:1", key=Path("k.pem")),
        environ={CONFIG_ENV: str(env_cfg)},
        home=tmp_path,
    )
    assert config.server == "flag:1"
    assert config.key == Path("k.pem")
    assert config.ca == tmp_path / "ca.pem"  # the rest still from the env file


def test_flags_alone_suffice_without_any_file(tmp_path: Path) -> None:
    config = resolve_config(
        ConfigOverrides(server="s:1", ca=Path("a"), cert=Path("b"), key=Path("c")),
        environ={},
        home=tmp_path,
    )
    assert (config.server, config.ca, config.cert, config.key) == (
        "s:1",
        Path("a"),
        Path("b"),
        Path("c"),
    )


def test_missing_values_are_named_with_their_flags(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_config(ConfigOverrides(server="s:1"), environ={}, home=tmp_path)
    assert "ca, cert, key" in caught.value.message
    assert "--ca --cert --key" in caught.value.message


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config(
            ConfigOverrides(), environ={CONFIG_ENV: str(tmp_path / "no.toml")}, home=tmp_path
        )
