"""Ordered and conditional approval chains (issue 17, SEAL-RULES R05).

A chain is a ``sequence`` of steps; each step is an expression over approver groups:
``group`` (``count`` distinct members of one group, default 1), ``all_of``, ``any_of``,
``m_of`` and ``when`` (the inner expression applies only when a condition on the
request holds: its category, or its declared amount). A step may carry a ``when``
too: a step whose condition does not hold is skipped.

Rules that keep it fail-closed:

* One person counts once in the whole chain (a delegate counts as the delegator, so
  delegator plus delegate count once) and the requester never counts.
* Within a step, approvers are matched to group slots without reuse (one approval
  fills one slot), so ``all_of = [A, B]`` needs two people even if one is in both.
* Out of order is REFUSED, not held: an approval from someone who belongs only to a
  later step is refused until the steps before it are complete (``step_out_of_order``).
  Holding would keep an approval whose context (the earlier steps' outcome) the
  approver never saw; refusing makes them approve again when it is their turn.
* Evaluation is chronological: approvals are taken in the order they were given, so
  a later step's approval can never count before the earlier step was complete even
  when an earlier approval is withdrawn and given again.
* A condition on the amount holds when the request declares no amount or an amount
  in another currency (fail closed: the conditional step applies). Declare the amount
  to skip it.
* Checked at config load (:func:`check_chain`): no empty group, no group or ``m_of``
  that cannot be met, satisfiable without any one requester of the seal, and never
  completable with fewer distinct approvers than the seal's ``required_approvals``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from seald.domain.errors import AlreadyDone, ConfigError, InvalidInput, PermissionDenied, PreconditionFailed

CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_AMOUNT_DIGITS = 18
MAX_AMOUNT_DECIMALS = 4
# Config-load bound on the size of a policy: the satisfiability search is exponential.
MAX_LEAVES = 24
MAX_TERMS = 4096


@dataclass(frozen=True)
class Money:
    """A declared amount: a non-negative decimal and an ISO 4217 currency code."""

    value: Decimal
    currency: str

    def canonical(self) -> str:
        """The value as digits with no exponent and no trailing zeros ("100000", "12.5")."""
        text = format(self.value.normalize(), "f")
        return text

    def __str__(self) -> str:
        return f"{self.canonical()} {self.currency}"


def parse_money(value: str, currency: str) -> Money:
    """Validate an amount as a client sends it (a decimal string and a currency code)."""
    if not CURRENCY.match(currency):
        raise InvalidInput(
            f"amount currency {currency!r} is not an ISO 4217 code; use three capital letters "
            "such as CNY",
            reason="bad_amount",
        )
    try:
        amount = Decimal(value.strip())
    except InvalidOperation as ex:
        raise InvalidInput(
            f"amount {value!r} is not a decimal number; give digits such as 120000.50",
            reason="bad_amount",
        ) from ex
    if not amount.is_finite() or amount < 0:
        raise InvalidInput(
            f"amount {value!r} must be a finite number >= 0", reason="bad_amount"
        )
    _, digits, exponent = amount.normalize().as_tuple()
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if decimals > MAX_AMOUNT_DECIMALS or len(digits) > MAX_AMOUNT_DIGITS:
        raise InvalidInput(
            f"amount {value!r} has too many digits; at most {MAX_AMOUNT_DIGITS} digits and "
            f"{MAX_AMOUNT_DECIMALS} decimals",
            reason="bad_amount",
        )
    return Money(amount, currency)


@dataclass(frozen=True)
class RequestFacts:
    """What conditions look at: the request's category and its declared amount."""

    category: str
    amount: Money | None = None


@dataclass(frozen=True)
class Condition:
    """Every part given must hold. Unknown amount or another currency: holds (fail closed)."""

    categories: frozenset[str] | None = None
    amount_over: Money | None = None

    def holds(self, facts: RequestFacts) -> bool:
        if self.categories is not None and facts.category not in self.categories:
            return False
        if self.amount_over is not None:
            amount = facts.amount
            if amount is not None and amount.currency == self.amount_over.currency:
                return amount.value > self.amount_over.value
        return True

    def describe(self) -> str:
        parts = []
        if self.categories is not None:
            parts.append("category in " + ", ".join(sorted(self.categories)))
        if self.amount_over is not None:
            parts.append(f"amount > {self.amount_over}")
        return " and ".join(parts) or "always"


@dataclass(frozen=True)
class Group:
    """``count`` distinct members of approver group ``name``."""

    name: str
    members: frozenset[str]
    count: int = 1


@dataclass(frozen=True)
class AllOf:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class MOf:
    m: int
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class When:
    condition: Condition
    item: Expr


Expr = Group | AllOf | AnyOf | MOf | When


@dataclass(frozen=True)
class Step:
    name: str
    expr: Expr
    when: Condition | None = None

    def applies(self, facts: RequestFacts) -> bool:
        return self.when is None or self.when.holds(facts)


@dataclass(frozen=True)
class Chain:
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        if not self.steps:
            raise ConfigError("an approval chain needs at least one step")

    @property
    def members(self) -> frozenset[str]:
        return frozenset().union(*(_members(s.expr) for s in self.steps))

    def describe(self) -> str:
        return " -> ".join(
            f"{s.name}[{describe_expr(s.expr)}]" + (f" when {s.when.describe()}" if s.when else "")
            for s in self.steps
        )


def describe_expr(expr: Expr) -> str:
    if isinstance(expr, Group):
        return expr.name if expr.count == 1 else f"{expr.count} of {expr.name}"
    if isinstance(expr, AllOf):
        return "all of (" + ", ".join(describe_expr(i) for i in expr.items) + ")"
    if isinstance(expr, AnyOf):
        return "any of (" + ", ".join(describe_expr(i) for i in expr.items) + ")"
    if isinstance(expr, MOf):
        return f"{expr.m} of (" + ", ".join(describe_expr(i) for i in expr.items) + ")"
    return f"{describe_expr(expr.item)} when {expr.condition.describe()}"


def _leaves(expr: Expr) -> list[Group]:
    if isinstance(expr, Group):
        return [expr]
    if isinstance(expr, When):
        return _leaves(expr.item)
    return [leaf for item in expr.items for leaf in _leaves(item)]


def _members(expr: Expr) -> frozenset[str]:
    return frozenset().union(*(leaf.members for leaf in _leaves(expr)))


class _NoneHold:
    """Evaluate as if no ``when`` condition held (the cheapest case, for config checks)."""


NONE_HOLD = _NoneHold()
Facts = RequestFacts | _NoneHold | None


def _holds(condition: Condition, facts: Facts) -> bool:
    if facts is None:
        return True
    if isinstance(facts, _NoneHold):
        return False
    return condition.holds(facts)


def _terms(expr: Expr, facts: Facts, offset: int) -> tuple[list[frozenset[int]], int]:
    """Disjunctive normal form over leaf indices: each term is a set of leaves that,
    all met, meet ``expr``. ``facts`` None = every condition holds (the strictest case),
    NONE_HOLD = none does (the cheapest)."""
    if isinstance(expr, Group):
        return [frozenset({offset})], offset + 1
    if isinstance(expr, When):
        inner, end = _terms(expr.item, facts, offset)
        if not _holds(expr.condition, facts):
            return [frozenset()], end
        return inner, end
    parts: list[list[frozenset[int]]] = []
    end = offset
    for item in expr.items:
        t, end = _terms(item, facts, end)
        parts.append(t)
    if isinstance(expr, AllOf):
        chosen: Iterable[Sequence[list[frozenset[int]]]] = [parts]
    elif isinstance(expr, AnyOf):
        chosen = [[p] for p in parts]
    else:
        chosen = itertools.combinations(parts, expr.m)
    out: set[frozenset[int]] = set()
    for combo in chosen:
        for picks in itertools.product(*combo):
            out.add(frozenset().union(*picks))
            if len(out) > MAX_TERMS:
                raise ConfigError(
                    f"approval policy too complex (more than {MAX_TERMS} alternatives); simplify it"
                )
    return sorted(out, key=lambda s: (len(s), sorted(s))), end


def _match(slots: Sequence[frozenset[str]], people: Sequence[str]) -> dict[int, str] | None:
    """Fill every slot (a set of who may fill it) with a distinct person, or None."""
    owner: dict[str, int] = {}

    def place(slot: int, seen: set[str]) -> bool:
        for person in people:
            if person in slots[slot] and person not in seen:
                seen.add(person)
                if person not in owner or place(owner[person], seen):
                    owner[person] = slot
                    return True
        return False

    for slot in range(len(slots)):
        if not place(slot, set()):
            return None
    return {slot: person for person, slot in owner.items()}


def meets(expr: Expr, approvers: Iterable[str], facts: Facts) -> bool:
    """True if distinct ``approvers`` (each filling one slot) meet ``expr``."""
    return assignment(expr, approvers, facts) is not None


def assignment(
    expr: Expr, approvers: Iterable[str], facts: Facts
) -> dict[str, str] | None:
    """Who fills which group (person -> group name) when ``expr`` is met, else None."""
    leaves = _leaves(expr)
    people = sorted(set(approvers))
    terms, _ = _terms(expr, facts, 0)
    for term in terms:
        slots: list[frozenset[str]] = []
        names: list[str] = []
        for index in sorted(term):
            leaf = leaves[index]
            slots.extend([leaf.members] * leaf.count)
            names.extend([leaf.name] * leaf.count)
        matched = _match(slots, people)
        if matched is not None:
            return {person: names[slot] for slot, person in matched.items()}
    return None


def minimum_approvers(expr: Expr, facts: Facts) -> int:
    """The fewest distinct approvers that can meet ``expr`` (0 if a condition skips it)."""
    leaves = _leaves(expr)
    terms, _ = _terms(expr, facts, 0)
    return min(sum(leaves[i].count for i in term) for term in terms)


# -- evaluation --------------------------------------------------------------


@dataclass(frozen=True)
class CountedApproval:
    """An approval as a chain sees it: who counts (the delegator, when a delegate
    approved for them), who actually approved, and when."""

    identity: str
    approver: str
    at: datetime


@dataclass(frozen=True)
class StepStanding:
    name: str
    state: str  # "done" | "current" | "waiting" | "skipped"
    requirement: str
    condition: str
    counted: tuple[str, ...]  # identities counted for this step, in order
    # Who could move this step on now (current step only): members not yet counted.
    needed_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class Standing:
    """Where a request stands in its chain (for ``sealctl status`` and notifications)."""

    steps: tuple[StepStanding, ...]
    complete: bool
    current: str | None
    not_counted: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        if self.complete:
            return "chain complete"
        return f"waiting for step '{self.current}'"


def evaluate(
    chain: Chain,
    facts: RequestFacts,
    requester: str,
    approvals: Sequence[CountedApproval],
) -> Standing:
    """Walk the chain through the approvals in the order they were given."""
    active = [s.applies(facts) for s in chain.steps]
    pools: list[list[str]] = [[] for _ in chain.steps]
    used: set[str] = set()
    not_counted: list[str] = []

    def next_active(start: int) -> int | None:
        for i in range(start, len(chain.steps)):
            if active[i] and not meets(chain.steps[i].expr, [], facts):
                return i
        return None

    current = next_active(0)
    for a in sorted(approvals, key=lambda x: x.at):
        if requester in (a.identity, a.approver) or a.identity in used:
            not_counted.append(a.approver)
            continue
        if current is None or a.identity not in _members(chain.steps[current].expr):
            not_counted.append(a.approver)
            continue
        pools[current].append(a.identity)
        used.add(a.identity)
        if meets(chain.steps[current].expr, pools[current], facts):
            current = next_active(current + 1)
    steps: list[StepStanding] = []
    for i, step in enumerate(chain.steps):
        if not active[i]:
            state = "skipped"
        elif current is None or i < current:
            state = "done"
        elif i == current:
            state = "current"
        else:
            state = "waiting"
        needed: tuple[str, ...] = ()
        if state == "current":
            needed = tuple(sorted(_members(step.expr) - used - {requester}))
        steps.append(
            StepStanding(
                name=step.name,
                state=state,
                requirement=describe_expr(step.expr),
                condition=step.when.describe() if step.when else "always",
                counted=tuple(pools[i]),
                needed_from=needed,
            )
        )
    return Standing(
        steps=tuple(steps),
        complete=current is None,
        current=chain.steps[current].name if current is not None else None,
        not_counted=tuple(not_counted),
    )


def check_turn(
    chain: Chain,
    facts: RequestFacts,
    requester: str,
    approvals: Sequence[CountedApproval],
    identity: str,
) -> None:
    """Refuse an approval that would not count now: out of order, or not in the chain."""
    standing = evaluate(chain, facts, requester, approvals)
    if standing.complete:
        raise AlreadyDone("the approval chain is already complete", reason="already_approved")
    current = next(s for s in standing.steps if s.state == "current")
    if identity in {i for s in standing.steps for i in s.counted}:
        raise AlreadyDone(
            f"{identity} already counts in this request's chain; one person counts once",
            reason="already_approved",
        )
    step = chain.steps[[s.name for s in chain.steps].index(current.name)]
    if identity in _members(step.expr):
        return
    later = [
        s.name
        for s, st in zip(chain.steps, standing.steps, strict=True)
        if st.state == "waiting" and identity in _members(s.expr)
    ]
    if later:
        raise PreconditionFailed(
            f"out of order: {identity} approves at step '{later[0]}', but step "
            f"'{current.name}' ({current.requirement}) is not complete yet; approve when it is "
            "(the approval is refused, not held)",
            reason="step_out_of_order",
        )
    raise PermissionDenied(
        f"{identity} is in no open step of this request's approval chain "
        f"({chain.describe()}); the current step needs {current.requirement}",
        reason="not_in_approval_path",
    )


# -- config-load checks -------------------------------------------------------


def check_chain(
    seal_id: str,
    chain: Chain,
    *,
    required_approvals: int,
    requesters: Iterable[str],
) -> None:
    """Refuse a chain that could never (or too cheaply) be met; messages name the seal."""
    where = f"seal[{seal_id}].policy"
    names = [s.name for s in chain.steps]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: step names must be distinct (got {', '.join(names)})")
    leaves = [leaf for s in chain.steps for leaf in _leaves(s.expr)]
    if len(leaves) > MAX_LEAVES:
        raise ConfigError(f"{where}: more than {MAX_LEAVES} groups; simplify the policy")
    for leaf in leaves:
        if not leaf.members:
            raise ConfigError(
                f"{where}: group '{leaf.name}' has no approver of this seal; add a principal "
                f"with role approver, this seal and group '{leaf.name}', or remove the group"
            )
        if leaf.count < 1 or leaf.count > len(leaf.members):
            raise ConfigError(
                f"{where}: group '{leaf.name}' needs {leaf.count} approvals but has "
                f"{len(leaf.members)} member(s); lower count or add approvers"
            )
    for step in chain.steps:
        _check_shape(where, step.expr)
        # Strictest case: every condition holds, the requester is any one requester.
        if not meets(step.expr, _members(step.expr), None):
            raise ConfigError(
                f"{where}: step '{step.name}' ({describe_expr(step.expr)}) can never be met "
                "by distinct approvers; add approvers or lower the counts"
            )
        for requester in sorted(set(requesters) | {""}):
            if not meets(step.expr, _members(step.expr) - {requester}, None):
                raise ConfigError(
                    f"{where}: step '{step.name}' cannot be met when {requester} is the "
                    f"requester (the requester never approves, R05): a group holds only the "
                    "requester; add another approver to it"
                )
    # Fewest approvers over every combination of conditions (a skipped step costs 0).
    fewest = _fewest(chain)
    if fewest < required_approvals:
        raise ConfigError(
            f"{where}: the chain can complete with {fewest} approval(s), fewer than "
            f"required_approvals = {required_approvals} (R05 dual control); add a step or an "
            "unconditional group"
        )


def _check_shape(where: str, expr: Expr) -> None:
    if isinstance(expr, Group):
        return
    if isinstance(expr, When):
        _check_shape(where, expr.item)
        return
    if not expr.items:
        raise ConfigError(f"{where}: an empty {type(expr).__name__} group never passes; list items")
    if isinstance(expr, MOf) and not 1 <= expr.m <= len(expr.items):
        raise ConfigError(
            f"{where}: m_of needs 1 <= m <= {len(expr.items)} (the number of items); got m = {expr.m}"
        )
    for item in expr.items:
        _check_shape(where, item)


def _fewest(chain: Chain) -> int:
    """Fewest approvers the chain can complete with, over every outcome of its conditions."""
    total = 0
    for step in chain.steps:
        lowest = minimum_approvers(step.expr, NONE_HOLD)
        if step.when is not None:
            lowest = 0
        total += lowest
    return total


# -- building from config ----------------------------------------------------


def members_by_group(
    groups: Iterable[str], principals_groups: Mapping[str, frozenset[str]]
) -> dict[str, frozenset[str]]:
    """group -> principals in it, from principal -> groups."""
    out: dict[str, set[str]] = {g: set() for g in groups}
    for name, gs in principals_groups.items():
        for g in gs:
            if g in out:
                out[g].add(name)
    return {g: frozenset(m) for g, m in out.items()}


def group_names(chain: Chain) -> tuple[str, ...]:
    """Every group the chain names, in order of first appearance."""
    seen: dict[str, None] = {}
    for step in chain.steps:
        for leaf in _leaves(step.expr):
            seen.setdefault(leaf.name, None)
    return tuple(seen)


def _resolve_expr(expr: Expr, members: Mapping[str, frozenset[str]]) -> Expr:
    if isinstance(expr, Group):
        return Group(expr.name, members.get(expr.name, frozenset()), expr.count)
    if isinstance(expr, When):
        return When(expr.condition, _resolve_expr(expr.item, members))
    items = tuple(_resolve_expr(i, members) for i in expr.items)
    if isinstance(expr, AllOf):
        return AllOf(items)
    if isinstance(expr, AnyOf):
        return AnyOf(items)
    return MOf(expr.m, items)


def resolve(chain: Chain, members: Mapping[str, frozenset[str]]) -> Chain:
    """The chain with each group's members filled in (config names groups only)."""
    return Chain(
        tuple(Step(s.name, _resolve_expr(s.expr, members), s.when) for s in chain.steps)
    )


# -- as data (recorded with each approval in the ledger; the offline verifier reads it) --


def _condition_data(c: Condition | None) -> dict[str, object] | None:
    if c is None:
        return None
    return {
        "categories": sorted(c.categories) if c.categories is not None else None,
        "amount_over": [c.amount_over.canonical(), c.amount_over.currency] if c.amount_over else None,
    }


def _expr_data(expr: Expr) -> dict[str, object]:
    if isinstance(expr, Group):
        return {"group": expr.name, "members": sorted(expr.members), "count": expr.count}
    if isinstance(expr, When):
        return {"when": _condition_data(expr.condition), "expr": _expr_data(expr.item)}
    items = [_expr_data(i) for i in expr.items]
    if isinstance(expr, AllOf):
        return {"all_of": items}
    if isinstance(expr, AnyOf):
        return {"any_of": items}
    return {"m_of": expr.m, "of": items}


def chain_to_data(chain: Chain) -> dict[str, object]:
    """The chain (with its members) as JSON-able data."""
    return {
        "steps": [
            {"name": s.name, "when": _condition_data(s.when), "expr": _expr_data(s.expr)}
            for s in chain.steps
        ]
    }


def _condition_from(raw: object) -> Condition | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("a chain condition is not an object")
    cats, over = raw.get("categories"), raw.get("amount_over")
    return Condition(
        frozenset(str(c) for c in cats) if isinstance(cats, list) else None,
        parse_money(str(over[0]), str(over[1])) if isinstance(over, list) else None,
    )


def _expr_from(raw: object) -> Expr:
    if not isinstance(raw, dict):
        raise ValueError("a chain expression is not an object")
    if "group" in raw:
        return Group(str(raw["group"]), frozenset(str(m) for m in raw["members"]), int(raw["count"]))
    if "when" in raw:
        condition = _condition_from(raw["when"])
        if condition is None:
            raise ValueError("a chain 'when' has no condition")
        return When(condition, _expr_from(raw["expr"]))
    if "all_of" in raw:
        return AllOf(tuple(_expr_from(i) for i in raw["all_of"]))
    if "any_of" in raw:
        return AnyOf(tuple(_expr_from(i) for i in raw["any_of"]))
    return MOf(int(raw["m_of"]), tuple(_expr_from(i) for i in raw["of"]))


def chain_from_data(raw: object) -> Chain:
    """Inverse of :func:`chain_to_data`; ValueError/KeyError/TypeError on malformed data."""
    if not isinstance(raw, dict) or not isinstance(raw.get("steps"), list):
        raise ValueError("a chain has no steps")
    return Chain(
        tuple(
            Step(str(s["name"]), _expr_from(s["expr"]), _condition_from(s.get("when")))
            for s in raw["steps"]
        )
    )
