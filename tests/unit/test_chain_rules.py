"""Issue 17: ordered and conditional approval chains, as pure rules (seald.domain.chains)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from seald.domain import lifecycle
from seald.domain.chains import (
    AllOf,
    AnyOf,
    Chain,
    Condition,
    CountedApproval,
    Group,
    MOf,
    RequestFacts,
    Step,
    When,
    chain_from_data,
    chain_to_data,
    check_chain,
    evaluate,
    meets,
    parse_money,
)
from seald.domain.digest import DigestDocument, DigestPlacement, canonical_approval_subject
from seald.domain.errors import AlreadyDone, ConfigError, InvalidInput, PermissionDenied, PreconditionFailed
from seald.domain.model import Document, Placement, Principal, RequestState, Role, Seal, SealType
from seald.domain.policy import build_policy

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
CNY_100K = parse_money("100000", "CNY")
DEPT = Group("department_manager", frozenset({"dept.a", "dept.b"}))
LEGAL = Group("legal", frozenset({"legal.a"}))
GM = Group("general_manager", frozenset({"gm.a", "gm.b"}))
THREE_STEP = Chain(
    (
        Step("department", DEPT),
        Step("legal", LEGAL, when=Condition(amount_over=CNY_100K)),
        Step("gm", GM),
    )
)


def ap(identity: str, minute: int, approver: str = "") -> CountedApproval:
    return CountedApproval(identity, approver or identity, T0 + timedelta(minutes=minute))


def facts(amount: str | None = None, currency: str = "CNY", category: str = "contract") -> RequestFacts:
    return RequestFacts(category, parse_money(amount, currency) if amount is not None else None)


def test_chain_three_steps_complete_in_order_with_the_legal_step_over_100000() -> None:
    big = facts("250000.00")
    s = evaluate(THREE_STEP, big, "req", [ap("dept.a", 1)])
    assert (s.current, [x.state for x in s.steps]) == ("legal", ["done", "current", "waiting"])
    assert s.steps[1].needed_from == ("legal.a",)
    s = evaluate(THREE_STEP, big, "req", [ap("dept.a", 1), ap("legal.a", 2), ap("gm.a", 3)])
    assert s.complete and s.current is None
    assert [x.counted for x in s.steps] == [("dept.a",), ("legal.a",), ("gm.a",)]


def test_chain_when_amount_not_over_skips_the_legal_step() -> None:
    s = evaluate(THREE_STEP, facts("100000"), "req", [ap("dept.a", 1), ap("gm.b", 2)])
    assert s.complete and [x.state for x in s.steps] == ["done", "skipped", "done"]


@pytest.mark.parametrize("declared", [None, ("5", "USD")])
def test_chain_unknown_amount_or_other_currency_keeps_the_step_fail_closed(
    declared: tuple[str, str] | None,
) -> None:
    f = facts(*declared) if declared else facts()
    s = evaluate(THREE_STEP, f, "req", [ap("dept.a", 1), ap("gm.b", 2)])
    assert not s.complete and s.current == "legal"


def test_chain_out_of_order_approval_does_not_count_even_when_earlier_steps_finish_later() -> None:
    # gm approved before the department: evaluation is chronological, gm.a is not counted.
    s = evaluate(THREE_STEP, facts("1"), "req", [ap("gm.a", 1), ap("dept.a", 2)])
    assert not s.complete and s.current == "gm" and s.not_counted == ("gm.a",)


def test_chain_one_person_counts_once_over_all_steps() -> None:
    chain = Chain(
        (Step("one", Group("g", frozenset({"x", "y"}))), Step("two", Group("g", frozenset({"x", "y"}))))
    )
    s = evaluate(chain, facts(), "req", [ap("x", 1), ap("x", 2, approver="deputy-of-x")])
    assert s.current == "two" and s.not_counted == ("deputy-of-x",)


def test_chain_requester_never_counts() -> None:
    chain = Chain((Step("one", Group("g", frozenset({"req", "y"}))),))
    assert not evaluate(chain, facts(), "req", [ap("req", 1)]).complete


def test_chain_all_of_needs_distinct_people_even_if_one_is_in_both_groups() -> None:
    both = AllOf((Group("a", frozenset({"p", "q"})), Group("b", frozenset({"p"}))))
    assert not meets(both, ["p"], None)
    assert meets(both, ["p", "q"], None)  # q fills a, p fills b (matching, not greedy)


def test_chain_any_of_m_of_and_when_inside_a_step() -> None:
    expr = MOf(
        2, (Group("a", frozenset({"a1"})), Group("b", frozenset({"b1"})), Group("c", frozenset({"c1"})))
    )
    assert not meets(expr, ["a1"], None) and meets(expr, ["a1", "c1"], None)
    assert meets(AnyOf((Group("a", frozenset({"a1"})), Group("b", frozenset({"b1"})))), ["b1"], None)
    cond = When(Condition(categories=frozenset({"loan"})), Group("risk", frozenset({"r1"})))
    assert meets(AllOf((Group("a", frozenset({"a1"})), cond)), ["a1"], facts(category="contract"))
    assert not meets(AllOf((Group("a", frozenset({"a1"})), cond)), ["a1"], facts(category="loan"))
    assert meets(Group("g", frozenset({"x", "y", "z"}), count=2), ["x", "z"], None)
    assert not meets(Group("g", frozenset({"x", "y", "z"}), count=2), ["x"], None)


# -- config-load checks ------------------------------------------------------


def test_chain_config_check_accepts_the_three_step_chain() -> None:
    check_chain("contract", THREE_STEP, required_approvals=2, requesters=["req"])


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        (Chain((Step("a", Group("nobody", frozenset())), Step("b", GM))), r"group 'nobody' has no approver"),
        (Chain((Step("a", AllOf(())), Step("b", GM))), r"empty AllOf"),
        (Chain((Step("a", MOf(3, (DEPT, GM))),)), r"m_of needs 1 <= m <= 2"),
        (
            Chain((Step("a", Group("g", frozenset({"x"}), count=2)), Step("b", GM))),
            r"needs 2 approvals but has 1",
        ),
        (Chain((Step("a", Group("solo", frozenset({"req"}))), Step("b", GM))), r"req is the requester"),
        (Chain((Step("only", GM),)), r"complete with 1 approval"),
        (
            Chain((Step("a", DEPT, when=Condition(categories=frozenset({"x"}))), Step("b", GM))),
            r"complete with 1",
        ),
        (Chain((Step("a", DEPT), Step("a", GM))), r"step names must be distinct"),
    ],
)
def test_chain_config_check_refuses_with_the_seal_named(chain: Chain, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as bad:
        check_chain("contract", chain, required_approvals=2, requesters=["req"])
    assert "seal[contract].policy" in str(bad.value)


# -- amounts and the digest ------------------------------------------------------


def test_chain_amount_parsing_is_strict() -> None:
    assert parse_money("120000.50", "CNY").canonical() == "120000.5"
    assert parse_money("1E+5", "CNY").canonical() == "100000"
    for value, currency in [("abc", "CNY"), ("-1", "CNY"), ("1", "cny"), ("NaN", "CNY"), ("0.00001", "CNY")]:
        with pytest.raises(InvalidInput):
            parse_money(value, currency)
    assert parse_money("7", "CNY").value == Decimal(7)


def _subject(amount: tuple[str, str] | None) -> bytes:
    return canonical_approval_subject(
        request_id="r",
        seal_id="s",
        seal_certificate_sha256="c" * 64,
        requester="q",
        reason="why",
        category="contract",
        placement=DigestPlacement(1, 10.0, 10.0, 40.0, "", False),
        documents=[DigestDocument("a.pdf", "a" * 64, 3)],
        amount=amount,
    )


def test_chain_digest_without_amount_is_unchanged_and_with_amount_binds_it() -> None:
    # The digest of a request without an amount, as computed before issue 17.
    assert hashlib.sha256(_subject(None)).hexdigest() == (
        hashlib.sha256(
            b'{"category":"contract","documents":[{"index":0,"name":"a.pdf","sha256":"'
            + b"a" * 64
            + b'","size":3}],"placement":{"anchor_text":"","cross_page":false,"page":1,'
            b'"size_hundredth_mm":4000,"x_hundredth_mm":1000,"y_hundredth_mm":1000},'
            b'"reason":"why","request_id":"r","requester":"q","seal_certificate_sha256":"'
            + b"c" * 64
            + b'","seal_id":"s","version":"sealapi.v1/approval-digest/1"}'
        ).hexdigest()
    )
    with_amount = _subject(("100000", "CNY"))
    assert b'"amount":{"currency":"CNY","value":"100000"}' in with_amount
    assert with_amount != _subject(("100001", "CNY")) != _subject(("100000", "USD"))


# -- through the lifecycle -----------------------------------------------------


def person(name: str, *groups: str, role: Role = Role.APPROVER) -> Principal:
    return Principal(name, name, frozenset({role}), frozenset({"contract"}), groups=frozenset(groups))


PEOPLE = (
    person("req", role=Role.REQUESTER),
    person("dept.a", "department_manager"),
    person("legal.a", "legal"),
    person("gm.a", "general_manager"),
)
CONFIG_CHAIN = Chain(
    (
        Step("department", Group("department_manager", frozenset())),
        Step("legal", Group("legal", frozenset()), when=Condition(amount_over=CNY_100K)),
        Step("gm", Group("general_manager", frozenset())),
    )
)
DOC = Document(0, "c.pdf", 10, hashlib.sha256(b"x").hexdigest())


def _submit(amount: str | None) -> tuple[object, object]:
    seal = Seal(
        "contract", SealType.CONTRACT, "o", "d", frozenset({"contract"}), 2, 40.0, certificate_sha256="c" * 64
    )
    request = lifecycle.submit(
        request_id="r1",
        requester=PEOPLE[0],
        seal=seal,
        reason="sign the contract",
        category="contract",
        placement=Placement(1, 10, 10, 40),
        documents=[DOC],
        now=T0,
        ttl=timedelta(hours=2),
        host="h",
        amount=parse_money(amount, "CNY") if amount else None,
    )
    policy = build_policy(
        seal_id="contract",
        seal_type=SealType.CONTRACT,
        required_approvals=2,
        approver_groups=(),
        one_from_each_group=False,
        principals=PEOPLE,
        now=T0,
        chain=CONFIG_CHAIN,
    )
    return request, policy


def test_chain_lifecycle_refuses_out_of_order_then_completes_in_order() -> None:
    request, policy = _submit("250000")
    by = {p.name: p for p in PEOPLE}

    def approve(r: object, who: str, minute: int) -> object:
        return lifecycle.approve(
            r,  # type: ignore[arg-type]
            approver=by[who],
            document_sha256=[DOC.sha256],
            approval_digest=r.approval_digest,  # type: ignore[attr-defined]
            policy=policy,  # type: ignore[arg-type]
            now=T0 + timedelta(minutes=minute),
        )

    with pytest.raises(PreconditionFailed) as early:
        approve(request, "gm.a", 1)
    assert early.value.reason == "step_out_of_order" and "department" in early.value.message
    r = approve(request, "dept.a", 2)
    with pytest.raises(PreconditionFailed, match="step 'legal'"):
        approve(r, "gm.a", 3)
    r = approve(approve(r, "legal.a", 4), "gm.a", 5)
    assert r.state is RequestState.APPROVED  # type: ignore[attr-defined]
    with pytest.raises(AlreadyDone):
        approve(r, "gm.a", 6)


def test_chain_lifecycle_small_amount_needs_no_legal_and_legal_is_not_in_path() -> None:
    request, policy = _submit("5000")
    by = {p.name: p for p in PEOPLE}
    r = lifecycle.approve(
        request,
        approver=by["dept.a"],
        document_sha256=[DOC.sha256],  # type: ignore[arg-type]
        approval_digest=request.approval_digest,
        policy=policy,
        now=T0,  # type: ignore[attr-defined,arg-type]
    )
    with pytest.raises(PermissionDenied, match="no open step"):
        lifecycle.approve(
            r,
            approver=by["legal.a"],
            document_sha256=[DOC.sha256],
            approval_digest=r.approval_digest,
            policy=policy,
            now=T0,  # type: ignore[arg-type]
        )
    standing = policy.standing(r.requester, r.approvals, lifecycle.facts_of(r))  # type: ignore[attr-defined]
    assert standing is not None and standing.current == "gm"
    assert [s.state for s in standing.steps] == ["done", "skipped", "current"]


def test_chain_as_data_round_trips() -> None:
    nested = Chain(
        (
            Step("a", AllOf((DEPT, When(Condition(categories=frozenset({"loan"})), LEGAL)))),
            Step("b", MOf(1, (GM, AnyOf((LEGAL,)))), when=Condition(amount_over=CNY_100K)),
        )
    )
    for chain in (THREE_STEP, nested):
        assert chain_from_data(chain_to_data(chain)) == chain
