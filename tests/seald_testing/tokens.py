"""SoftHSM tokens of the fixture tree, seen from the test process."""

from __future__ import annotations

from pathlib import Path

from fixture_layout import SealFixtures

from seald.config import load_config
from seald.runtime.daemon import load_seal_certificates
from seald.tokens.manager import TokenManager


def token_dir(fx: SealFixtures, seal_id: str) -> Path:
    """SoftHSM's directory for a seal's token (the one whose token.object holds its label)."""
    label = fx.seals[seal_id].token_label.encode()
    for d in (fx.root / "tokens").iterdir():
        if label in (d / "token.object").read_bytes():
            return d
    raise AssertionError(f"no token directory for {seal_id}")


async def unlocked_tokens(fx: SealFixtures) -> TokenManager:
    """The daemon's TokenManager in process, the contract token unlocked by its custodian."""
    config = load_config(fx.config)
    tokens = TokenManager(fx.module, config.seals, load_seal_certificates(config))
    await tokens.refresh()
    await tokens.unlock("contract", fx.seals["contract"].user_pin, "liu.yang")
    return tokens
