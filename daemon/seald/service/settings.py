"""The configuration in force, shared by the service parts.

SIGHUP (seald.runtime.daemon) swaps the whole :class:`~seald.config.Config` here at once;
every part reads ``live.current`` when it needs a setting, so none keeps a stale copy.
"""

from __future__ import annotations

from seald.config import Config


class LiveConfig:
    """One mutable reference to the frozen config; the reload replaces it whole."""

    def __init__(self, config: Config) -> None:
        self.current = config
