"""Argparse ``type=`` validators: a bad flag value is refused before any work, naming the allowed range.

Argparse prefixes the message with the flag (``argument --r: must be a number in [0, 1], got '2'``)
and exits 2 with the usage line; nothing reaches the library. Every validator is also a plain
function of one string, so it can be tested and reused by any CLI module.
"""
from __future__ import annotations

import argparse
import math
import re
from typing import Callable

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_HEX32 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def _number(text: str, kind: type = float):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_range(lo: int | None = None, hi: int | None = None, what: str = "") -> Callable[[str], int]:
    """An integer in [lo, hi] (either bound may be open); ``what`` names it in the message."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{what + ' ' if what else ''}must be an integer {_range(lo, hi)}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def float_range(lo: float | None = None, hi: float | None = None, what: str = "", *, open_lo: bool = False
                ) -> Callable[[str], float]:  # fmt: skip
    """A finite number in [lo, hi] ((lo, hi] with ``open_lo``); ``what`` names it in the message."""

    def parse(text: str) -> float:
        value = _number(text, float)
        if (lo is not None and (value < lo or (open_lo and value == lo))) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{what + ' ' if what else ''}must be {_range(lo, hi, open_lo)}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def _range(lo, hi, open_lo: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if open_lo else '['}{lo:g}, {hi:g}]"
    if lo is not None:
        return f"{'>' if open_lo else '>='} {lo:g}"
    return f"<= {hi:g}"


def probability(what: str = "") -> Callable[[str], float]:
    """A probability or share: a number in [0, 1]."""
    return float_range(0.0, 1.0, what)


non_negative = float_range(0.0)
positive = float_range(0.0, open_lo=True)
non_negative_int = int_range(0)
positive_int = int_range(1)


def int_list(lo: int | None = 0) -> Callable[[str], list[int]]:
    """Comma-separated integers, each >= lo, e.g. ``2,4``."""
    one = int_range(lo)

    def parse(text: str) -> list[int]:
        items = [x for x in text.replace(" ", "").split(",") if x]
        if not items:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, e.g. 2,4, got {text!r}")
        try:
            return [one(x) for x in items]
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"in {text!r}: {exc}") from None

    parse.__name__ = "integer list"
    return parse


def address(text: str) -> str:
    """An EVM address: 0x + 40 hex digits."""
    if not _ADDRESS.match(text.strip()):
        raise argparse.ArgumentTypeError(f"expected an address (0x + 40 hex digits), got {text!r}")
    return text.strip()


def private_key(text: str) -> str:
    """A secp256k1 private key: 64 hex digits, 0x optional."""
    if not _KEY.match(text.strip()):
        raise argparse.ArgumentTypeError("expected a private key of 64 hex digits (0x optional); the value is not echoed")
    return text.strip()


def hex32(text: str) -> str:
    """A 32-byte value as 64 hex digits, 0x optional (a secret, a hash)."""
    if not _HEX32.match(text.strip()):
        raise argparse.ArgumentTypeError(f"expected 32 bytes as 64 hex digits (0x optional), got {text!r}")
    return text.strip()


def rpc_url(text: str) -> str:
    """A JSON-RPC endpoint: http(s)://host[:port][/path]."""
    t = text.strip()
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", t):
        raise argparse.ArgumentTypeError(f"expected an http(s):// URL, e.g. http://127.0.0.1:8545, got {text!r}")
    return t


def nonempty(text: str) -> str:
    """A non-blank string (ids, names)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text
