"""Proof of Sampling: a staking market that audits a random share p of inference jobs.

- :mod:`.economics`: when honesty pays (``min_audit_probability``, ``expected_profit``), pure arithmetic.
- :mod:`.market`: web3 SDK over dsperse/chain/contracts/PoSPMarket.sol (Requester, Operator, Challenger, Validator).
- :mod:`.cli`: ``dsperse market ...``.
- :mod:`.reexec`: validator re-execution with EZKL's deterministic witness generator.
- :mod:`.actors`: operators, validators and watchtowers as Ray actors.
- :mod:`.simulation`: Ray simulation of thousands of operators, and the profit-vs-p plot.

See docs/posp.md.
"""
from __future__ import annotations

from dsperse.sampling.economics import Economics, expected_profit, min_audit_probability, min_slash

__all__ = ["Economics", "expected_profit", "min_audit_probability", "min_slash"]
