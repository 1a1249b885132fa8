"""How the service logs (docs/service.md "Logs"): one `logging.config.dictConfig` for the CLI, uvicorn and workers.

- `SI_LOG_FORMAT=json`: one JSON object per line (python-json-logger) with `ts`, `level`, `logger`,
  `message`, `request_id` (null outside a request) and, for an error, `exc_info`;
- `SI_LOG_FORMAT=text`: one human line, ending in `[request_id]` inside a request.

The same dict goes to uvicorn as its `log_config`, so uvicorn's own loggers (and its access log, with
`--access-log`) use these handlers, and each `--workers` process applies it when it starts. It replaces
whatever the root logger had (cli/main.py configures it first for every command).

What is logged never holds a secret or a raw user id: the service logs no header, no body and no session
id, only request ids, counts, causes and model names (tests/test_observability.py reads a request's lines).
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any, Literal

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class TextFormatter(logging.Formatter):
    """The plain format, with the request id appended inside a request."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return line if request_id is None else f"{line} [{request_id}]"


def log_config(level: str, fmt: LogFormat) -> dict[str, Any]:
    """The dictConfig of the service's logging at `level` (debug … error) in `fmt`."""
    formatter: dict[str, Any]
    if fmt == "json":
        formatter = {
            "()": "pythonjsonlogger.json.JsonFormatter", "fmt": JSON_FIELDS,
            "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
        }
    else:
        formatter = {"()": f"{__name__}.TextFormatter", "fmt": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "service.request_id.RequestIdFilter"}},
        "formatters": {"default": formatter},
        "handlers": {"default": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                 "formatter": "default", "filters": ["request_id"]}},
        "root": {"level": level.upper(), "handlers": ["default"]},
        # uvicorn's loggers keep no handlers of their own: their records reach the root's, in this format.
        "loggers": {name: {"handlers": [], "propagate": True} for name in UVICORN_LOGGERS},
    }


def configure_logging(level: str, fmt: LogFormat) -> dict[str, Any]:
    """Apply `log_config` to this process and return it (for uvicorn's `log_config`)."""
    config = log_config(level, fmt)
    logging.config.dictConfig(config)
    return config
