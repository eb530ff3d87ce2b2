"""Old home of the EZKL call wrapper, kept for scripts (benchmarks/) that call EZKL functions directly.

Library code goes through :func:`dsperse.proofsystem.get` instead; everything here lives in
:mod:`dsperse.proofsystem.ezkl` (EZKL-specific) or :mod:`dsperse.proofsystem` (process helpers).
"""
from __future__ import annotations

from dsperse.proofsystem import child_exit, run_child, silenced
from dsperse.proofsystem import short as _short
from dsperse.proofsystem.ezkl import EZKL_VERSION, call, call_async, quiet_logs, run_args

__all__ = ["EZKL_VERSION", "_short", "call", "call_async", "child_exit", "quiet_logs", "run_args", "run_child", "silenced"]
