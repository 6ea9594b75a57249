"""The seals as the daemon sees them now: config + registered certificate + lifecycle status."""

from __future__ import annotations

from seald.config import Config
from seald.domain.errors import InvalidInput
from seald.domain.model import Seal
from seald.domain.seals import SealState, apply_state
from seald.service.settings import LiveConfig
from seald.store import seals as seal_tables
from seald.store.database import Store, Transaction
from seald.tokens.manager import TokenManager


class SealCatalog:
    """Looks a seal up by id; holds the committed lifecycle status of each (R02)."""

    def __init__(self, live: LiveConfig, store: Store, tokens: TokenManager) -> None:
        self._live = live
        self._store = store
        self._tokens = tokens
        # Seal lifecycle status (R02) as committed; transactions read the database itself.
        self.states: dict[str, SealState] = {}

    @property
    def config(self) -> Config:
        return self._live.current

    def seal(self, seal_id: str, tx: Transaction | None = None) -> Seal:
        """The seal with its lifecycle status; inside a transaction, read from the database."""
        if seal_id not in self.config.seals:
            known = ", ".join(sorted(self.config.seals))
            raise InvalidInput(
                f"unknown seal {seal_id!r}; known seals: {known}", reason="unknown_seal"
            )
        state = (
            seal_tables.get_state(tx.conn, seal_id)
            if tx is not None
            else self.states.get(seal_id)
        )
        return apply_state(
            self.config.seal(seal_id, self._tokens.certificate_sha256(seal_id)), state
        )

    async def load(self) -> None:
        """Read the committed statuses and the certificates imported through the API."""
        # Certificates imported through the API (R02) are the registered ones.
        self.states, imported = await self._store.registered_seals()
        for seal_id, der in imported.items():
            if seal_id in self.config.seals:
                self._tokens.set_certificate(seal_id, der)
