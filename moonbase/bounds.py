"""The size of every client-written string that storage keeps, declared once.

A table column and the wire field that fills it take their limit from the same
``Bound``, so a value the database cannot hold is refused at the edge with a
400 that names the field, never by the database after the response has gone
(where, on PostgreSQL, one over-long or NUL-bearing value used to poison the
group commit of every account's charges).

Besides its length, a stored string must be text every store can hold:
PostgreSQL refuses NUL (``\\x00``) in ``text``/``varchar``, and no store can
encode a lone UTF-16 surrogate (``"\\ud800"`` is valid JSON, but not UTF-8).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, GetCoreSchemaHandler, StrictStr
from pydantic_core import core_schema
from sqlalchemy import String

# NUL, and the surrogate code points that only exist as halves of a pair in
# UTF-16 (a decoded JSON string can hold one alone).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def whole_number(text: str, max_digits: int = 18) -> int | None:
    """``text`` as a whole number when it is 1 to ``max_digits`` ASCII digits,
    else None. ``str.isdigit`` takes "²" and "①", which ``int`` refuses (a
    500), and ``int`` takes "١" and "1_000", which no client means."""
    if not (text.isascii() and text.isdigit()) or len(text) > max_digits:
        return None
    return int(text)


def unstorable_reason(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL characters (\\u0000)"
    return "must not contain unpaired surrogates (\\ud800-\\udfff)"


def _storable(text: str) -> str:
    reason = unstorable_reason(text)
    if reason is not None:
        raise ValueError(reason)  # pydantic reports it as the field's error
    return text


@dataclass(frozen=True)
class Bound:
    """The limit of one stored string field, in characters.

    ``column()`` is the table's type; as pydantic metadata
    (``Annotated[str, PROMPT_CACHE_KEY]``) it is the wire field's: a strict
    string within the limit that every store can hold."""

    max_length: int

    def column(self) -> String:
        return String(self.max_length)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            _storable, core_schema.str_schema(strict=True, max_length=self.max_length)
        )

    def check(self, text: str, what: str) -> str | None:
        """Why ``text`` cannot be stored as ``what``, or None (for values not
        parsed by a wire model: filenames, query parameters, batch lines)."""
        if len(text) > self.max_length:
            return f"{what} must be at most {self.max_length} characters"
        reason = unstorable_reason(text)
        return None if reason is None else f"{what} {reason}"


# Any stored text without a length limit of its own (JSON documents in Text
# columns are escaped by the encoder, but a raw string is not).
StorableText = Annotated[StrictStr, AfterValidator(_storable)]

ID = Bound(40)  # account, key, file and batch ids (ours: a client's is looked up)
REQUEST_ID = Bound(64)
MODEL = Bound(64)
NETWORK = Bound(64)  # an IP address or CIDR network of a key's allowlist
PROMPT_CACHE_KEY = Bound(256)
SAFETY_IDENTIFIER = Bound(256)
ACCOUNT_NAME = Bound(200)
KEY_NAME = Bound(200)
PROJECT_NAME = Bound(200)
LEDGER_REASON = Bound(200)
LEDGER_REFERENCE = Bound(64)
ACTOR = Bound(200)  # who made an audited change
EMAIL = Bound(254)  # RFC 5321's longest deliverable address
USER_NAME = Bound(200)
# argon2 itself takes any length; a cap keeps one sign-in from costing more
# than hashing a long passphrase.
PASSWORD = Bound(1024)
WEBHOOK_URL = Bound(2048)  # a project's spend-alert webhook (http or https)
FILENAME = Bound(512)
PURPOSE = Bound(32)
CUSTOM_ID = Bound(512)
BATCH_ENDPOINT = Bound(64)
COMPLETION_WINDOW = Bound(16)
# Batch metadata: Moonshot (like OpenAI) allows 16 pairs of short strings.
METADATA_KEY = Bound(64)
METADATA_VALUE = Bound(512)
METADATA_PAIRS = 16

# Limits an operator sets: concurrency and RPM are 32-bit columns, TPM and TPD
# 64-bit ones; no deployment needs more than these.
MAX_REQUEST_LIMIT = 2**31 - 1
MAX_TOKEN_LIMIT = 2**53
