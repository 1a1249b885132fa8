"""The request id (docs/service.md "Request ids"): one per HTTP request, in its answer, its log lines and its trace.

A caller's `X-Request-ID` is kept when it is 1-64 characters of `[A-Za-z0-9._:-]` (nothing that could
break a log line, a header or a JSON string); anything else, or none, gets a fresh id. A fresh id is this
process's random prefix and a counter: unique across replicas and restarts, and far cheaper than a uuid4
on the click's path.

The id lives in a context variable, set by `BoundaryMiddleware` (service/boundary.py) for the request's
task: every log record made while it runs carries it (`RequestIdFilter`), and so does every error body
(`error_response`).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
HEADER_KEY = REQUEST_ID_HEADER.lower().encode()
MAX_LENGTH = 64
_VALID = re.compile(rb"[A-Za-z0-9._:-]{1,%d}" % MAX_LENGTH)

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestIds:
    """Makes or accepts the id of each request; one per process."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}-{next(self._counter):x}"

    def of(self, headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]) -> str:
        """The caller's valid X-Request-ID, else a fresh id."""
        for name, value in headers:
            if name == HEADER_KEY:
                if _VALID.fullmatch(value):
                    return value.decode("ascii")
                break
        return self.new()


def current_request_id() -> str | None:
    return request_id_var.get()


class RequestIdFilter(logging.Filter):
    """Puts the running request's id (or None outside a request) on every record, as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True
