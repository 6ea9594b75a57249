"""One policy for every human-readable text a client sends (issue 14, item 4).

Reasons, comments, categories, names, labels and document names are shown to other
people: approvers read them in `sealctl status`, auditors in the ledger and in evidence
packages. A character that a terminal or a PDF viewer acts on instead of showing (an
escape sequence, a carriage return that overwrites the line, a bidirectional override
that reverses what follows) lets one person change what another reads. So such text is
refused, never cleaned: what is stored and signed over is exactly what was sent.

Refused:
- C0 controls U+0000-U+001F (tab and newline too: every field is one line), DEL U+007F
  and C1 controls U+0080-U+009F (U+009B is CSI in some terminals);
- every Unicode format character (category Cf): bidirectional embeddings, overrides and
  isolates (U+202A-U+202E, U+2066-U+2069), the marks U+200E/U+200F/U+061C, zero-width
  space U+200B, U+FEFF, soft hyphen, tag characters... — except ZERO WIDTH NON-JOINER
  and ZERO WIDTH JOINER (U+200C/U+200D), which Persian, Indic scripts and emoji need;
- line and paragraph separators U+2028/U+2029 (they break lines like a newline);
- unassigned code points, private use and surrogates (nothing can be known about how
  they are shown).

Pure: used by the API boundary (`seald.api.convert`) for every field and by the
lifecycle functions, so a path that skips one still meets the other.
"""

from __future__ import annotations

import unicodedata

from seald.domain.errors import InvalidInput

MAX_TEXT = 500  # reasons and comments
MAX_CATEGORY = 64
MAX_NAME = 255  # document names (a file system's base-name limit)
MAX_LABEL = 200  # display names, anchor texts, principal names, keys

_ALLOWED_FORMAT = frozenset({"\u200c", "\u200d"})
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cn", "Co", "Cs"})


def is_refused(ch: str) -> bool:
    """True for a character the policy refuses (sealctl escapes the same ones)."""
    return ch not in _ALLOWED_FORMAT and unicodedata.category(ch) in _REFUSED_CATEGORIES


def refused_character(value: str) -> tuple[int, str] | None:
    """The first character the policy refuses, with its position, or None."""
    for position, ch in enumerate(value):
        if is_refused(ch):
            return position, ch
    return None


def describe(ch: str) -> str:
    """U+202E (RIGHT-TO-LEFT OVERRIDE): how a refused character is named in a message."""
    name = unicodedata.name(ch, "")
    if not name and ord(ch) < 0x20:
        name = "control character"
    return f"U+{ord(ch):04X}" + (f" ({name})" if name else "")


def check_text(
    field: str, value: str, *, limit: int = MAX_TEXT, required: bool = False, where: str = ""
) -> str:
    """Refuse `value` for `field` unless it is one line of visible text within `limit`.

    Reasons (`seal-error-reason`): `missing_<field>`, `<field>_too_long`, `bad_<field>`:
    always the plain field name (registered reasons); ``where`` (e.g. "mark 2 (seal
    contract)") only prefixes the message, so a reason never carries client text.
    Returns the value unchanged so callers can check and pass it on in one expression.
    """
    shown = f"{where} {field}" if where else field
    if required and not value.strip():
        raise InvalidInput(f"{shown} is empty: say {field} in words", reason=f"missing_{field}")
    if len(value) > limit:
        raise InvalidInput(
            f"{shown} is {len(value)} characters; shorten it to at most {limit}",
            reason=f"{field}_too_long",
        )
    found = refused_character(value)
    if found is not None:
        position, ch = found
        raise InvalidInput(
            f"{shown} contains {describe(ch)} at character {position + 1}; control, "
            "format and bidirectional characters change what others see: remove it "
            "(one line of visible text)",
            reason=f"bad_{field}",
        )
    return value


def check_document_name(value: str, *, field: str = "document_name") -> str:
    """A document name is a base name: shown to approvers, in the ledger and in evidence.

    No directory part (`/`, `\\`), no NUL, not empty, `.` or `..`, and no leading `..`,
    so a name can never be read as a path anywhere it is shown or used.
    """
    check_text(field, value, limit=MAX_NAME, required=True)
    if "/" in value or "\\" in value:
        raise InvalidInput(
            f"{field} {value!r} contains a path separator; send the file's base name only "
            "(e.g. contract.pdf), without directories",
            reason=f"bad_{field}",
        )
    if value.strip() in (".", "..") or value.startswith(".."):
        raise InvalidInput(
            f"{field} {value!r} is not a file name; send the file's base name (e.g. contract.pdf)",
            reason=f"bad_{field}",
        )
    return value
