"""Redis round trips counted from the clients' side: what MONITOR shows clients sending, by command name.

MONITOR prints every command a client sends, and also every command a Lua script runs inside Redis,
marked `[<db> lua]`; those cost no round trip, so they are left out. INFO commandstats cannot tell
the two apart: a plain HGET from a client and a script's HGET land in the same counter. Each command
of a pipeline counts once (as commandstats counted it); MONITOR hides administrative commands (CONFIG,
DEBUG, ...), which no click path sends.

MONITOR costs Redis CPU for every command it copies to the watcher, so measure CPU outside a counted
window. The count is synchronous: `take()` sends a marker (an ECHO on the counter's own connection) and
waits until the watcher has read it, so every command sent before the call is in the answer.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from types import TracebackType

import redis

_MARK_TIMEOUT_S = 30.0


class RoundTripCounter:
    """Counts the commands clients send to one Redis server while it is open (a context manager)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._tag = f"si-round-trips-{uuid.uuid4().hex}"
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._seen = threading.Condition(self._lock)
        self._marks_seen: set[str] = set()
        self._monitor: redis.client.Monitor | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> RoundTripCounter:
        self._monitor = self._client.monitor().__enter__()  # returns once Redis answered MONITOR's OK
        self._thread = threading.Thread(target=self._watch, name="redis-monitor", daemon=True)
        self._thread.start()
        self.take()  # anything before this point is not ours to count
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._mark("stop")
        if self._thread is not None:
            self._thread.join(timeout=_MARK_TIMEOUT_S)
        if self._monitor is not None:
            self._monitor.__exit__(kind, exc, tb)

    def take(self) -> Counter[str]:
        """Commands sent by clients since the last take (or since the counter opened), by lower-case name."""
        self._mark(uuid.uuid4().hex)
        with self._lock:
            taken, self._counts = self._counts, Counter()
        return taken

    def _mark(self, name: str) -> None:
        marker = f"{self._tag}:{name}"
        self._client.echo(marker)
        with self._seen:
            if not self._seen.wait_for(lambda: marker in self._marks_seen or self._error is not None,
                                       timeout=_MARK_TIMEOUT_S):
                raise TimeoutError(f"MONITOR did not show the counter's marker within {_MARK_TIMEOUT_S:.0f} s")
            if self._error is not None:
                raise RuntimeError("the MONITOR watcher failed") from self._error
            self._marks_seen.discard(marker)

    def _watch(self) -> None:
        assert self._monitor is not None
        connection = self._monitor.connection
        try:
            while True:
                line = connection.read_response()
                name, arg = _command(line)
                if name is None:
                    continue
                if name == "echo" and arg.startswith(self._tag):
                    with self._seen:
                        self._marks_seen.add(arg)
                        self._seen.notify_all()
                    if arg.endswith(":stop"):
                        return
                    continue
                with self._lock:
                    self._counts[name] += 1
        except BaseException as exc:  # surfaced to the caller by the next mark
            with self._seen:
                self._error = exc
                self._seen.notify_all()


def _command(line: bytes | str) -> tuple[str | None, str]:
    """(command name, its first argument) of a MONITOR line from a client; (None, "") for a script's own call.

    A line reads `1700000000.123456 [0 127.0.0.1:50000] "evalsha" "3f2a..." ...`; inside a script, `[0 lua]`.
    """
    text = line.decode(errors="replace") if isinstance(line, bytes) else line
    head, sep, rest = text.partition("] ")
    if not sep or head.endswith(" lua"):
        return None, ""
    words = rest.split('"')  # ['', 'evalsha', ' ', '3f2a...', ...]
    name = words[1].lower() if len(words) > 1 else ""
    arg = words[3] if len(words) > 3 else ""
    return (name or None), arg
