"""Redis replies as text: a client without decode_responses answers bytes, one with it str."""

from __future__ import annotations


def reply_text(value: bytes | str | None) -> str:
    """The reply as str; None (a missing field) as ""."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
