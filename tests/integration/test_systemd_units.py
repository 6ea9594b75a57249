"""The appliance as a systemd service (R15: the host service runs with least privilege).

Real tools, no mocks: systemd-analyze scores and verifies the unit, systemd-sysusers and
systemd-tmpfiles apply our sysusers/tmpfiles files to a scratch root, scripts/install.sh
installs into a scratch DESTDIR, and the Python stack is imported under the kernel's
memory-deny-write-execute to back MemoryDenyWriteExecute=yes. A missing tool FAILS.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = REPO / "systemd"
UNIT = SYSTEMD_DIR / "seald.service"
UDEV_RULES = SYSTEMD_DIR / "70-seald-tokens.rules"
INSTALL_SH = REPO / "scripts" / "install.sh"
EXAMPLE_CONFIG = SYSTEMD_DIR / "seald.example.toml"
EXPOSURE_RE = re.compile(r"Overall exposure level for seald\.service: (\d+\.\d+)")


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} not found: install the Debian package providing it"
    return path


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, env=env)


def unit_directives(text: str) -> dict[str, list[str]]:
    """'Section.Key' -> values in order, from a unit file (comments and blanks dropped)."""
    directives: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        directives.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return directives


def unit_with_exec_start(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart binary exists (verify checks it), same arguments."""
    fake = tmp_path / "seald"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    text = UNIT.read_text().replace("ExecStart=/usr/bin/seald ", f"ExecStart={fake} ")
    assert str(fake) in text
    copy = tmp_path / "seald.service"
    copy.write_text(text)
    return copy


# --- the unit --------------------------------------------------------------------------


def test_r15_unit_security_score_at_most_2() -> None:
    result = run([tool("systemd-analyze"), "security", "--offline=true", str(UNIT)])
    match = EXPOSURE_RE.search(result.stdout + result.stderr)
    assert match is not None, f"no exposure line in output:\n{result.stdout}\n{result.stderr}"
    exposure = float(match.group(1))
    assert exposure <= 2.0, f"exposure {exposure} > 2.0:\n{result.stdout}"


def test_r15_security_score_detects_a_weak_unit(tmp_path: Path) -> None:
    # The scorer is not blind: a unit without hardening scores far above the bar.
    weak = tmp_path / "seald.service"
    weak.write_text("[Service]\nType=notify\nExecStart=/usr/bin/seald\n")
    result = run([tool("systemd-analyze"), "security", "--offline=true", str(weak)])
    match = EXPOSURE_RE.search(result.stdout + result.stderr)
    assert match is not None
    assert float(match.group(1)) > 2.0


def test_r15_unit_verifies_clean(tmp_path: Path) -> None:
    # verify exits 0 even on unknown keys; any output at all is a finding.
    result = run([tool("systemd-analyze"), "verify", str(unit_with_exec_start(tmp_path))])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    assert result.stderr.strip() == ""


def test_r15_verify_reports_a_broken_unit(tmp_path: Path) -> None:
    broken = unit_with_exec_start(tmp_path)
    broken.write_text(broken.read_text().replace("ProtectSystem=strict", "ProtectSystem=stric"))
    result = run([tool("systemd-analyze"), "verify", str(broken)])
    assert "protect system" in (result.stdout + result.stderr).lower()


def test_r15_unit_contract_with_the_daemon() -> None:
    d = unit_directives(UNIT.read_text())
    assert d["Service.Type"] == ["notify"]
    assert d["Service.NotifyAccess"] == ["main"]
    assert d["Service.ExecStart"] == ["/usr/bin/seald --config /etc/seald/seald.toml"]
    assert d["Service.WatchdogSec"] == ["30"]
    assert d["Service.Restart"] == ["on-failure"]
    assert d["Service.User"] == ["seald"]
    assert d["Service.Group"] == ["seald"]
    assert d["Service.StateDirectory"] == ["seald"]
    assert d["Service.StateDirectoryMode"] == ["0700"]
    assert d["Service.RuntimeDirectory"] == ["seald"]
    assert d["Service.ConfigurationDirectory"] == ["seald"]
    assert d["Service.LoadCredential"] == ["server.key:/etc/seald/tls/server.key"]


def test_r15_unit_least_privilege_essentials() -> None:
    # Items the overall score could hide if others were tightened to compensate.
    d = unit_directives(UNIT.read_text())
    assert d["Service.ProtectSystem"] == ["strict"]
    assert d["Service.NoNewPrivileges"] == ["yes"]
    assert d["Service.CapabilityBoundingSet"] == [""]
    assert d["Service.AmbientCapabilities"] == [""]
    assert d["Service.DevicePolicy"] == ["closed"]
    assert d["Service.DeviceAllow"] == ["char-usb_device rw"]
    assert d["Service.IPAddressDeny"] == ["any"]
    assert d["Service.IPAddressAllow"] == ["localhost"]
    assert d["Service.UMask"] == ["0077"]
    assert d["Service.MemoryDenyWriteExecute"] == ["yes"]
    assert set(d["Service.RestrictAddressFamilies"][0].split()) == {
        "AF_UNIX",
        "AF_INET",
        "AF_INET6",
        "AF_NETLINK",
    }
    assert "Service.PrivateNetwork" not in d or d["Service.PrivateNetwork"] == ["no"]


MDWE_PROBE = r"""
import ctypes, mmap, os, sys
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_MDWE) failed: errno %d (kernel < 6.3?)" % ctypes.get_errno())
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    pass
else:
    sys.exit("W+X mapping allowed: MDWE not in effect, probe proves nothing")
"""

# Exercises what the daemon runs: grpc.aio server + client, cryptography, python-pkcs11
# with SoftHSM, pyHanko, pyudev and a ctypes callback. Prints STACK-OK on success.
STACK_PROBE = r"""
import asyncio, ctypes, sys
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
import pkcs11
import pyhanko.sign.signers, pyhanko.sign.pkcs11
import pyudev

key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
key.sign(b"x", padding.PKCS1v15(), hashes.SHA256())
pkcs11.lib("/usr/lib/softhsm/libsofthsm2.so").get_slots()
list(pyudev.Context().list_devices(subsystem="usb"))
callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda v: v + 1)
assert callback(41) == 42

async def health_check() -> None:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    await server.stop(None)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING

asyncio.run(health_check())
print("STACK-OK")
"""


def test_r15_stack_runs_under_memory_deny_write_execute(tmp_path: Path) -> None:
    # MemoryDenyWriteExecute=yes must not break grpc, cryptography (cffi), python-pkcs11
    # with SoftHSM, pyHanko or ctypes callbacks (pyudev): same rule via PR_SET_MDWE.
    result = run([sys.executable, "-c", MDWE_PROBE + STACK_PROBE], env=softhsm_env(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "STACK-OK" in result.stdout


def softhsm_env(tmp_path: Path) -> dict[str, str]:
    conf = tmp_path / "softhsm2.conf"
    (tmp_path / "tokens").mkdir()
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\n")
    return {**os.environ, "SOFTHSM2_CONF": str(conf)}


def syscall_groups() -> dict[str, list[str]]:
    """'@group' -> members (syscalls or nested groups), from systemd-analyze itself."""
    out = run([tool("systemd-analyze"), "syscall-filter"]).stdout
    groups: dict[str, list[str]] = {}
    current = ""
    for line in out.splitlines():
        if line.startswith("@"):
            current = line.strip()
            groups[current] = []
        elif line.startswith("    ") and not line.strip().startswith("#") and current:
            groups[current].append(line.strip())
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    calls: set[str] = set()
    for name in names:
        calls |= expand(groups[name], groups) if name.startswith("@") else {name}
    return calls


def unit_syscall_allow_list() -> set[str]:
    """The syscalls the unit's SystemCallFilter= lines leave allowed."""
    groups = syscall_groups()
    allowed: set[str] = set()
    for line in unit_directives(UNIT.read_text())["Service.SystemCallFilter"]:
        if line.startswith("~"):
            allowed -= expand(line[1:].split(), groups)
        else:
            allowed |= expand(line.split(), groups)
    return allowed


# Proves the filter is loaded: setpriority (@resources) must fail before the stack runs.
FILTER_IN_EFFECT = r"""
import os
try:
    os.setpriority(os.PRIO_PROCESS, 0, 1)
except PermissionError:
    pass
else:
    raise SystemExit("setpriority allowed: the syscall filter is not in effect")
"""

SECCOMP_LAUNCHER = r"""
import errno, os, sys
import seccomp
allowed, python, probe = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
rules = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
for name in allowed:
    try:
        rules.add_rule(seccomp.ALLOW, name)
    except (RuntimeError, ValueError):
        pass  # not a syscall on this architecture
rules.load()
os.execv(python, [python, "-c", probe])
"""


def test_r15_stack_runs_under_the_units_syscall_filter(tmp_path: Path) -> None:
    # SystemCallFilter=@system-service ~@privileged @resources, rebuilt with libseccomp
    # (Debian python3-seccomp) from systemd-analyze's own group lists; every other
    # syscall fails with EPERM as SystemCallErrorNumber=EPERM makes it in the service.
    allowed = unit_syscall_allow_list()
    assert "setpriority" not in allowed and "mount" not in allowed
    assert "execve" in allowed and "sendmsg" in allowed
    system_python = "/usr/bin/python3"
    check = run([system_python, "-c", "import seccomp"])
    assert check.returncode == 0, "libseccomp bindings missing: apt-get install python3-seccomp"
    probe = FILTER_IN_EFFECT + STACK_PROBE
    result = run(
        [system_python, "-c", SECCOMP_LAUNCHER, ",".join(sorted(allowed)), sys.executable, probe],
        env=softhsm_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "STACK-OK" in result.stdout


# --- sysusers / tmpfiles ---------------------------------------------------------------


def test_r15_sysusers_and_tmpfiles_apply_to_a_fresh_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    users = run([tool("systemd-sysusers"), f"--root={root}", str(SYSTEMD_DIR / "seald.sysusers")])
    assert users.returncode == 0, users.stderr
    passwd = (root / "etc" / "passwd").read_text()
    group = (root / "etc" / "group").read_text()
    user_line = next(line for line in passwd.splitlines() if line.startswith("seald:"))
    group_line = next(line for line in group.splitlines() if line.startswith("seald:"))
    uid, gid = int(user_line.split(":")[2]), int(group_line.split(":")[2])
    assert uid < 1000, "seald must be a system user"
    assert user_line.endswith(":/usr/sbin/nologin")

    tmpfiles = run(
        [
            tool("systemd-tmpfiles"),
            f"--root={root}",
            "--create",
            str(SYSTEMD_DIR / "seald.tmpfiles"),
        ]
    )
    assert tmpfiles.returncode == 0, tmpfiles.stderr
    etc_seald = (root / "etc" / "seald").stat()
    state = (root / "var" / "lib" / "seald").stat()
    assert stat.S_IMODE(etc_seald.st_mode) == 0o750
    assert stat.S_IMODE(state.st_mode) == 0o700
    if os.geteuid() == 0:  # only root can hand files to another owner
        assert (etc_seald.st_uid, etc_seald.st_gid) == (0, gid)
        assert (state.st_uid, state.st_gid) == (uid, gid)


# --- install.sh ------------------------------------------------------------------------

EXPECTED_INSTALL = {
    "usr/lib/systemd/system/seald.service": 0o644,
    "usr/lib/sysusers.d/seald.conf": 0o644,
    "usr/lib/tmpfiles.d/seald.conf": 0o644,
    "usr/lib/udev/rules.d/70-seald-tokens.rules": 0o644,
    "usr/share/doc/seald/seald.example.toml": 0o644,
    "usr/share/doc/seald/operations.md": 0o644,
    "etc/seald/seald.toml": 0o640,
    "usr/bin/seald": 0o755,
    "usr/bin/sealctl": 0o755,
    "usr/lib/systemd/system/sealweb.service": 0o644,
    "usr/lib/sysusers.d/sealweb.conf": 0o644,
    "usr/bin/sealweb": 0o755,
    "usr/lib/systemd/system/seald-archive-renew.service": 0o644,
    "usr/lib/systemd/system/seald-archive-renew.timer": 0o644,
}


def install(destdir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean_env = {"PATH": os.environ["PATH"], "HOME": str(destdir.parent), "DESTDIR": str(destdir)}
    return run([tool("bash"), str(INSTALL_SH)], env={**clean_env, **env})


def test_r15_install_into_destdir_places_files_with_modes(tmp_path: Path) -> None:
    destdir = tmp_path / "stage"
    result = install(destdir)
    assert result.returncode == 0, result.stderr
    for rel, mode in EXPECTED_INSTALL.items():
        path = destdir / rel
        assert path.is_file(), f"{rel} not installed"
        assert stat.S_IMODE(path.stat().st_mode) == mode, f"{rel}: mode {path.stat().st_mode:o}"
    assert stat.S_IMODE((destdir / "etc/seald").stat().st_mode) == 0o750
    assert stat.S_IMODE((destdir / "etc/seald/tls").stat().st_mode) == 0o750
    installed = {str(p.relative_to(destdir)) for p in destdir.rglob("*") if p.is_file()}
    assert installed == set(EXPECTED_INSTALL), "install.sh wrote unexpected files"
    assert (destdir / "usr/lib/systemd/system/seald.service").read_text() == UNIT.read_text()


def test_r15_install_keeps_an_existing_config(tmp_path: Path) -> None:
    destdir = tmp_path / "stage"
    config = destdir / "etc/seald/seald.toml"
    config.parent.mkdir(parents=True)
    config.write_text("# site config\n")
    result = install(destdir)
    assert result.returncode == 0, result.stderr
    assert config.read_text() == "# site config\n"
    assert "keeping existing" in result.stdout


def test_r15_install_with_prefix_rewrites_exec_start(tmp_path: Path) -> None:
    destdir = tmp_path / "stage"
    result = install(destdir, PREFIX="/opt/seal")
    assert result.returncode == 0, result.stderr
    unit = destdir / "opt/seal/lib/systemd/system/seald.service"
    d = unit_directives(unit.read_text())
    assert d["Service.ExecStart"] == ["/opt/seal/bin/seald --config /etc/seald/seald.toml"]
    assert (destdir / "opt/seal/bin/seald").is_file()
    assert (destdir / "etc/seald/seald.toml").is_file()


def test_r15_install_rejects_relative_prefix(tmp_path: Path) -> None:
    result = install(tmp_path / "stage", PREFIX="usr")
    assert result.returncode != 0
    assert "PREFIX must be an absolute path" in result.stderr


def test_r15_installed_wrapper_execs_the_venv_python(tmp_path: Path) -> None:
    # A stand-in venv interpreter that records how the wrapper called it.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    record = tmp_path / "argv.txt"
    fake_python = venv / "bin" / "python"
    fake_python.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    fake_python.chmod(0o755)
    destdir = tmp_path / "stage"
    assert install(destdir, SEALD_VENV=str(venv)).returncode == 0
    result = run([str(destdir / "usr/bin/sealctl"), "seal", "--doc", "a b.pdf"])
    assert result.returncode == 0, result.stderr
    argv = record.read_text().splitlines()
    assert argv[0] == "-I"
    assert argv[1] == "-c"
    assert "from sealclient.cli import main" in argv[2]
    assert argv[3:] == ["seal", "--doc", "a b.pdf"]


def test_r15_installed_wrapper_code_runs_in_python(tmp_path: Path) -> None:
    # The -c program the wrapper passes is valid Python that calls main() with our argv.
    destdir = tmp_path / "stage"
    venv_dir = Path(sys.prefix)
    assert install(destdir, SEALD_VENV=str(venv_dir)).returncode == 0
    pkg = tmp_path / "pkgs" / "sealclient"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("import sys\ndef main():\n    print(sys.argv)\n    return 3\n")
    wrapper = (destdir / "usr/bin/sealctl").read_text()
    code = re.search(r"-c '([^']*)'", wrapper)
    assert code is not None
    result = run(
        [sys.executable, "-c", code.group(1), "x"], env={"PYTHONPATH": str(tmp_path / "pkgs")}
    )
    assert result.returncode == 3
    assert result.stdout.strip() == "['sealctl', 'x']"


# --- example config --------------------------------------------------------------------


def test_example_config_has_every_schema_key() -> None:
    config = tomllib.loads(EXAMPLE_CONFIG.read_text())
    assert set(config) == {
        "server",
        "store",
        "pkcs11",
        "trust",
        "tokens",
        "requests",
        "seal",
        "principal",
        "webauthn",
        "notify",
        "limits",
    }
    assert set(config["limits"]) == {"max_marks", "allow_mark_overlap"}  # issue 16: sealing jobs
    assert set(config["webauthn"]) == {"origin", "rp_id", "rp_name"}
    assert set(config["server"]) == {
        "listen",
        "host_name",
        "tls_cert",
        "tls_key",
        "client_ca",
        "seal_workers",
    }
    assert config["server"]["tls_key"] == "credential:server.key"
    assert config["store"] == {"state_dir": "/var/lib/seald"}
    assert set(config["pkcs11"]) == {"module"}
    assert set(config["trust"]) == {"seal_ca", "tsa_url", "signing_roots", "fetch_revocation"}
    assert config["requests"]["required_approvals"] >= 2
    assert {
        "id",
        "type",
        "organisation",
        "display_name",
        "token_label",
        "token_serial",
        "key_label",
        "categories",
        "size_mm",
    } <= set(config["seal"][0])
    assert set(config["principal"][0]) == {
        "name",
        "display_name",
        "roles",
        "seals",
        "certificates",
    }


def test_r15_example_config_is_accepted_by_the_daemon_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The daemon's own loader (strict: unknown keys refused), with the example's /etc
    # paths pointed at scratch files and the TLS key handed over as a systemd credential.
    # Imported here so that the other unit tests still run if config.py is mid-change.
    from seald.config import load_config  # noqa: PLC0415

    text = EXAMPLE_CONFIG.read_text()
    for etc_path in sorted(set(re.findall(r'"(/etc/seald/[^"]+)"', text))):
        scratch = tmp_path / etc_path.lstrip("/")
        scratch.parent.mkdir(parents=True, exist_ok=True)
        scratch.write_text("placeholder\n")
        text = text.replace(f'"{etc_path}"', f'"{scratch}"')
    text = text.replace('"/var/lib/seald"', f'"{tmp_path / "state"}"')
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "server.key").write_text("placeholder\n")
    (credentials / "webhook-oa.secret").write_text("0123456789abcdef0123456789abcdef\n")
    (credentials / "webhook-client.key").write_text("placeholder\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config_file = tmp_path / "seald.toml"
    config_file.write_text(text)

    config = load_config(config_file)

    assert config.server.tls_key == credentials / "server.key"
    assert config.requests.required_approvals >= 2
    assert set(config.seals) == {"contract"}
    assert config.webauthn is not None and config.webauthn.rp_id == "seal.example.com"
    assert config.seals["contract"].quotas.uses_per_day == 50
    assert [h.name for h in config.notify.webhooks] == ["oa"]


def test_example_config_comments_every_key() -> None:
    lines = EXAMPLE_CONFIG.read_text().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[a-z_]+ = ", line):
            assert lines[index - 1].startswith("#"), f"key without comment: {line}"


# --- udev rule -------------------------------------------------------------------------
# udevadm (Debian `udev`) is not installed on these machines and systemd 252 has no
# `udevadm verify`; the rule is checked by a strict interpreter of the subset of udev
# rule syntax it uses. Any other construct fails the test, so it cannot slip through.

RULE_TOKEN = re.compile(r'\s*([A-Z]+)(?:\{([^}]*)\})?\s*(==|!=|\+=|=)\s*"([^"]*)"\s*(?:,|$)')
MATCH_KEYS = {"ACTION", "SUBSYSTEM", "ENV", "ATTR"}
ASSIGN_KEYS = {"GROUP", "MODE", "TAG", "ENV", "GOTO", "LABEL"}


@dataclass
class Rule:
    matches: list[tuple[str, str, str, str]] = field(default_factory=list)
    assigns: list[tuple[str, str, str, str]] = field(default_factory=list)


def parse_rules(text: str) -> list[Rule]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        rule, pos = Rule(), 0
        while pos < len(line):
            token = RULE_TOKEN.match(line, pos)
            assert token is not None, f"unparsable udev rule text at: {line[pos:]!r}"
            key, attr, op, value = token.groups()
            if op in ("==", "!="):
                assert key in MATCH_KEYS, f"unexpected match key {key}"
                rule.matches.append((key, attr or "", op, value))
            else:
                assert key in ASSIGN_KEYS, f"unexpected assignment key {key}"
                rule.assigns.append((key, attr or "", op, value))
            pos = token.end()
        rules.append(rule)
    return rules


def evaluate(rules: list[Rule], device: dict[str, str]) -> dict[str, str]:
    """udev semantics for our subset: all matches must hold; GOTO jumps to LABEL."""
    result: dict[str, str] = {}
    index = 0
    while index < len(rules):
        rule = rules[index]
        index += 1
        if not all(
            (device.get(f"{k}{{{a}}}" if a else k, "") == v) == (op == "==")
            for k, a, op, v in rule.matches
        ):
            continue
        for key, attr, op, value in rule.assigns:
            if key == "GOTO":
                index = next(
                    i for i, r in enumerate(rules) if ("LABEL", "", "=", value) in r.assigns
                )
            elif key != "LABEL":
                name = f"{key}{{{attr}}}" if attr else key
                result[name] = result.get(name, "") + " " + value if op == "+=" else value
    return {k: v.strip() for k, v in result.items()}


def usb_device(vendor: str, product: str, action: str = "add") -> dict[str, str]:
    return {
        "ACTION": action,
        "SUBSYSTEM": "usb",
        "ENV{DEVTYPE}": "usb_device",
        "ATTR{idVendor}": vendor,
        "ATTR{idProduct}": product,
    }


TOKEN_GRANT = {"GROUP": "seald", "MODE": "0660", "TAG": "seald-token", "ENV{SEALD_TOKEN}": "1"}


def test_r15_udev_rule_grants_allow_listed_token() -> None:
    rules = parse_rules(UDEV_RULES.read_text())
    assert evaluate(rules, usb_device("096e", "0807")) == TOKEN_GRANT
    assert evaluate(rules, usb_device("096e", "0807", action="change")) == TOKEN_GRANT


@pytest.mark.parametrize(
    "device",
    [
        usb_device("096e", "0808"),  # same vendor, other product
        usb_device("096f", "0807"),  # other vendor, same product
        usb_device("046d", "c52b"),  # a keyboard receiver
        usb_device("096e", "0807", action="remove"),
        {**usb_device("096e", "0807"), "ENV{DEVTYPE}": "usb_interface"},
        {**usb_device("096e", "0807"), "SUBSYSTEM": "hidraw"},
    ],
)
def test_r15_udev_rule_ignores_everything_else(device: dict[str, str]) -> None:
    assert evaluate(parse_rules(UDEV_RULES.read_text()), device) == {}


def test_r15_udev_rule_every_grant_names_one_exact_model() -> None:
    for rule in parse_rules(UDEV_RULES.read_text()):
        assigned = {k: v for k, _a, _op, v in rule.assigns}
        if assigned.get("GROUP") != "seald":
            assert "MODE" not in assigned and "TAG" not in assigned
            continue
        attrs = {a: v for k, a, op, v in rule.matches if k == "ATTR" and op == "=="}
        assert set(attrs) == {"idVendor", "idProduct"}, rule
        assert all(re.fullmatch(r"[0-9a-f]{4}", v) for v in attrs.values()), rule
        assert assigned["MODE"] == "0660"
        assert ("TAG", "", "+=", "seald-token") in rule.assigns
        assert ("ENV", "SEALD_TOKEN", "=", "1") in rule.assigns


# --- sealweb (issue 18): its own unit and user, the same exposure bound ----------------
WEB_UNIT = SYSTEMD_DIR / "sealweb.service"
WEB_EXPOSURE_RE = re.compile(r"Overall exposure level for sealweb\.service: (\d+\.\d+)")

WEB_STACK_PROBE = r"""
import asyncio, ssl
import aiohttp.web, jinja2, grpc, cbor2
from webauthn import verify_authentication_response
import sealweb.app
html = jinja2.Environment(autoescape=True).from_string("{{ x }}").render(x="<b>")
assert html == "&lt;b&gt;", html
async def main():
    app = aiohttp.web.Application()
    app.router.add_get("/", lambda request: aiohttp.web.Response(text="ok"))
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    await runner.cleanup()
asyncio.run(main())
print("WEB-STACK-OK")
"""


def test_r15_sealweb_unit_security_score_at_most_2() -> None:
    result = run([tool("systemd-analyze"), "security", "--offline=true", str(WEB_UNIT)])
    match = WEB_EXPOSURE_RE.search(result.stdout + result.stderr)
    assert match is not None, f"no exposure line in output:\n{result.stdout}\n{result.stderr}"
    assert float(match.group(1)) <= 2.0, result.stdout


def test_r15_sealweb_unit_verifies_clean_and_keeps_least_privilege(tmp_path: Path) -> None:
    fake = tmp_path / "sealweb"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    copy = tmp_path / "sealweb.service"
    copy.write_text(WEB_UNIT.read_text().replace("ExecStart=/usr/bin/sealweb ", f"ExecStart={fake} "))
    result = run([tool("systemd-analyze"), "verify", str(copy)])
    assert result.returncode == 0 and result.stdout.strip() == "" and result.stderr.strip() == "", (
        result.stderr
    )
    d = unit_directives(WEB_UNIT.read_text())
    assert d["Service.ExecStart"] == ["/usr/bin/sealweb --config /etc/sealweb/sealweb.toml"]
    assert d["Service.User"] == ["sealweb"] and d["Service.Group"] == ["sealweb"]
    assert d["Service.PrivateDevices"] == ["yes"] and "Service.DeviceAllow" not in d
    assert d["Service.NoNewPrivileges"] == ["yes"] and d["Service.CapabilityBoundingSet"] == [""]
    assert d["Service.MemoryDenyWriteExecute"] == ["yes"]
    assert "AF_NETLINK" not in d["Service.RestrictAddressFamilies"][0]


def test_r15_sealweb_stack_runs_under_memory_deny_write_execute() -> None:
    result = run([sys.executable, "-c", MDWE_PROBE + WEB_STACK_PROBE])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WEB-STACK-OK" in result.stdout


def test_r15_sealweb_sysusers_makes_its_own_system_user(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for sysusers in ("seald.sysusers", "sealweb.sysusers"):
        users = run([tool("systemd-sysusers"), f"--root={root}", str(SYSTEMD_DIR / sysusers)])
        assert users.returncode == 0, users.stderr
    passwd = (root / "etc" / "passwd").read_text()
    line = next(entry for entry in passwd.splitlines() if entry.startswith("sealweb:"))
    assert int(line.split(":")[2]) < 1000 and line.endswith(":/usr/sbin/nologin")
    group = (root / "etc" / "group").read_text()
    seald_group = next(entry for entry in group.splitlines() if entry.startswith("seald:"))
    assert "sealweb" not in seald_group  # no access to the tokens' device nodes


# --- archive timestamp renewal (issue 16): a daily oneshot sealctl client + its timer ---
ARCHIVE_UNIT = SYSTEMD_DIR / "seald-archive-renew.service"
ARCHIVE_TIMER = SYSTEMD_DIR / "seald-archive-renew.timer"


def test_archive_renew_unit_and_timer_verify_clean(tmp_path: Path) -> None:
    fake = tmp_path / "sealctl"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    unit = tmp_path / ARCHIVE_UNIT.name
    unit.write_text(ARCHIVE_UNIT.read_text().replace("ExecStart=/usr/bin/sealctl ", f"ExecStart={fake} "))
    timer = tmp_path / ARCHIVE_TIMER.name
    timer.write_text(ARCHIVE_TIMER.read_text())
    result = run([tool("systemd-analyze"), "verify", str(unit), str(timer)])
    assert result.returncode == 0 and result.stdout.strip() == "" and result.stderr.strip() == "", (
        result.stderr
    )
    # A broken timer is reported (the check can fail).
    timer.write_text(ARCHIVE_TIMER.read_text().replace("OnCalendar=daily", "OnCalendar=every blue moon"))
    broken = run([tool("systemd-analyze"), "verify", str(unit), str(timer)])
    assert broken.returncode != 0 or "OnCalendar" in broken.stderr, broken.stderr


def test_archive_renew_timer_runs_daily_and_catches_up() -> None:
    d = unit_directives(ARCHIVE_TIMER.read_text())
    assert d["Timer.OnCalendar"] == ["daily"]
    assert d["Timer.Persistent"] == ["true"]
    assert d["Timer.Unit"] == [ARCHIVE_UNIT.name]
    assert d["Install.WantedBy"] == ["timers.target"]


def test_archive_renew_unit_runs_sealctl_archive_renew_with_least_privilege() -> None:
    result = run([tool("systemd-analyze"), "security", "--offline=true", str(ARCHIVE_UNIT)])
    match = re.search(r"Overall exposure level for seald-archive-renew\.service: (\d+\.\d+)", result.stdout)
    assert match is not None and float(match.group(1)) <= 2.0, result.stdout + result.stderr
    d = unit_directives(ARCHIVE_UNIT.read_text())
    assert d["Service.Type"] == ["oneshot"]
    command = d["Service.ExecStart"][0].split()
    assert command[0] == "/usr/bin/sealctl" and command[-2:] == ["archive", "renew"]
    assert "--dry-run" not in command
    assert d["Service.PrivateDevices"] == ["yes"] and "Service.DeviceAllow" not in d
    assert d["Service.NoNewPrivileges"] == ["yes"] and d["Service.CapabilityBoundingSet"] == [""]
    # The arguments are sealctl's own: the command line parses.
    from sealclient.cli import build_parser  # noqa: PLC0415

    args = build_parser().parse_args(
        [a.replace("%d", "/run/credentials/x") for a in command[1:]]
    )
    assert (args.archive_command, args.dry_run) == ("renew", False)
