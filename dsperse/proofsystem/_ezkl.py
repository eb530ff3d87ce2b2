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
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import ezkl

from dsperse.errors import DsperseError

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


def run_child(module: str, args: list[str], error: type[DsperseError], what: str, timeout: float, expect: Path) -> None:
    """Run ``python -m module *args`` and check it wrote ``expect``.

    EZKL's async calls (create_evm_verifier*) leave the interpreter aborting at exit (code 134), so they run in
    a child process that leaves with os._exit; this is the parent's half.
    """
    import subprocess

    env = dict(os.environ)
    env.setdefault("RUST_LOG", "error")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what} took over {timeout:.0f}s") from exc
    if proc.returncode != 0 or not Path(expect).is_file():
        tail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()[-5:]
        raise error(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}")


def child_exit(work: Callable[[], Any]) -> None:
    """The child's half of :func:`run_child`: run ``work`` and leave with ``os._exit`` (1 with the error on stderr).

    Skipping interpreter finalization is the point: EZKL's async runtime aborts it (exit 134).
    """
    try:
        work()
    except BaseException as exc:  # noqa: BLE001 - report and leave without running EZKL's finalizers
        print(f"error: {exc}", file=sys.stderr, flush=True)
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)


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
