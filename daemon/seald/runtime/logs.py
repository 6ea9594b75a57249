"""structlog JSON logs for operators (journald captures stdout).

One event per state change and one canonical line per RPC. A last-line
processor drops any field whose name says it is a secret, so a slip elsewhere
cannot print a PIN.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

SECRET_FIELDS = frozenset(
    {"pin", "old_pin", "new_pin", "user_pin", "so_pin", "password", "key_pem"}
)


def drop_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for name in SECRET_FIELDS & event_dict.keys():
        event_dict[name] = "[redacted]"
    return event_dict


def configure_logging(stream: TextIO = sys.stdout, level: int = logging.INFO) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            drop_secrets,
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
