"""`sealctl seal image SEAL --out FILE.png` over the real seald (RenderSealImage): the
seal's own image for review, as configured (SEAL-RULES R01: round, oval finance seal),
only for principals with a role on that seal (R04)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from seald.signing.seal_image import SEAL_RED, SealImageSpec, render_seal_png
from seald_testing.clients import sealctl
from seald_testing.config import DaemonConfig
from seald_testing.daemon import SealDaemon
from seald_testing.plugin import DaemonFactory

ORGANISATION_LINE = re.compile(r'^organisation = "(.*)"$', re.M)


def _finance_oval(config: DaemonConfig) -> None:
    """The contract seal becomes an oval finance seal; 赵敏 (auditor) loses it."""
    assert config.seal("contract")["type"] == "contract"
    config.set_seal(
        "contract",
        type="finance",
        shape="oval",
        code_number="1101080012345",
        approver_groups=["general_manager"],
    )
    config.set_principal("zhao.min", seals=["official"])


@pytest.fixture(scope="module")
def daemon(module_daemon_factory: DaemonFactory) -> SealDaemon:
    return module_daemon_factory(_finance_oval)


def test_r01_sealctl_seal_image_writes_the_configured_oval_finance_seal(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    out = tmp_path / "finance.png"
    done = sealctl(daemon, "li.na", "seal", "image", "contract", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout
    config = daemon.config_path.read_text(encoding="utf-8")
    organisation = ORGANISATION_LINE.findall(config)[0]
    expected = render_seal_png(
        SealImageSpec("finance", organisation, "合同专用章", code_number="1101080012345", shape="oval"),
        40.0,
    )
    assert out.read_bytes() == expected  # exactly what the daemon seals with
    image = Image.open(io.BytesIO(out.read_bytes()))
    assert image.mode == "RGBA" and image.size == (472, 472)  # 40 mm at 300 dpi
    box = image.getchannel("A").getbbox()
    assert box is not None
    assert (box[2] - box[0]) / (box[3] - box[1]) == pytest.approx(1.5, abs=0.03)
    assert image.getpixel((0, 0))[3] == 0  # type: ignore[index]
    assert image.getpixel((236, box[1] + 3)) == (*SEAL_RED, 255)  # the ring's top


def test_r01_seal_image_dpi_and_round_official_seal(daemon: SealDaemon, tmp_path: Path) -> None:
    out = tmp_path / "official.png"
    done = sealctl(
        daemon, "zhao.min", "--json", "seal", "image", "official", "--dpi", "600", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert '"seal_id": "official"' in done.stdout
    image = Image.open(out)
    side = round(42 / 25.4 * 600)
    assert image.size == (side, side) and image.info["dpi"][0] == pytest.approx(600, abs=1)
    box = image.getchannel("A").getbbox()
    assert box is not None and abs((box[2] - box[0]) - (box[3] - box[1])) <= 2  # round


@pytest.mark.parametrize(
    "who,args,code,reason",
    [
        ("zhao.min", ("contract",), 3, "not_visible"),  # no role on that seal (R04)
        ("li.na", ("nosuch",), 6, "unknown_seal"),
        ("li.na", ("contract", "--dpi", "5000"), 6, "bad_dpi"),
    ],
)
def test_r04_seal_image_refusals_are_named_and_write_nothing(
    daemon: SealDaemon, tmp_path: Path, who: str, args: tuple[str, ...], code: int, reason: str
) -> None:
    out = tmp_path / "seal.png"
    done = sealctl(daemon, who, "seal", "image", *args, "--out", str(out))
    assert done.returncode == code, (done.returncode, done.stderr)
    assert reason in done.stderr
    assert not out.exists() and not list(tmp_path.iterdir())
