"""Market participants as Ray actors: operators that serve jobs, validators that re-execute audited
jobs, and watchtower challengers that re-execute committed jobs and challenge the wrong ones.

Each agent is a plain class (testable without Ray) with a ``step()`` that reads new events from the
chain and acts on them; :func:`spawn` wraps it in ``ray.remote``. Agents ask for no CPU by default
(they wait on the chain most of the time), so many fit on a small cluster next to real work.

The inference itself is a callable ``infer(model_id, input_hash) -> list[int]`` (quantized outputs):
:class:`EzklInference` runs the EZKL witness generator on inputs the requester handed over off chain.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from web3 import Web3

from dsperse.errors import TransactionRevertedError
from dsperse.sampling.market import Challenger, Market, Operator, Status, Validator, input_commitment, output_hash
from dsperse.sampling.reexec import SliceCircuit, reexecute

log = logging.getLogger(__name__)

Infer = Callable[[bytes, bytes], Sequence[int]]


def quantized_input_commitment(values: Sequence[float], scale: int, visibility: str = "public") -> bytes:
    """The inputHash ProofOfInference will store for this model input: keccak of slice 0's instances for it,
    its quantized field elements (public input) or their Poseidon hash (hashed input)."""
    import numpy as np

    from dsperse.linking.receipts import input_instances
    from dsperse.sampling.market import felt_ints

    return input_commitment(felt_ints(input_instances(np.asarray(values, np.float64), scale, visibility)))


@dataclass
class EzklInference:
    """Honest inference by EZKL witness generation; ``inputs`` maps input commitment -> input values."""

    circuits: Sequence[SliceCircuit]
    inputs: Mapping[bytes, Sequence[float]] = field(default_factory=dict)

    def __call__(self, model_id: bytes, input_hash: bytes) -> list[int]:
        try:
            x = self.inputs[bytes(input_hash)]
        except KeyError:
            raise KeyError(f"no input known for commitment 0x{bytes(input_hash).hex()}; the requester must send it") from None
        return reexecute(self.circuits, x)[0]


class _Agent:
    def __init__(self, rpc_url: str, market_address: str, abi: list, private_key: str, infer: Infer):
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
        self.market = Market(self.w3, market_address, abi)
        self.key = private_key
        self.infer = infer
        self._cursor = 0  # first block not yet scanned

    def _scan(self) -> int:
        """Head block of this scan; events up to it are read now and the cursor moves past it after."""
        return self.w3.eth.block_number

    def _logs(self, event: str, head: int, **filters) -> list[dict]:
        return self.market.logs(event, self._cursor, head, **filters) if head >= self._cursor else []

    def _advance(self, head: int) -> None:
        self._cursor = head + 1

    def get_address(self) -> str:
        return self.role.address


class OperatorAgent(_Agent):
    """Serves the jobs posted to it. ``strategy``: honest, cheat (always), mixed (cheat with prob. q)."""

    def __init__(self, rpc_url, market_address, abi, private_key, infer: Infer, strategy: str = "honest", q: float = 0.0, seed: int = 0):
        super().__init__(rpc_url, market_address, abi, private_key, infer)
        if strategy not in ("honest", "cheat", "mixed"):
            raise ValueError(f"operator strategy must be honest, cheat or mixed, got {strategy!r}")
        self.role = Operator(self.market, private_key)
        self.strategy, self.q, self.rng = strategy, q, random.Random(seed)
        self.cheated: list[str] = []
        self.declined: list[str] = []
        self.models: set[bytes] = set()

    def stake(self, amount: int) -> int:
        return int(self.role.stake(amount)["gasUsed"])

    def offer(self, model_id: bytes, min_fee: int, capacity: int) -> int:
        """Opt in to serve ``model_id`` (the market only lets requesters post offered models to this operator)."""
        gas = int(self.role.offer(model_id, min_fee, capacity)["gasUsed"])
        (self.models.add if capacity else self.models.discard)(bytes(model_id))
        return gas

    def _cheats(self) -> bool:
        return self.strategy == "cheat" or (self.strategy == "mixed" and self.rng.random() < self.q)

    def step(self) -> dict:
        """Commit and reveal an output for every new job assigned to this operator; decline one it cannot serve (a model it
        does not offer, an input that never arrived) and go on with the jobs behind it."""
        served = cheated = declined = 0
        head = self._scan()
        for ev in self._logs("JobPosted", head, operator=self.role.address):
            jid = bytes(ev["jobId"])
            if self.market.job(jid).status != Status.POSTED:
                continue
            model, cheat = bytes(ev["modelId"]), self._cheats()
            try:
                if model not in self.models:
                    raise LookupError(f"model 0x{model.hex()} is not offered by this operator")
                answer = [] if cheat else self.infer(model, bytes(ev["inputHash"]))
            except LookupError as exc:  # KeyError included: an unknown input commitment
                log.warning("declining job 0x%s: %s", jid.hex(), exc)
                self.role.decline(jid)
                self.declined.append("0x" + jid.hex())
                declined += 1
                continue
            if cheat:
                answer = [random.Random(jid).randrange(-1000, 1000)]  # a plausible answer, nothing computed
                cheated += 1
                self.cheated.append("0x" + jid.hex())
            self.role.commit(jid, output_hash(answer))
            self.role.reveal_output(jid, answer)  # the requester gets it on chain; no pay without it
            served += 1
        self._advance(head)
        return {"operator": self.role.address, "served": served, "cheated": cheated, "declined": declined}


class ValidatorAgent(_Agent):
    """Re-executes every job under audit (sampled or challenged) and submits the output hash it got. It must
    be admitted and staked (:meth:`stake`): a verdict a receipt contradicts costs it S."""

    def __init__(self, rpc_url, market_address, abi, private_key, infer: Infer):
        super().__init__(rpc_url, market_address, abi, private_key, infer)
        self.role = Validator(self.market, private_key)

    def stake(self, amount: int) -> int:
        return int(self.role.stake(amount)["gasUsed"])

    def step(self) -> dict:
        head = self._scan()
        pending = {bytes(e["jobId"]) for e in self._logs("AuditDrawn", head) if e["sampled"]}
        pending |= {bytes(e["jobId"]) for e in self._logs("Challenged", head)}
        voted = 0
        for jid in sorted(pending):
            job = self.market.job(jid)
            if job.status not in (Status.AUDITED, Status.CHALLENGED) or job.operator == self.role.address:
                continue
            if self.market.contract.functions.hasVoted(jid, self.role.address).call():
                continue
            self.role.submit_verdict(jid, output_hash(self.infer(job.model_id, job.input_hash)))
            voted += 1
        self._advance(head)
        return {"validator": self.role.address, "voted": voted}


class ChallengerAgent(_Agent):
    """A watchtower: re-executes committed jobs and challenges (with ``bond``) those whose hash is wrong."""

    def __init__(self, rpc_url, market_address, abi, private_key, infer: Infer, bond: int):
        super().__init__(rpc_url, market_address, abi, private_key, infer)
        self.role = Challenger(self.market, private_key)
        self.bond = bond

    def step(self) -> dict:
        checked = challenged = 0
        head = self._scan()
        for ev in self._logs("OutputCommitted", head):
            jid = bytes(ev["jobId"])
            job = self.market.job(jid)
            if job.status not in (Status.COMMITTED, Status.CLEARED):
                continue
            checked += 1
            if output_hash(self.infer(job.model_id, job.input_hash)) != job.output_hash:
                try:
                    self.role.challenge(jid, self.bond)
                    challenged += 1
                except TransactionRevertedError as exc:  # sampled meanwhile, or window closed
                    if "already audited" not in exc.reason:
                        raise
        self._advance(head)
        return {"challenger": self.role.address, "checked": checked, "challenged": challenged}


def spawn(cls: type, *args, num_cpus: float = 0, **kwargs):
    """Start ``cls(*args, **kwargs)`` as a Ray actor (needs ray.init()); agents wait on I/O, so 0 CPUs by default."""
    import ray

    return ray.remote(cls).options(num_cpus=num_cpus).remote(*args, **kwargs)
