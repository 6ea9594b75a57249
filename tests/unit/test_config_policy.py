"""Issue 17: [seal.policy] chains are read strictly and checked at load, naming the seal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fixture_layout import SealFixtures

from seald.config import load_config
from seald.domain.chains import Group, MOf, Step
from seald.domain.errors import ConfigError

EXTRA_PRINCIPALS = """
[[principal]]
name = "dept.head"
display_name = "部门经理"
roles = ["approver"]
seals = ["contract"]
groups = ["department_manager"]
certificates = ["{a}"]

[[principal]]
name = "legal.counsel"
display_name = "法务"
roles = ["approver"]
seals = ["contract"]
groups = ["legal"]
certificates = ["{b}"]
""".format(a="a1" * 32, b="b2" * 32)

THREE_STEP = """
[seal.policy]
sequence = [
  { step = "department", group = "department_manager" },
  { step = "legal", group = "legal", when = { amount_over = "100000", currency = "CNY" } },
  { step = "gm", any_of = ["general_manager", { m_of = { m = 2, of = ["legal", "department_manager"] } }] },
]
"""


def with_policy(tmp_path: Path, fx: SealFixtures, policy: str, extra: str = EXTRA_PRINCIPALS) -> Path:
    text = fx.config.read_text(encoding="utf-8")
    # The contract seal is the last [[seal]]: its table ends where the first [[principal]] starts.
    head, sep, tail = text.partition("\n[[principal]]")
    assert sep, "fixture config has no [[principal]]"
    path = tmp_path / "seald.toml"
    path.write_text(head + "\n" + policy + "\n" + extra + sep + tail, encoding="utf-8")
    return path


def test_chain_config_three_steps_load_and_fill_the_groups(
    seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    config = load_config(with_policy(tmp_path, seal_fixtures, THREE_STEP))
    chain = config.seals["contract"].policy
    assert chain is not None and [s.name for s in chain.steps] == ["department", "legal", "gm"]
    assert chain.steps[1].when is not None and str(chain.steps[1].when.amount_over) == "100000 CNY"
    policy = config.policy_for("contract")
    assert policy.chain is not None
    first = policy.chain.steps[0].expr
    assert isinstance(first, Group) and first.members == {"dept.head"}
    assert policy.eligible == {"dept.head", "legal.counsel", "li.na", "wang.fang"}
    assert config.seals["official"].policy is None  # untouched seals keep M-of-N


def test_chain_config_single_expression_is_a_one_step_chain(
    seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    policy = '[seal.policy]\nm_of = { m = 2, of = ["general_manager", "legal", "department_manager"] }\n'
    config = load_config(with_policy(tmp_path, seal_fixtures, policy))
    chain = config.seals["contract"].policy
    assert chain is not None and chain.steps == (Step("approval", chain.steps[0].expr),)
    assert isinstance(chain.steps[0].expr, MOf)


REQUESTER_ALONE = (
    EXTRA_PRINCIPALS.replace(
        'roles = ["approver"]\nseals = ["contract"]\ngroups = ["legal"]',
        'roles = ["approver"]\nseals = ["contract"]\ngroups = ["solo"]',
    )
    + """
[[principal]]
name = "solo.requester"
display_name = "x"
roles = ["requester", "approver"]
seals = ["contract"]
groups = ["only_me"]
certificates = ["{c}"]
""".format(c="c3" * 32)
)


STEP_A = '{{ step = "a", {} }}'
STEP_B = '{ step = "b", group = "general_manager" }'


@pytest.mark.parametrize(
    ("policy", "extra", "expected"),
    [
        (
            "[seal.policy]\nsequence = [" + STEP_A.format('group = "nobody"') + ", " + STEP_B + "]",
            EXTRA_PRINCIPALS,
            r"seal\[contract\]\.policy: group 'nobody' has no approver",
        ),
        (
            "[seal.policy]\nsequence = [" + STEP_A.format("all_of = []") + ", " + STEP_B + "]",
            EXTRA_PRINCIPALS,
            r"seal\[contract\]\.policy\.sequence\[0\]\.all_of' is an empty group",
        ),
        (
            "[seal.policy]\nsequence = [" + STEP_A.format('group = "only_me"') + ", " + STEP_B + "]",
            REQUESTER_ALONE,
            r"seal\[contract\]\.policy: step 'a' cannot be met when solo\.requester is the requester",
        ),
        (
            '[seal.policy]\nm_of = { m = 3, of = ["general_manager", "legal"] }',
            EXTRA_PRINCIPALS,
            r"seal\[contract\]\.policy: m_of needs 1 <= m <= 2",
        ),
        (
            '[seal.policy]\ngroup = "general_manager"',
            EXTRA_PRINCIPALS,
            r"seal\[contract\]\.policy: the chain can complete with 1 approval",
        ),
        (
            '[seal.policy]\nsequence = [{ step = "a", group = "legal", colour = "red" }]',
            EXTRA_PRINCIPALS,
            r"unknown key 'seal\[contract\]\.policy\.sequence\[0\]\.colour'",
        ),
        (
            '[seal.policy]\nsequence = [{ step = "a", group = "legal", any_of = ["x"] }]',
            EXTRA_PRINCIPALS,
            r"exactly one of group, all_of, any_of, m_of \(has group, any_of\)",
        ),
        (
            "[seal.policy]\nsequence = ["
            + STEP_A.format('group = "legal", when = { amount_over = "1e", currency = "CNY" }')
            + "]",
            EXTRA_PRINCIPALS,
            r"amount_over.*not a decimal",
        ),
        (
            'approver_groups = ["legal"]\n[seal.policy]\ngroup = "legal"',
            EXTRA_PRINCIPALS,
            r"policy' replaces approver_groups",
        ),
    ],
)
def test_chain_config_refuses_to_start(
    seal_fixtures: SealFixtures, tmp_path: Path, policy: str, extra: str, expected: str
) -> None:
    path = with_policy(tmp_path, seal_fixtures, policy, extra)
    with pytest.raises(ConfigError) as bad:
        load_config(path)
    assert str(path) in str(bad.value)
    assert re.search(expected, str(bad.value)), str(bad.value)
