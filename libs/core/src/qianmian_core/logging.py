"""Structured JSON logging (structlog) with personal identifiers masked on every line."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

from qianmian_core.masking import mask_value


def _mask_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    return {k: mask_value(v) for k, v in event_dict.items()}


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


class _StdoutLogger:
    """Writes each rendered line to whatever ``sys.stdout`` is *now*.

    Binding the stream once at configuration time breaks when stdout is swapped later (test
    capture, daemonising); looking it up per line costs one attribute read.
    """

    def msg(self, message: str) -> None:
        sys.stdout.write(message + "\n")

    log = debug = info = warn = warning = error = err = critical = fatal = exception = msg


def _stdout_logger_factory(*_args: Any) -> _StdoutLogger:
    return _StdoutLogger()


class _CurrentStdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that always writes to the current ``sys.stdout``."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route structlog and the standard library through one JSON renderer with masking."""
    numeric = logging.getLevelName(level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, _mask_processor, structlog.processors.JSONRenderer(serializer=_orjson_dumps)],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stdout_logger_factory,
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = _CurrentStdoutHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _mask_processor,
                structlog.processors.JSONRenderer(serializer=_orjson_dumps),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; every value it logs is masked."""
    return structlog.get_logger(name)
