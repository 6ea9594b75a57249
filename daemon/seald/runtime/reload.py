"""SIGHUP: which configuration changes a running daemon can take, and which need a restart.

A reload swaps in a new, fully validated ``Config`` or changes nothing. What is bound
at start — the listening socket and its TLS material, the state directory and the
host name in every audit record, the PKCS#11 module and which token/key/certificate
each seal uses, the metrics endpoint, the token allow-list — needs
``systemctl restart seald``. A config that changes any of these is refused as a whole
(the old one stays), so the running daemon never mixes two configurations.

Reloadable: principals and their certificates (the allow-list), roles and seals per
principal, [requests] limits and approval count/TTL, and per seal: type, organisation,
display name (the seal image is redrawn), categories, size, required approvals, hours.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from seald.config import Config

# (what, how to read it) for every setting that is only read at start.
_RESTART_ONLY_SERVER = ("listen", "host_name", "tls_cert", "tls_key", "client_ca", "seal_workers")
_RESTART_ONLY_SEAL = ("token_label", "token_serial", "key_label", "certificate")


def restart_only_changes(
    old: Config,
    new: Config,
    old_certificates: Mapping[str, bytes],
    new_certificates: Mapping[str, bytes],
) -> list[str]:
    """Keys whose new value would only take effect after a restart (empty: reloadable)."""
    changed = [
        f"server.{key}"
        for key in _RESTART_ONLY_SERVER
        if getattr(old.server, key) != getattr(new.server, key)
    ]
    if old.store.state_dir != new.store.state_dir:
        changed.append("store.state_dir")
    if old.pkcs11.module != new.pkcs11.module:
        changed.append("pkcs11.module")
    if old.metrics != new.metrics:
        changed.append("metrics.listen")
    if getattr(old, "audit", None) != getattr(new, "audit", None):  # issue 5's [audit]
        changed.append("audit")
    if getattr(old, "tokens", None) != getattr(new, "tokens", None):  # issue 3's [tokens]
        changed.append("tokens")
    added = sorted(set(new.seals) - set(old.seals))
    removed = sorted(set(old.seals) - set(new.seals))
    changed += [f"seal[{s}] (added)" for s in added] + [f"seal[{s}] (removed)" for s in removed]
    for seal_id in sorted(set(old.seals) & set(new.seals)):
        before, after = old.seals[seal_id], new.seals[seal_id]
        changed += [
            f"seal[{seal_id}].{key}"
            for key in _RESTART_ONLY_SEAL
            if getattr(before, key) != getattr(after, key)
        ]
        if f"seal[{seal_id}].certificate" not in changed and old_certificates.get(
            seal_id
        ) != new_certificates.get(seal_id):
            changed.append(f"seal[{seal_id}].certificate (file content)")
    return changed


def config_digest(text: bytes) -> str:
    """SHA-256 of the config file as read, recorded with every reload (R10)."""
    return hashlib.sha256(text).hexdigest()
