"""The Proof-of-Sampling incentive condition: when is honesty every operator's best reply?

Symbols (per job, in any one currency unit):

- ``p``  audit probability (the market draws it per job, after the output is committed)
- ``R``  reward: the fee an operator is paid when the job settles (refunded to the requester on a slash)
- ``S``  stake slashed when a lie is proven or a deadline is missed
- ``C``  cheating gain: the cost an operator saves by returning an output it did not compute
- ``r``  colluding share: probability that an audit of a colluder is judged by its accomplices, who cover
  it (``r = 0`` for a lone cheater)
- ``K``  the honest compute cost (it cancels out of every comparison; kept for absolute profits)
- ``proof_cost``  what an honest operator spends when audited (proving its job); 0 when validators re-execute

A cheat is caught with probability ``d = p (1 - r)``. Expected profit per job:

- honest:  ``R - K - p * proof_cost``
- cheat:   ``(1 - d) R - (K - C) - d S``
- cheat with probability q: ``q * cheat + (1 - q) * honest`` (linear in q, so a pure strategy is always best)

Honesty strictly dominates cheating iff ``C < d (R + S) - p * proof_cost``, i.e.

    p > p* = C / ((1 - r)(R + S) - proof_cost)

which is the PoSP pure-strategy Nash condition (docs/posp.md derives it and relates it to the paper).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from dsperse.errors import SamplingError

Strategy = Literal["honest", "cheat", "mixed", "collude"]
STRATEGIES: tuple[Strategy, ...] = ("honest", "cheat", "mixed", "collude")


@dataclass(frozen=True)
class Economics:
    """One market's incentive parameters (see the module docstring for the symbols)."""

    R: float
    S: float
    C: float
    r: float = 0.0
    K: float = 0.0
    proof_cost: float = 0.0

    def __post_init__(self) -> None:
        if self.R < 0 or self.S < 0 or self.C < 0 or self.K < 0 or self.proof_cost < 0:
            raise SamplingError(f"R, S, C, K and proof_cost must be >= 0, got {self}")
        if not 0.0 <= self.r <= 1.0:
            raise SamplingError(f"colluding share r must be in [0, 1], got {self.r}")
        if self.C > self.K and self.K > 0:
            raise SamplingError(f"cheating cannot save more (C={self.C}) than the honest cost (K={self.K})")


def _check_p(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise SamplingError(f"audit probability p must be in [0, 1], got {p}")


def detection_probability(p: float, r: float = 0.0) -> float:
    """Probability that one cheated job is proven a lie: audited, and not judged by accomplices."""
    _check_p(p)
    return p * (1.0 - r)


def expected_profit(strategy: Strategy, p: float, e: Economics, q: float = 1.0) -> float:
    """Expected profit of one job under ``strategy`` (``q`` is the cheat probability of "mixed")."""
    _check_p(p)
    honest = e.R - e.K - p * e.proof_cost
    if strategy == "honest":
        return honest
    if strategy in ("cheat", "collude"):
        d = detection_probability(p, e.r if strategy == "collude" else 0.0)
        return (1.0 - d) * e.R - (e.K - e.C) - d * e.S
    if strategy == "mixed":
        if not 0.0 <= q <= 1.0:
            raise SamplingError(f"cheat probability q must be in [0, 1], got {q}")
        return q * expected_profit("cheat", p, e) + (1.0 - q) * honest
    raise SamplingError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")


def cheating_advantage(p: float, e: Economics, colluding: bool = False) -> float:
    """Expected profit of cheating minus honesty, per job: ``C - d (R + S) + p proof_cost``."""
    d = detection_probability(p, e.r if colluding else 0.0)
    return e.C - d * (e.R + e.S) + p * e.proof_cost


def min_audit_probability(R: float, S: float, C: float, r: float = 0.0, proof_cost: float = 0.0) -> float:
    """p* = C / ((1 - r)(R + S) - proof_cost): above it honesty strictly dominates cheating.

    Returns ``math.inf`` when no p works (the slash cannot outweigh the gain even at p = 1 after
    collusion and proving costs); a value above 1 also means "not reachable: raise S".
    """
    Economics(R=R, S=S, C=C, r=r, proof_cost=proof_cost)  # validates
    denom = (1.0 - r) * (R + S) - proof_cost
    if denom <= 0:
        return math.inf
    return C / denom


def min_slash(p: float, R: float, C: float, r: float = 0.0, proof_cost: float = 0.0) -> float:
    """Smallest S that makes honesty dominant at audit probability p (``math.inf`` if p (1-r) == 0)."""
    d = detection_probability(p, r)
    if d == 0:
        return math.inf
    return max(0.0, (C + p * proof_cost) / d - R)


def is_deterrent(p: float, e: Economics, colluding: bool = False) -> bool:
    """True when an operator loses money, in expectation, on every job it cheats."""
    return cheating_advantage(p, e, colluding) < 0


def verification_overhead(p: float) -> float:
    """Fraction of jobs that must be proven, relative to proving every job (challenges add to it)."""
    _check_p(p)
    return p


MAX_REPORTER_SHARE = 0.5
"""PoSPMarket.MAX_REPORTER_SHARE_BPS / 10000: the most of a slash a reporter may receive."""


def self_report_penalty(S: float, reporter_share: float) -> float:
    """What a cheater still loses when it reports itself (a sock-puppet challenge gets the reporter share
    back): ``(1 - share) S``. The market caps the share at 1/2, so a self-report costs at least ``S / 2``;
    where watchtowers make self-reporting the cheater's best reply, deter with this in place of S."""
    if not 0.0 <= reporter_share <= MAX_REPORTER_SHARE:
        raise SamplingError(f"reporter share must be in [0, {MAX_REPORTER_SHARE}], got {reporter_share}")
    return (1.0 - reporter_share) * S
