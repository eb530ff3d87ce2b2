"""The single place that calls EZKL.

EZKL reports failures three ways: a ``False`` return, a Python exception, or
a Rust panic that arrives as ``pyo3_runtime.PanicException`` (a BaseException).
This wrapper turns all three into the library's own errors with the stage named.
"""
from __future__ import annotations

import asyncio
import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

import ezkl

from .errors import DsperseError

T = TypeVar("T")

EZKL_VERSION = "22.3.0"


def call(stage: str, error: type[DsperseError], fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` and re-raise anything it throws as ``error`` naming ``stage``."""
    try:
        result = fn(*args, **kwargs)
    except DsperseError:
        raise
    except BaseException as exc:  # PanicException derives from BaseException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise error(f"EZKL {stage} failed: {_short(exc)}") from exc
    if result is False:
        raise error(f"EZKL {stage} returned False")
    return result


def call_async(stage: str, error: type[DsperseError], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Await one of EZKL's coroutine functions (they need a running loop)."""

    async def runner() -> Any:
        return await fn(*args, **kwargs)

    return call(stage, error, lambda: asyncio.run(runner()))


@contextmanager
def silenced() -> Iterator[None]:
    """Send the process's stdout and stderr to /dev/null: calibrate_settings prints large tables from Rust.

    Failures still arrive as exceptions, so nothing needed is lost.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in saved:
            os.dup2(devnull, fd)
        yield
    finally:
        for fd, keep in saved.items():
            os.dup2(keep, fd)
            os.close(keep)
        os.close(devnull)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[-1] if text else type(exc).__name__
    return msg[:500]


def quiet_logs() -> None:
    """EZKL logs every step at info level through Python logging ("ezkl.*"); keep user output readable."""
    import logging

    logging.getLogger("ezkl").setLevel(logging.WARNING)


def run_args(**fields: Any) -> "ezkl.PyRunArgs":
    ra = ezkl.PyRunArgs()
    for k, v in fields.items():
        setattr(ra, k, v)
    return ra
