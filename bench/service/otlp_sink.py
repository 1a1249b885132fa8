"""An OTLP/HTTP receiver on loopback that accepts and drops every export: a server with tracing on pays for
encoding and POSTing its spans (its own CPU), the sink's share is not the server's."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class _DropHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.posts += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return


class OtlpSink:
    """A context manager: `endpoint` for OTEL_EXPORTER_OTLP_ENDPOINT, `posts` the exports received so far."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _DropHandler)
        self._server.posts = 0  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-sink", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def posts(self) -> int:
        return int(self._server.posts)  # type: ignore[attr-defined]

    def __enter__(self) -> OtlpSink:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
