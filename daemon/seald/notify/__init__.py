"""Issue 17: notifications that are never lost (the outbox's deliverer and notifier)."""
