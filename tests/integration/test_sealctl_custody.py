"""`sealctl custody` (R09) as people run it: the real sealctl process against the REAL seald.

One daemon serves the module, with a second custodian-role principal, sun.li, who
gets her own client certificate and sealctl config. The handover test works on the
contract seal, the delegation test on the official seal, so neither depends on the other.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from seald_testing.certs import issue_client_cert
from seald_testing.clients import SEALCTL, sealctl
from seald_testing.custody import audit_rows
from seald_testing.daemon import SealDaemon
from seald_testing.plugin import DaemonFactory

NEW_PIN = "20261130"
SUN_PIN = "20261201"
BEIJING = timezone(timedelta(hours=8))


@dataclass
class CustodyDaemon:
    daemon: SealDaemon
    sun_config: Path  # sealctl config of sun.li, the second custodian-role principal


@pytest.fixture(scope="module")
def cd(module_daemon_factory: DaemonFactory) -> CustodyDaemon:
    fx = module_daemon_factory.fixtures()
    cert, key, fingerprint = issue_client_cert(fx, "sun.li", fx.root)
    d = module_daemon_factory(
        lambda c: c.add_principal(
            "sun.li",
            display_name="孙丽",
            roles=["custodian"],
            seals=["official", "contract"],
            certificates=[fingerprint],
        ),
        fixtures=fx,
    )
    sun_config = fx.root / "sun.li.toml"
    sun_config.write_text(
        f'server = "{d.target}"\nca = "{fx.tls_ca}"\ncert = "{cert}"\nkey = "{key}"\n', encoding="utf-8"
    )
    return CustodyDaemon(d, sun_config)


def as_sun(cd: CustodyDaemon, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert SEALCTL is not None
    return subprocess.run(
        [SEALCTL, "--config", str(cd.sun_config), *args],
        capture_output=True,
        text=True,
        input=stdin,
        check=False,
        timeout=60,
    )


def error_reason(done: subprocess.CompletedProcess[str]) -> str:
    """The `(reason)` at the end of sealctl's one error line."""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("sealctl: error: ") and line.endswith(")"), done.stderr
    return line.rsplit("(", 1)[1].rstrip(")")


def custodian_shown(d: SealDaemon, seal_id: str) -> str:
    shown = sealctl(d, "zhao.min", "custody", "show", seal_id, "--json")
    assert shown.returncode == 0, shown.stderr
    return str(json.loads(shown.stdout)["custodian"])


def test_r09_handover_needs_two_other_approvals_then_only_the_new_custodian_unlocks(
    cd: CustodyDaemon,
) -> None:
    d = cd.daemon
    initial = d.fixtures.seals["contract"].user_pin
    changed = sealctl(
        d, "liu.yang", "token", "change-pin", "contract", "--pin-stdin", stdin=f"{initial}\n{NEW_PIN}\n"
    )
    assert changed.returncode == 0, changed.stderr
    before = sealctl(d, "zhao.min", "custody", "show", "contract")
    assert before.returncode == 0, before.stderr
    assert "custodian:  liu.yang" in before.stdout and "delegate:   none active" in before.stdout

    proposed = sealctl(
        d, "chen.jie", "--json", "custody", "handover", "contract", "--to", "sun.li", "--comment", "刘洋调岗"
    )
    assert proposed.returncode == 0, proposed.stderr
    change = json.loads(proposed.stdout)
    change_id = change["change_id"]
    assert (change["seal_id"], change["kind"], change["to_principal"]) == (
        "contract",
        "CUSTODY_CHANGE_KIND_HANDOVER",
        "sun.li",
    )
    assert not change.get("in_effect") and not change.get("approvals")

    own = sealctl(d, "chen.jie", "custody", "approve", change_id)
    assert (own.returncode, error_reason(own)) == (3, "self_approval")  # the proposer
    receiver = as_sun(cd, "custody", "approve", change_id)
    assert (receiver.returncode, error_reason(receiver)) == (3, "not_an_approver")
    unknown = sealctl(d, "li.na", "custody", "approve", "no-such-change")
    assert (unknown.returncode, error_reason(unknown)) == (4, "custody_change_not_found")

    first = sealctl(d, "li.na", "custody", "approve", change_id)
    assert first.returncode == 0, first.stderr
    assert "approvals:  1/2: li.na" in first.stdout and "in effect:  not yet" in first.stdout
    for device in ("li.na", "li.na-laptop"):  # the same person twice, from either device
        again = sealctl(d, device, "custody", "approve", change_id)
        assert (again.returncode, error_reason(again)) == (7, "duplicate")
    assert custodian_shown(d, "contract") == "liu.yang"  # one approval changes nothing

    second = sealctl(d, "wang.fang", "custody", "approve", change_id)
    assert second.returncode == 0, second.stderr
    assert "approvals:  2/2: li.na, wang.fang" in second.stdout and "in effect:  yes" in second.stdout
    assert custodian_shown(d, "contract") == "sun.li"
    shown = sealctl(d, "zhao.min", "custody", "show", "contract")
    assert "custodian:  sun.li" in shown.stdout

    old = sealctl(d, "liu.yang", "token", "unlock", "contract", "--pin-stdin", stdin=NEW_PIN + "\n")
    assert (old.returncode, error_reason(old)) == (3, "not_the_holder")
    assert "custody is with sun.li" in old.stderr
    new = as_sun(cd, "--json", "token", "unlock", "contract", "--pin-stdin", stdin=NEW_PIN + "\n")
    assert new.returncode == 0, new.stderr
    status = json.loads(new.stdout)
    assert status["unlocked"] is True and status["unlocked_by"] == "sun.li"
    # R07 for the new holder (issue 14): the PIN liu.yang set does not sign for sun.li.
    assert not status.get("ready", False)
    assert "set by liu.yang, who does not hold the seal now" in status["not_ready_reason"]
    changed = as_sun(
        cd, "--json", "token", "change-pin", "contract", "--pin-stdin", stdin=f"{NEW_PIN}\n{SUN_PIN}\n"
    )
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout).get("ready") is True
    recorded = [
        r["principal"]
        for r in audit_rows(d, "custody.changed")
        if r["seal_id"] == "contract" and change_id in r["details_json"]
    ]
    assert recorded == ["wang.fang"]


@pytest.mark.clock  # issue 14: a delegation window from now
def test_r09_delegation_times_need_a_zone_and_are_kept_as_given(cd: CustodyDaemon) -> None:
    d = cd.daemon
    proposals_before = len(audit_rows(d, "custody.change_proposed"))
    for start, problem in (
        ("2026-12-01T08:00:00", "has no time zone"),
        ("next monday", "is not an ISO 8601 date-time"),
    ):
        done = sealctl(
            d, "chen.jie", "custody", "delegate", "official", "--to", "sun.li",
            "--from", start, "--until", "2099-12-01T18:00:00+08:00",
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert problem in done.stderr and "--from" in done.stderr
    backwards = sealctl(
        d, "chen.jie", "custody", "delegate", "official", "--to", "sun.li",
        "--from", "2099-12-02T08:00:00+08:00", "--until", "2099-12-01T08:00:00+08:00",
    )  # fmt: skip
    assert (backwards.returncode, error_reason(backwards)) == (6, "bad_window")
    assert len(audit_rows(d, "custody.change_proposed")) == proposals_before  # nothing proposed

    # Beijing time in, UTC out: the instant is kept, not the wall-clock digits.
    start = (datetime.now(BEIJING) - timedelta(minutes=5)).replace(microsecond=0)
    end = start + timedelta(hours=2)
    proposed = sealctl(
        d, "chen.jie", "--json", "custody", "delegate", "official", "--to", "sun.li",
        "--from", start.isoformat(), "--until", end.isoformat(), "--comment", "刘洋休假",
    )  # fmt: skip
    assert proposed.returncode == 0, proposed.stderr
    change = json.loads(proposed.stdout)
    assert change["kind"] == "CUSTODY_CHANGE_KIND_DELEGATION"
    utc_start = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    utc_end = end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert change["window"] == {"not_before": utc_start, "not_after": utc_end}
    for approver in ("li.na", "wang.fang"):
        done = sealctl(d, approver, "custody", "approve", change["change_id"])
        assert done.returncode == 0, done.stderr

    shown = sealctl(d, "zhao.min", "custody", "show", "official")
    assert shown.returncode == 0, shown.stderr
    assert "custodian:  liu.yang" in shown.stdout
    assert f"delegate:   sun.li from {utc_start} until {utc_end}" in shown.stdout
    pin = d.fixtures.seals["official"].user_pin
    unlocked = as_sun(cd, "--json", "token", "unlock", "official", "--pin-stdin", stdin=pin + "\n")
    assert unlocked.returncode == 0, unlocked.stderr
    assert json.loads(unlocked.stdout)["unlocked_by"] == "sun.li"
