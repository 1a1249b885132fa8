"""The `any` path convertor: every character, slashes and newlines included, so that a malformed session id
reaches its route and gets a 422 naming path.session_id instead of a 404 (docs/service.md "Bounded input").

Starlette's `path` convertor is `.*`, which stops at a newline (`s%0Ax` would 404).
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

ANY = "any"


class AnyConvertor(Convertor[str]):
    regex = r"(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return str(value)


register_url_convertor(ANY, AnyConvertor())
