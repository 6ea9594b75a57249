"""[[seal]] shape, holder_name and code_number (SEAL-RULES R01): strict, and checked
against the seal type (round organisation seals, oval only for finance, square people)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fixture_layout import SealFixtures

from seald.config import load_config
from seald.domain.errors import ConfigError

CONTRACT_SIZE = r'^(id = "contract"\n(?:.*\n)*?size_mm = [\d.]+)$'
CONTRACT_TYPE = r'^(id = "contract"\n)type = "contract"$'


def _load(tmp_path: Path, fx: SealFixtures, edits: list[tuple[str, str]]) -> object:
    text = fx.config.read_text(encoding="utf-8")
    for pattern, new in edits:
        assert re.search(pattern, text, flags=re.M), pattern
        text = re.sub(pattern, new, text, count=1, flags=re.M)
    path = tmp_path / "seald.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_r01_shape_defaults_to_round_for_organisation_seals(seal_fixtures: SealFixtures) -> None:
    config = load_config(seal_fixtures.config)
    assert {s.shape for s in config.seals.values()} == {"round"}
    assert {s.holder_name for s in config.seals.values()} == {""}


def test_r01_oval_finance_seal_with_code_number_loads(seal_fixtures: SealFixtures, tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        seal_fixtures,
        [
            (CONTRACT_TYPE, '\\1type = "finance"'),
            (CONTRACT_SIZE, '\\1\nshape = "oval"\ncode_number = "1101080012345"'),
        ],
    )
    seal = config.seals["contract"]  # type: ignore[attr-defined]
    assert (seal.shape, seal.code_number) == ("oval", "1101080012345")


def test_r01_personal_seal_is_square_with_its_holder(seal_fixtures: SealFixtures, tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        seal_fixtures,
        [(CONTRACT_TYPE, '\\1type = "personal"'), (CONTRACT_SIZE, '\\1\nholder_name = "张 伟"')],
    )
    seal = config.seals["contract"]  # type: ignore[attr-defined]
    assert (seal.shape, seal.holder_name) == ("square", "张伟")


@pytest.mark.parametrize(
    "seal_type,extra,named",
    [
        ("contract", 'shape = "oval"', "shape"),  # oval is for finance seals only
        ("official", 'shape = "square"', "shape"),
        ("finance", 'shape = "ellipse"', "shape"),  # not a shape at all
        ("personal", 'holder_name = "张伟"\nshape = "round"', "shape"),
        ("personal", "", "holder_name"),  # a square seal needs its holder's name
        ("personal", 'holder_name = "张"', "holder_name"),
        ("contract", 'holder_name = "张伟"', "holder_name"),  # only for square seals
        ("finance", 'code_number = "12AB"', "code_number"),
        ("finance", 'code_number = "１２３"', "code_number"),  # full-width digits
        ("personal", 'holder_name = "张伟"\ncode_number = "123"', "code_number"),
        ("finance", "shape = 3", "shape"),
    ],
)
def test_r01_bad_seal_image_keys_name_the_key_and_the_fix(
    seal_fixtures: SealFixtures, tmp_path: Path, seal_type: str, extra: str, named: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(
            tmp_path,
            seal_fixtures,
            [(CONTRACT_TYPE, f'\\1type = "{seal_type}"'), (CONTRACT_SIZE, f"\\1\n{extra}")],
        )
    message = str(refused.value)
    assert f"seal[contract].{named}" in message and "seald.toml" in message, message
