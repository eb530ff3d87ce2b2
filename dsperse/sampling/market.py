"""Thin web3 SDK over dsperse/chain/contracts/PoSPMarket.sol, one class per role.

- :class:`Market` deploys or attaches to the contract and reads its state.
- :class:`Requester` configures models, posts jobs (with a commitment to a random audit secret it keeps)
  and reveals the secret after the operator's commitment; :class:`Operator` stakes, commits and reveals
  outputs, proves, unstakes; :class:`Challenger` challenges; :class:`Validator` stakes and submits
  re-execution verdicts. Every role can draw audits, settle jobs and withdraw the wei credited to it.

Every transaction goes through :class:`dsperse.chain.transport.Transport`, signed with the role's private
key and first estimated, so a call that would revert raises :class:`~dsperse.errors.TransactionRevertedError`
with the contract's reason (e.g. ``"PoSP: unregistered model"``) before anything is sent. Methods return the
mined receipt so callers can account for gas exactly (``gasUsed * effectiveGasPrice``). Receipts of both kinds
(linked slice proofs and aggregated proofs) are read from the one ProofOfInference registry.
"""
from __future__ import annotations

import enum
import os
from dataclasses import astuple, dataclass, field
from typing import Any, Sequence

from eth_utils import keccak
from web3 import Web3
from web3.logs import DISCARD

from dsperse.chain import sources
from dsperse.chain.encoding import bytes32_id, felts_to_uints, ints_hash, uints_hash
from dsperse.chain.transport import GasPolicy, Transport, account_from_key

CONTRACT_PATH = sources.CONTRACTS_DIR / "PoSPMarket.sol"
BURN_ADDRESS = "0x000000000000000000000000000000000000dEaD"
ETHER = 10**18
MARKET_GAS = GasPolicy(margin=1.5, extra=250_000)
"""Generous headroom: another party's transaction can land first and change what a market call does (a
validator's vote that becomes the quorum vote also slashes). Unused gas is not charged."""


# -- commitments -------------------------------------------------------------------


def input_commitment(data: bytes | str | Sequence[int]) -> bytes:
    """bytes32 the requester posts for its input.

    For a proven model pass the input's field elements as ints (or EZKL's little-endian hex felts via
    :func:`felt_ints`): the result is keccak256(abi.encodePacked(uint256[])), exactly the inputHash
    ProofOfInference stores from slice 0's public instances. Raw bytes or text are simply hashed.
    """
    if isinstance(data, str):
        data = data.encode()
    if isinstance(data, (bytes, bytearray)):
        return keccak(bytes(data))
    return uints_hash(data)


felt_ints = felts_to_uints
"""EZKL field elements (little-endian hex, as in proofs and witnesses) as unsigned ints."""


def output_hash(outputs: Sequence[int]) -> bytes:
    """bytes32 an operator commits: keccak256(abi.encodePacked(int256[] outputs)), as ProofOfInference hashes
    the signed quantized outputs of the last slice (or of an aggregate)."""
    return ints_hash(outputs)


def seed_commitment(secret: bytes) -> bytes:
    """bytes32 a requester posts for its audit secret: keccak256(abi.encode(bytes32 secret))."""
    if len(secret) != 32:
        raise ValueError(f"the audit secret must be 32 bytes, got {len(secret)}")
    return keccak(bytes(secret))


model_id_bytes = bytes32_id
"""A model id as bytes32: 32 raw bytes, a 64-hex-digit string (e.g. a registry id), or keccak of a name."""


def suffix_mask(slice_count: int, first_proven: int) -> int:
    """Bitmask marking slices first_proven..slice_count-1 as always proven (the only shape allowed)."""
    if not 0 <= first_proven < slice_count:
        raise ValueError(f"first proven slice {first_proven} not in 0..{slice_count - 1}")
    return (1 << slice_count) - (1 << first_proven)


# -- contract-side types -----------------------------------------------------------------


WEI = {"wei": True}
"""MarketConfig field metadata: an amount in wei (the CLI takes 1ether, 30gwei, ...)."""


@dataclass(frozen=True)
class MarketConfig:
    """Mirror of PoSPMarket.Config (amounts in wei, windows in blocks). See docs/posp.md for choosing them.

    ``dsperse market deploy`` derives its flags from these fields (``metadata["flag"]`` where the flag is
    shorter than the field) and their docstrings."""

    min_stake: int = field(default=1 * ETHER, metadata=WEI)
    """Collateral an operator must lock before it may take jobs."""
    slash_amount: int = field(default=1 * ETHER, metadata={**WEI, "flag": "--slash"})
    """S: taken from an operator proven to lie or that misses a proof deadline (at most the minimum stake)."""
    min_challenge_bond: int = field(default=ETHER // 10, metadata={**WEI, "flag": "--bond"})
    """What a challenger locks at least; lost to the operator when the receipt proves the result right."""
    audit_bps: int = field(default=1000, metadata={"min": 0})
    """p in basis points, 0..10000: the share of jobs whose proof is demanded."""
    reporter_share_bps: int = field(default=5000, metadata={"min": 0})
    """Share of a slash paid to whoever proves the lie, at most 5000 so a self-challenge still loses S/2; the
    rest is burned."""
    commit_window: int = field(default=20, metadata={"min": 1})
    """Blocks the operator has to commit an output after the job is posted."""
    audit_delay: int = field(default=2, metadata={"min": 1})
    """k >= 1: the requester reveals its audit secret from the commit block + k (the draw mixes in the commit
    block's hash, which exists only from the next block on)."""
    proof_window: int = field(default=50, metadata={"min": 1})
    """Blocks to prove an audited job."""
    challenge_window: int = field(default=30, metadata={"min": 0})
    """Blocks after the commit to challenge and to reveal the secret, at most 256."""
    unstake_delay: int = field(default=10, metadata={"min": 0})
    """Blocks between unstake and withdraw-stake."""
    validator_quorum: int = field(default=2, metadata={"min": 0, "flag": "--quorum"})
    """Matching validator verdicts that decide an audit at its proof deadline; 0 disables validators."""

    def as_tuple(self) -> tuple:
        return astuple(self)

    @classmethod
    def from_tuple(cls, t: Sequence[Any]) -> "MarketConfig":
        return cls(*t)

    @property
    def p(self) -> float:
        return self.audit_bps / 10_000


class Status(enum.IntEnum):
    NONE = 0
    POSTED = 1
    COMMITTED = 2
    CLEARED = 3
    AUDITED = 4
    CHALLENGED = 5
    SETTLED = 6
    SLASHED = 7
    DECLINED = 8


@dataclass(frozen=True)
class Job:
    model_id: bytes
    input_hash: bytes
    output_hash: bytes
    requester: str
    post_block: int
    status: Status
    part_proven: bool
    output_revealed: bool
    operator: str
    commit_block: int
    challenger: str
    proof_deadline: int
    fee: int
    bond: int
    seed_commit: bytes

    @classmethod
    def from_tuple(cls, t: Sequence[Any]) -> "Job":
        vals = list(t)
        vals[5] = Status(vals[5])
        return cls(*vals)


@dataclass(frozen=True)
class OperatorState:
    stake: int
    unstake_at: int
    open_jobs: int
    open_audits: int
    registered: bool


@dataclass(frozen=True)
class ValidatorState:
    stake: int
    open_verdicts: int
    active: bool


def compile_market() -> tuple[list, str]:
    """(abi, creation bytecode) of PoSPMarket, compiled with the project's solc-js 0.8.20."""
    c = sources.contract("PoSPMarket")
    return c.abi, c.bytecode


# -- transactions ----------------------------------------------------------------------


def send(w3: Web3, key: str, call, value: int = 0, gas: int | None = None) -> dict:
    """Estimate, sign with ``key``, send and wait for ``call`` (a bound contract function or constructor),
    through the shared transport with the market's gas policy; ``gas`` fixes the limit instead."""
    t = Transport(w3, private_key=key, gas=MARKET_GAS)
    if gas is None:
        return t.transact(call, value=value)
    tx = {"data": call.data_in_transaction} if hasattr(call, "data_in_transaction") else {
        "to": call.address, "data": call._encode_transaction_data()}  # fmt: skip
    return t.send(dict(tx, gas=gas, value=value))


def gas_cost(receipt: dict) -> int:
    """Wei the sender paid for a mined transaction."""
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


class Market:
    """A deployed PoSPMarket: reads, event decoding, and the shared transaction path."""

    def __init__(self, w3: Web3, address: str, abi: list | None = None):
        if abi is None:
            abi, _ = compile_market()
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=abi)
        self._senders: dict[str, Transport] = {}

    @classmethod
    def deploy(
        cls,
        w3: Web3,
        deployer_key: str,
        poi_address: str | None = None,
        config: MarketConfig = MarketConfig(),
        validators: Sequence[str] = (),
    ) -> "Market":
        """Deploy a market reading models and receipts from the ProofOfInference at ``poi_address`` and admit
        ``validators`` (each must then stake, :meth:`Validator.stake`, before it can vote)."""
        abi, bytecode = compile_market()
        factory = w3.eth.contract(abi=abi, bytecode=bytecode)
        poi = Web3.to_checksum_address(poi_address) if poi_address else "0x" + "00" * 20
        receipt = send(w3, deployer_key, factory.constructor(poi, config.as_tuple()))
        market = cls(w3, receipt["contractAddress"], abi)
        market.deploy_receipt = receipt
        for v in validators:
            market.add_validator(deployer_key, v)
        return market

    def add_validator(self, owner_key: str, address: str) -> dict:
        """The owner admits a validator."""
        return self.transact(owner_key, "addValidator", Web3.to_checksum_address(address))

    def remove_validator(self, key: str, address: str) -> dict:
        """The owner removes a validator, or a validator leaves (its open verdicts stay slashable)."""
        return self.transact(key, "removeValidator", Web3.to_checksum_address(address))

    # reads
    def config(self) -> MarketConfig:
        return MarketConfig.from_tuple(self.contract.functions.getConfig().call())

    def job(self, job_id: bytes) -> Job:
        return Job.from_tuple(self.contract.functions.getJob(job_id).call())

    def operator(self, address: str) -> OperatorState:
        return OperatorState(*self.contract.functions.operators(Web3.to_checksum_address(address)).call())

    def validator(self, address: str) -> ValidatorState:
        return ValidatorState(*self.contract.functions.validators(Web3.to_checksum_address(address)).call())

    def offer(self, operator: str, model_id: bytes) -> tuple[int, int, int]:
        """(min fee, capacity, open jobs) of ``operator``'s offer for ``model_id``; capacity 0 = not serving it."""
        return tuple(self.contract.functions.offers(Web3.to_checksum_address(operator), model_id).call())

    def credit(self, address: str) -> int:
        return self.contract.functions.credit(Web3.to_checksum_address(address)).call()

    def totals(self) -> dict[str, int]:
        """Book totals; their sum equals the contract's balance (every wei is a stake, escrow or credit)."""
        f = self.contract.functions
        return dict(
            staked=f.totalStaked().call(),
            escrow=f.totalEscrow().call(),
            credit=f.totalCredit().call(),
            burned=f.totalBurned().call(),
            balance=self.w3.eth.get_balance(self.address),
        )

    def events(self, receipt: dict, name: str) -> list[dict]:
        """Decoded events ``name`` emitted in ``receipt`` by this market."""
        return [dict(e["args"]) for e in getattr(self.contract.events, name)().process_receipt(receipt, errors=DISCARD)]

    def logs(self, name: str, from_block: int = 0, to_block: int | str = "latest", **filters) -> list[dict]:
        """Events ``name`` in a block range (argument_filters on indexed fields)."""
        ev = getattr(self.contract.events, name)()
        return [
            dict(e["args"]) | {"blockNumber": e["blockNumber"]}
            for e in ev.get_logs(from_block=from_block, to_block=to_block, argument_filters=filters or None)
        ]

    def transact(self, key: str, fn: str, *args, value: int = 0) -> dict:
        """Call ``fn(*args)`` from ``key``'s account (one transport per key: its chain id is read once)."""
        if key not in self._senders:
            self._senders[key] = Transport(self.w3, private_key=key, gas=MARKET_GAS)
        return self._senders[key].transact(getattr(self.contract.functions, fn)(*args), f"calling {fn}", value)


# -- roles --------------------------------------------------------------------------------


class Role:
    """Something holding a key that acts on a market. Anyone may draw, settle, prove and withdraw."""

    def __init__(self, market: Market, private_key: str):
        self.market = market
        self.key = private_key
        self.address = account_from_key(private_key).address

    def _tx(self, fn: str, *args, value: int = 0) -> dict:
        return self.market.transact(self.key, fn, *args, value=value)

    def draw_audit(self, job_id: bytes) -> tuple[bool, dict]:
        """Draw the audit once the seed block exists; returns (sampled, receipt)."""
        rc = self._tx("drawAudit", job_id)
        return bool(self.market.events(rc, "AuditDrawn")[0]["sampled"]), rc

    def settle(self, job_id: bytes) -> dict:
        return self._tx("settle", job_id)

    def prove_with_receipt(self, job_id: bytes, receipt_id: bytes | None = None) -> dict:
        """Resolve an audit with ProofOfInference receipt ``receipt_id`` (``SubmitResult.receipt_id``; default:
        the job id). It wins over any validator vote, and slashes the validators that voted otherwise."""
        return self._tx("proveWithReceipt", job_id, receipt_id or job_id)

    def prove_part(self, job_id: bytes, receipt_id: bytes) -> dict:
        """Targeted verification: show the receipt of the model's always-proven part for this job."""
        return self._tx("provePart", job_id, receipt_id)

    def withdraw_credit(self) -> dict:
        return self._tx("withdrawCredit")

    @property
    def credit(self) -> int:
        return self.market.credit(self.address)


class Requester(Role):
    def __init__(self, market: Market, private_key: str):
        super().__init__(market, private_key)
        self.secrets: dict[bytes, bytes] = {}
        """job id -> the audit secret committed in postJob (keep it until :meth:`reveal_seed`)."""

    def register_model(
        self, model_id: bytes, slice_count: int = 1, always_proven_mask: int = 0, proven_part_model_id: bytes = b"\0" * 32
    ) -> dict:
        """Configure targeted verification for a registry model (only its registry registrant may)."""
        return self._tx("registerModel", model_id, slice_count, always_proven_mask, proven_part_model_id)

    def post_job(self, model_id: bytes, input_hash: bytes, operator: str, fee: int, secret: bytes | None = None) -> tuple[bytes, dict]:
        """Post a job to ``operator`` (the requester picks) with a commitment to a fresh random audit secret
        (kept in :attr:`secrets`); returns (job_id, receipt)."""
        secret = secret if secret is not None else os.urandom(32)
        rc = self._tx("postJob", model_id, input_hash, Web3.to_checksum_address(operator), seed_commitment(secret), value=fee)
        jid = bytes(self.market.events(rc, "JobPosted")[0]["jobId"])
        self.secrets[jid] = secret
        return jid, rc

    def reveal_seed(self, job_id: bytes, secret: bytes | None = None) -> tuple[bool, dict]:
        """Draw the audit with the job's secret, between auditDelay blocks after the commitment and the end of
        the challenge window; returns (sampled, receipt). Unrevealed, the job is audited for sure."""
        rc = self._tx("revealSeed", job_id, secret if secret is not None else self.secrets[bytes(job_id)])
        return bool(self.market.events(rc, "AuditDrawn")[0]["sampled"]), rc


class Operator(Role):
    def stake(self, amount: int) -> dict:
        return self._tx("stake", value=amount)

    def offer(self, model_id: bytes, min_fee: int, capacity: int) -> dict:
        """Opt in to serve ``model_id`` at ``min_fee`` wei or more, ``capacity`` open jobs at most (0 stops)."""
        return self._tx("offer", model_id, min_fee, capacity)

    def commit(self, job_id: bytes, out_hash: bytes) -> dict:
        return self._tx("commitOutput", job_id, out_hash)

    def reveal_output(self, job_id: bytes, outputs: Sequence[int]) -> dict:
        """Publish the committed outputs (hash-checked): an unsampled job is paid only once they are public."""
        return self._tx("revealOutput", job_id, [int(v) for v in outputs])

    def decline(self, job_id: bytes) -> dict:
        """Refuse a job before committing (its input never arrived): fee back to the requester, no slash."""
        return self._tx("declineJob", job_id)

    def request_unstake(self) -> dict:
        return self._tx("requestUnstake")

    def withdraw_stake(self) -> dict:
        return self._tx("withdrawStake")

    def state(self) -> OperatorState:
        return self.market.operator(self.address)

    def assigned_jobs(self, from_block: int = 0) -> list[dict]:
        """JobPosted events addressed to this operator."""
        return self.market.logs("JobPosted", from_block, operator=self.address)


class Challenger(Role):
    def challenge(self, job_id: bytes, bond: int) -> dict:
        return self._tx("challenge", job_id, value=bond)


class Validator(Role):
    def stake(self, amount: int) -> dict:
        """Stake (S per verdict that may be open at once); only an admitted validator can."""
        return self._tx("stakeValidator", value=amount)

    def leave(self) -> dict:
        return self.market.remove_validator(self.key, self.address)

    def withdraw_stake(self) -> dict:
        """After leaving or removal, once every verdict's job has closed."""
        return self._tx("withdrawValidatorStake")

    def submit_verdict(self, job_id: bytes, out_hash: bytes) -> dict:
        """Vote for the hash a re-execution gave. A quorum decides at the proof deadline unless a receipt
        decides first; a vote a receipt contradicts is slashed."""
        return self._tx("submitVerdict", job_id, out_hash)

    def state(self) -> ValidatorState:
        return self.market.validator(self.address)


def mine(w3: Web3, blocks: int) -> None:
    """Mine ``blocks`` empty blocks on a dev chain (anvil_mine) to move past windows."""
    w3.provider.make_request("anvil_mine", [hex(blocks)])
