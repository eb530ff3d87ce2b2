"""Put a run's receipt on an EVM chain through the ProofOfInference registry, and read it back.

    chain = dsperse.chain.local()              # fresh anvil, stopped on close/exit
    model_id = chain.register_model(run)       # deploys slice verifiers (cached) + registers
    chain.submit(run, job_id="job-1")          # a commitment, then links + every slice proof
    print(chain.receipt("job-1").output)

A run proven with ``aggregate=True`` is submitted as ONE aggregated proof to the same registry (its model
registered with the aggregate verifier and instance layout, see dsperse.aggregation.receipt); both kinds of
receipt are read back the same way. Transactions go through :class:`~dsperse.chain.transport.Transport`,
values are encoded by :mod:`dsperse.chain.encoding`.

Every failure is a :class:`~dsperse.errors.ChainError`: the node is down
(:class:`ChainUnavailableError`; a submission is then kept in the run
directory as ``pending_submit.json`` and lands with a later ``submit``), a
transaction reverts (:class:`TransactionRevertedError` with the contract's
reason), or it needs more gas than a block holds (:class:`OutOfGasError`).
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from eth_abi import encode as abi_encode
from eth_utils import keccak
from web3 import Web3

from dsperse import proofsystem
from dsperse.artifacts import Circuit, Edge, Run
from dsperse.chain import sources
from dsperse.chain.anvil import LocalChain
from dsperse.chain.deployments import Deployments, default_path
from dsperse.chain.encoding import FIELD, commitment, felt_to_uint, hex32, job_id_bytes, proofs_digest, signed
from dsperse.chain.toolchain import EIP170_LIMIT, CompiledContract
from dsperse.chain.transport import Transport, http_web3
from dsperse.chain.verifiers import slice_verifier
from dsperse.errors import ChainError, ChainUnavailableError, LinkError, OutOfGasError
from dsperse.linking import links as linking
from dsperse.util import storage

if TYPE_CHECKING:
    from dsperse.tools.ledger import Ledger

log = logging.getLogger(__name__)

REGISTRY_NAME = "ProofOfInference"
REGISTRY_SOURCE = sources.CONTRACTS_DIR / f"{REGISTRY_NAME}.sol"
PENDING_FILE = "pending_submit.json"
SUBMITTED_FILE = "chain_receipt.json"
MAX_CALLDATA = 120 * 1024
"""Largest calldata one submission part carries: geth's txpool refuses transactions over 128 KiB."""

__all__ = ["FIELD", "felt_to_uint", "job_id_bytes", "proofs_digest", "signed"] + [  # re-exported from .encoding
    "AggregatedSubmission", "ModelSpec", "OnchainReceipt", "OutOfGasError", "ReceiptChain", "Submission", "SubmitResult",
    "commitment_of", "default_job_id", "expected_hashes", "model_spec", "registry_model_id", "submission_from_run",
    "verifier_codehashes",
]  # fmt: skip


@dataclass(frozen=True)
class Submission:
    """Everything one ``submit`` transaction carries; self-contained so it can wait in a file."""

    job_id: str
    """0x-prefixed bytes32."""
    model_id: str
    """0x-prefixed bytes32: the model's registry id (:func:`registry_model_id`, a content hash), not the run
    receipt's sha256 label."""
    proofs: tuple[str, ...]
    instances: tuple[tuple[int, ...], ...]

    def to_json(self) -> dict:
        return {"job_id": self.job_id, "model_id": self.model_id, "proofs": list(self.proofs),
                "instances": [[str(v) for v in col] for col in self.instances]}  # fmt: skip

    @classmethod
    def from_json(cls, d: dict) -> "Submission":
        return cls(d["job_id"], d["model_id"], tuple(d["proofs"]), tuple(tuple(int(v) for v in col) for col in d["instances"]))


def default_job_id(run: Run) -> str:
    """The run's own job id, else one derived from its proofs (so resubmitting the same run is a replay)."""
    if run.receipt.job_id:
        return run.receipt.job_id
    h = hashlib.sha256(b"dsperse-job\0" + run.receipt.model_id.encode())
    for p in run.receipt.proof_hashes:
        h.update(p.encode())
    return "0x" + h.hexdigest()


def submission_from_run(run: Run, job_id: str | bytes | None = None) -> Submission:
    """Read the run's slice proofs into the calldata the registry expects (no chain needed: the registry id
    is computed from the slices' verifier code)."""
    proofs, instances = [], []
    for rec in sorted(run.proofs, key=lambda p: p.slice_index):
        path = Path(rec.path)
        if not path.is_file():
            raise ChainError(f"cannot submit: proof of slice {rec.slice_index} missing at {path}")
        pf = proofsystem.get().read_proof(path)
        if pf.transcript not in (None, "evm"):
            raise ChainError(f"{path}: proof transcript is {pf.transcript}, the EVM verifier needs 'evm'")
        proofs.append("0x" + pf.proof.hex())
        instances.append(tuple(felt_to_uint(f) for col in pf.instances for f in col))
    jid = job_id if job_id is not None else default_job_id(run)
    key = registry_model_id(model_spec(run))
    return Submission(hex32(job_id_bytes(jid)), key, tuple(proofs), tuple(instances))


@dataclass(frozen=True)
class AggregatedSubmission:
    """What one ``submitAggregated`` transaction carries: ONE aggregate proof of the whole model."""

    job_id: str
    """0x-prefixed bytes32."""
    model_id: str
    """0x-prefixed bytes32: the aggregated model's registry id (ProofOfInference.aggregatedKey)."""
    proof: str
    """0x hex of the EVM-transcript aggregate proof."""
    instances: tuple[int, ...]
    input_hash: str = hex32(b"\0" * 32)
    """0x bytes32 the job's input must hash to (the pin); zero skips the check."""

    @property
    def proofs(self) -> tuple[str, ...]:
        """The proofs the commitment covers (one)."""
        return (self.proof,)


def commitment_of(sub: Submission | AggregatedSubmission, prover: str) -> bytes:
    """What ``prover`` commits (ReceiptBase.commitmentOf) before it reveals the proofs of ``sub``."""
    return commitment(prover, job_id_bytes(sub.job_id), job_id_bytes(sub.model_id), proofs_digest(sub.proofs))


@dataclass(frozen=True)
class SubmitResult:
    job_id: str
    tx_hash: str | None
    """None when the receipt was already on chain from an earlier attempt."""
    block: int
    gas_used: int | None
    """Gas of every transaction this submission sent: the commitment and each part."""
    registry: str
    chain_id: int
    receipt_id: str
    """0x bytes32 under which the registry stores this receipt: receiptId(prover, jobId), bound to the chain and
    the registry (what a market's proveWithReceipt names)."""
    parts: int = 1
    """Transactions the proofs took (a plan too big for one block is sent in parts); the commitment is one more."""


@dataclass(frozen=True)
class OnchainReceipt:
    """A stored receipt, as the registry reports it."""

    job_id: str
    model_id: str
    """hex, no 0x: the registered model's label, which compares equal to ``run.receipt.model_id``."""
    registry_model_id: str
    """hex, no 0x: the registry's content id of the model (label, verifier code, scales, counts, links)."""
    receipt_id: str
    input_hash: str
    """0x keccak256 of slice 0's public input field elements (abi.encodePacked uint256[])."""
    output_hash: str
    output: tuple[float, ...]
    """De-quantized with the model's output scale."""
    output_ints: tuple[int, ...]
    output_scale: int
    prover: str
    block: int


def expected_hashes(sub: Submission, num_inputs: int, num_outputs: int) -> tuple[str, str]:
    """(inputHash, outputHash) the contract will store for ``sub``: lets a client check a receipt offline."""
    ins = sub.instances[0][:num_inputs]
    outs = [signed(v) for v in sub.instances[-1][len(sub.instances[-1]) - num_outputs :]]
    ih = keccak(b"".join(v.to_bytes(32, "big") for v in ins))
    oh = keccak(b"".join(v.to_bytes(32, "big", signed=True) for v in outs))
    return hex32(ih), hex32(oh)


# -- model parameters from circuits ---------------------------------------------------------


OnchainLink = tuple[int, int, int, int, int]
"""A registered link: (producer slice, producer byte offset, consumer slice, consumer byte offset, length in bytes)."""


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    """The off-chain model id (sha256 over the verifying keys): the registration's label."""
    circuits: tuple[Circuit, ...]
    """The slice circuits in verifier order (slice i's proof goes to verifier i)."""
    input_scale: int
    output_scale: int
    """Fixed-point scales of the model's input and output: the registry turns public felts back into numbers."""
    num_inputs: int
    num_outputs: int
    """How many public input felts open the first slice's instances and output felts close the last one's
    (0 inputs: the input is committed, not public); the receipt's input/output hashes cover exactly these."""
    links: tuple[OnchainLink, ...] = ()
    """The link table the registry checks on every submit: one entry per edge, every column of its tensor.
    Slices are positions in ``circuits`` (= the verifier list)."""

    @property
    def io(self) -> tuple[int, int, int, int]:
        """ProofOfInference.IO: (input scale, output scale, public inputs, public outputs)."""
        return self.input_scale, self.output_scale, self.num_inputs, self.num_outputs

    def registration(self, verifiers: Sequence[str]) -> tuple:
        """The arguments of ProofOfInference.modelKey / registerModel / registerPart for these deployed verifiers."""
        return job_id_bytes(self.model_id), list(verifiers), self.io, [list(ln) for ln in self.links]


def _instance_shapes(c: Circuit) -> list[list[int]]:
    return storage.read_json(Path(c.settings)).get("model_instance_shapes", [])


def _prod(xs: Sequence[int]) -> int:
    n = 1
    for x in xs:
        n *= int(x)
    return n


def _chain_edges(circuits: Sequence[Circuit]) -> list[Edge]:
    """Chain edges between consecutive circuits, named by their slice indices (which need not start at 0)."""
    idx = [c.slice_index for c in circuits]
    return [Edge(e.tensor, idx[e.producer], e.output_index, idx[e.consumer], e.input_index, e.shape)
            for e in linking.chain_edges(circuits)]  # fmt: skip


def model_spec(circuits_or_run: Run | Sequence[Circuit] | Path | str) -> ModelSpec:
    """What the registry records for a model: its id, scales, public input/output counts and link table.

    The links come from the run's plan (every edge, a graph or a chain); given only circuits, they form a chain.
    """
    from dsperse.linking.receipts import input_instance_count
    from dsperse.linking.receipts import model_id as compute_model_id

    src = circuits_or_run
    if isinstance(src, (str, Path)):
        src = Run.load(src)
    circuits = tuple(sorted(src.circuits if isinstance(src, Run) else src, key=lambda c: c.slice_index))
    if not circuits:
        raise ChainError("a model needs at least one slice circuit")
    last = circuits[-1]
    if last.output_visibility != "public":
        raise ChainError(f"the last slice's output is {last.output_visibility}; a receipt needs it public")
    edges = src.plan.edges if isinstance(src, Run) else _chain_edges(circuits)
    position = {c.slice_index: i for i, c in enumerate(circuits)}
    try:
        table = linking.links(circuits, edges)
    except LinkError as exc:
        raise ChainError(f"cannot link the slices on chain: {exc}") from exc
    except KeyError as exc:
        raise ChainError(f"an edge of the plan names slice {exc.args[0]}, which has no circuit") from exc
    onchain = tuple(
        (position[ln.edge.producer], ln.producer_offset, position[ln.edge.consumer], ln.consumer_offset, ln.length)
        for ln in table
    )
    first_shapes, last_shapes = _instance_shapes(circuits[0]), _instance_shapes(last)
    num_in = input_instance_count(circuits[0], _prod(first_shapes[0]) if first_shapes else 0)
    num_out = _prod(last_shapes[-1]) if last_shapes else 0
    if num_out == 0:
        raise ChainError(f"{last.settings}: no public output shape in model_instance_shapes")
    return ModelSpec(compute_model_id(circuits), circuits, circuits[0].input_scale, last.output_scale, num_in, num_out, onchain)


def verifier_codehashes(spec: ModelSpec) -> list[bytes]:
    """keccak256 of each slice verifier's runtime code, as the chain reports ``extcodehash`` once deployed."""
    return [
        keccak(hexstr=slice_verifier(Path(c.vk), Path(c.settings), Path(c.srs), size_limit=None).contract.deployed_bytecode)
        for c in spec.circuits
    ]


def registry_model_id(spec: ModelSpec, codehashes: Sequence[bytes] | None = None) -> str:
    """The registry's id of a model (ProofOfInference.modelKey), 0x-prefixed: a hash of the label, the verifier
    code, scales, I/O counts and link table. Content-addressed, so a squatter's registration of the same label
    with anything else has another id, and no chain is needed to compute it."""
    code = list(codehashes) if codehashes is not None else verifier_codehashes(spec)
    enc = abi_encode(
        ["bytes32", "bytes32[]", "(uint32,uint32,uint32,uint32)", "(uint32,uint32,uint32,uint32,uint32)[]"],
        [bytes.fromhex(spec.model_id), code, spec.io, [tuple(ln) for ln in spec.links]],
    )  # fmt: skip
    return hex32(keccak(enc))


# -- the client ------------------------------------------------------------------------------


def _registry_contract() -> CompiledContract:
    return sources.contract(REGISTRY_NAME)


def _calldata_bytes(proofs: Sequence[bytes], instances: Sequence[Sequence[int]]) -> int:
    """About what a part's calldata weighs: the proofs, the instance words, a few ABI words per slice."""
    return sum(len(p) + 32 * (len(i) + 4) for p, i in zip(proofs, instances))


def _pending_job(workdir: Path) -> str | None:
    path = Path(workdir) / PENDING_FILE
    try:
        return storage.read_json(path)["submission"]["job_id"] if path.is_file() else None
    except (ValueError, KeyError):
        return None


class ReceiptChain:
    """A web3 client for the ProofOfInference registry on one chain."""

    def __init__(
        self,
        rpc_url: str,
        *,
        private_key: str | None = None,
        registry: str | None = None,
        deployments: Path | str | None = None,
        timeout: float = 120.0,
        owner: LocalChain | None = None,
        code_size_limit: int | None = None,
        ledger: "Ledger | Path | str | bool | None" = None,
    ):
        self.rpc_url = rpc_url
        self.timeout = timeout
        self.ledger = ledger
        """Where submissions are recorded (dsperse.tools.ledger): None the default ledger, False none."""
        self.owner = owner
        """The anvil this client started (``local()``); stopped by :meth:`close`."""
        self.code_size_limit = code_size_limit or (owner.code_size_limit if owner is not None else None) or EIP170_LIMIT
        """Largest verifier runtime code this chain accepts (EIP-170 unless the chain says otherwise)."""
        self.transport = Transport(http_web3(rpc_url), private_key=private_key, timeout=timeout, where=rpc_url)
        """Signs, estimates, sends and maps failures for every transaction of this client."""
        self.w3 = self.transport.w3
        self.account = self.transport.account
        self.deployments = Deployments(Path(deployments) if deployments else default_path())
        self._registry_addr = Web3.to_checksum_address(registry) if registry else None

    # -- plumbing ------------------------------------------------------------------------------

    def _rpc(self, what: str):
        return self.transport.rpc(what)

    @property
    def _chain_id(self) -> int | None:
        """The chain id if already read (never asks a node that may be down)."""
        return self.transport._chain_id

    @property
    def chain_id(self) -> int:
        return self.transport.chain_id

    @property
    def address(self) -> str:
        """The account that signs (private key) or the node's first unlocked account."""
        return self.transport.address

    def is_up(self) -> bool:
        try:
            return bool(self.w3.is_connected())
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False

    def contract(self, address: str, abi: list):
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)

    def codehash(self, address: str) -> str | None:
        return self.transport.codehash(address)

    def _block_gas_limit(self) -> int:
        return self.transport.block_gas_limit()

    def transact(self, fn, what: str = "sending a transaction") -> Any:
        """Send a bound contract call (``contract.functions.f(...)``); returns the mined receipt."""
        return self.transport.transact(fn, what)

    def deploy(self, compiled: CompiledContract, *args: Any, what: str | None = None) -> str:
        """Deploy a compiled contract; returns its address."""
        rc = self.transport.deploy(compiled.abi, compiled.bytecode, *args, what=what or f"deploying {compiled.name}")
        return Web3.to_checksum_address(rc["contractAddress"])

    # -- registry ------------------------------------------------------------------------------

    def _known(self, kind: str, name: str) -> str | None:
        rec = self.deployments.get(self.chain_id, kind, name)
        if rec and self.codehash(rec["address"]) == rec["codehash"]:
            return Web3.to_checksum_address(rec["address"])
        return None

    @property
    def registry_address(self) -> str | None:
        if self._registry_addr is None:
            self._registry_addr = self._known("registry", REGISTRY_NAME)
        return self._registry_addr

    def registry(self, deploy: bool = False):
        """The ProofOfInference contract; deploys one (and records it) when ``deploy`` and none is known."""
        compiled = _registry_contract()
        addr = self.registry_address
        if addr is None:
            if not deploy:
                raise ChainError(
                    f"no ProofOfInference registry known for chain {self.chain_id} in {self.deployments.path}; "
                    "pass registry=ADDRESS (--registry) or run `dsperse register` first"
                )
            addr = self.deploy(compiled, what="deploying the ProofOfInference registry")
            self.deployments.put(self.chain_id, "registry", REGISTRY_NAME, addr, self.codehash(addr), rpc=self.rpc_url)
            self._registry_addr = addr
            log.info("deployed ProofOfInference at %s on chain %d", addr, self.chain_id)
        elif not self.codehash(addr):
            raise ChainError(f"no contract at registry address {addr} on chain {self.chain_id}")
        return self.contract(addr, compiled.abi)

    def deploy_verifier(self, circuit: Circuit) -> str:
        """Deploy (once per chain) the EZKL verifier of one slice; returns its address."""
        v = slice_verifier(Path(circuit.vk), Path(circuit.settings), Path(circuit.srs), size_limit=self.code_size_limit)
        if addr := self._known("verifier", v.key):
            return addr
        addr = self.deploy(v.contract, what=f"deploying the verifier of slice {circuit.slice_index}")
        self.deployments.put(self.chain_id, "verifier", v.key, addr, self.codehash(addr), slice_index=circuit.slice_index)
        return addr

    def model(self, model_id: str) -> dict | None:
        """The registry's record of a model (by its registry id), or None when it is not registered."""
        reg = self.registry()
        key = job_id_bytes(model_id)
        with self._rpc("reading a model"):
            v, in_s, out_s, n_in, n_out, who = reg.functions.getModel(key).call()
            if not v:
                return None
            links = [tuple(int(x) for x in ln) for ln in reg.functions.getLinks(key).call()]
            label = bytes(reg.functions.modelLabel(key).call()).hex()
        return {"verifiers": list(v), "input_scale": in_s, "output_scale": out_s, "num_inputs": n_in,
                "num_outputs": n_out, "registrant": who, "links": links, "label": label}  # fmt: skip

    def register_model(self, circuits_or_run: Run | Sequence[Circuit] | Path | str, *, part: bool = False) -> str:
        """Deploy the slice verifiers and register the model (idempotent); returns its registry id (hex, no 0x).

        The id is a content hash (:func:`registry_model_id`): if it is registered, it is registered with exactly
        this model's verifier code, scales, counts and links, whoever did it; nothing can be squatted. A model must
        state its input (public or hashed); ``part=True`` registers a suffix that starts at a committed tensor
        (PoSP's always-proven part), whose receipts bind no input."""
        spec = model_spec(circuits_or_run)
        if part != (spec.num_inputs == 0):
            raise ChainError(
                f"slice {spec.circuits[0].slice_index}'s input is {spec.circuits[0].input_visibility}: "
                + ("a receipt would bind no model input; compile with input_visibility='public' or 'hashed', or "
                   "register a suffix part with part=True" if not part else "a part starts at a committed tensor")
            )  # fmt: skip
        key = registry_model_id(spec)
        reg = self.registry(deploy=True)
        if self.model(key) is not None:
            return key[2:]
        verifiers = [self.deploy_verifier(c) for c in spec.circuits]
        args = spec.registration(verifiers)
        with self._rpc("computing the model's registry id"):
            onchain = hex32(bytes(reg.functions.modelKey(*args).call()))
        if onchain != key:
            raise ChainError(f"the registry computes model id {onchain}, this client {key}: verifier code differs")
        fn = (reg.functions.registerPart if part else reg.functions.registerModel)(*args)
        self.transact(fn, f"registering {'part' if part else 'model'} {spec.model_id[:12]}")
        return key[2:]

    def register_aggregated(self, label: bytes, verifier: str, layout: tuple, input_scale: int = 0,
                            output_scale: int = 0) -> str:  # fmt: skip
        """Register (idempotent) a model proven by ONE aggregate: its label, deployed aggregate ``verifier`` and
        instance ``layout`` (ReceiptLayout.as_abi()); returns its registry id (hex, no 0x), a content hash."""
        reg = self.registry(deploy=True)
        args = (job_id_bytes(label), Web3.to_checksum_address(verifier), input_scale, output_scale, tuple(layout))
        with self._rpc("computing the aggregated model's registry id"):
            key = bytes(reg.functions.aggregatedKey(*args).call()).hex()
        if self.model(key) is None:
            self.transact(reg.functions.registerAggregated(*args), f"registering aggregated model {label.hex()[:12]}")
        return key

    # -- receipts ------------------------------------------------------------------------------

    def submit(self, run: Run | Path | str, job_id: str | bytes | None = None, *, register: bool = True) -> SubmitResult:
        """Submit a run's receipt: its ONE aggregated proof when it has an aggregate (``prove(..., aggregate=True)``),
        else every slice proof (linked). A linked submission that meets a node down is kept in
        ``run_dir/pending_submit.json`` and lands with :meth:`submit_pending`."""
        if not isinstance(run, Run):
            run = Run.load(run)
        if run.aggregate:
            return self.submit_aggregated(run, job_id, register=register)
        sub = submission_from_run(run, job_id)
        retrying = _pending_job(run.workdir) == sub.job_id  # an earlier attempt may have landed after all
        try:
            if register:
                self.register_model(run)
            result = self.submit_raw(sub, landed_ok=retrying)
        except ChainUnavailableError as exc:
            pending = self._keep_pending(run.workdir, sub)
            raise ChainUnavailableError(
                f"{exc}. The submission was kept in {pending}; it lands with a later "
                f"`dsperse submit {run.workdir} --rpc URL` (or ReceiptChain.submit_pending)."
            ) from exc
        self._landed(run.workdir, result)
        return result

    def submit_pending(self, workdir: Path | str) -> SubmitResult:
        """Land a submission that was kept while the chain was down."""
        workdir = Path(workdir)
        path = workdir / PENDING_FILE
        if not path.is_file():
            raise ChainError(f"nothing pending: {path} does not exist")
        data = storage.read_json(path)
        sub = Submission.from_json(data["submission"])
        kept = data.get("registry")
        if self.registry_address is None and kept and data.get("chain_id") in (None, self.chain_id):
            want = hex32(keccak(hexstr=_registry_contract().deployed_bytecode))
            if self.codehash(kept) == want:  # the registry the first attempt used is (still) there
                self._registry_addr = Web3.to_checksum_address(kept)
        if (workdir / Run.FILE).is_file():
            self.register_model(workdir)
        result = self.submit_raw(sub, landed_ok=True)
        self._landed(workdir, result)
        return result

    def receipt_id(self, job_id: str | bytes, prover: str | None = None) -> bytes:
        """Where the registry keeps ``prover``'s (default: this account's) receipt of ``job_id``."""
        with self._rpc("computing a receipt id"):
            return bytes(self.registry().functions.receiptId(Web3.to_checksum_address(prover or self.address),
                                                             job_id_bytes(job_id)).call())  # fmt: skip

    def submit_raw(self, sub: Submission, *, landed_ok: bool = False) -> SubmitResult:
        """Send one prepared submission: a commitment to its proofs, then the proofs in one transaction, or in
        parts when they do not fit one (block gas limit, :data:`MAX_CALLDATA`).

        With ``landed_ok`` (retrying a kept submission), a receipt that this account already stored for the
        same job, model and output counts as landed (the first attempt may have been mined after the node
        stopped answering), and a half-sent receipt resumes at its next part. Otherwise a reused job id reverts
        ("job id already used").
        """
        reg = self.registry()
        jid, key = job_id_bytes(sub.job_id), job_id_bytes(sub.model_id)
        rid = self.receipt_id(jid)
        if landed_ok:
            with self._rpc("reading the receipt"):
                stored = reg.functions.getReceipt(rid).call()
            m = self.model(sub.model_id)
            same_output = m is not None and bytes(stored[2]).hex() == expected_hashes(sub, m["num_inputs"], m["num_outputs"])[1][2:]
            if stored[5] != 0 and stored[0] == key and same_output:
                return SubmitResult(sub.job_id, None, int(stored[5]), None, reg.address, self.chain_id, hex32(rid))
        gas = self._commit(reg, sub)
        first = 0
        if landed_ok:
            with self._rpc("reading the receipt's progress"):
                first = int(reg.functions.pendingNext(self.address, jid).call())
        return self._result(sub, rid, gas, self._send_parts(reg, sub, first))

    def _commit(self, reg, sub: Submission | AggregatedSubmission) -> int:
        """Post this account's commitment to ``sub``'s proofs unless it is already on chain; returns its gas."""
        c = commitment_of(sub, self.address)
        with self._rpc("reading the commitment"):
            if reg.functions.commitments(self.address, c).call():
                return 0
        return int(self.transact(reg.functions.commit(c), f"committing to the proofs of job {sub.job_id[:12]}")["gasUsed"])

    def submit_aggregated(self, run: Run, job_id: str | bytes | None = None, *, register: bool = True) -> SubmitResult:
        """Submit the run's aggregate, pinned to the run's own input; the aggregated model (verifier + layout)
        is deployed and registered first unless ``register`` is False (then it must be already)."""
        from dsperse.aggregation import receipt as R

        _, model = R.deploy_for_run(self, run, register=register)
        result = self.submit_aggregated_raw(R.submission_for_run(run, model, job_id))
        self._landed(run.workdir, result)
        return result

    def submit_aggregated_raw(self, sub: AggregatedSubmission) -> SubmitResult:
        """A commitment to the aggregate proof, then the proof in a later block (submitAggregated)."""
        gas, rc = self.send_aggregated(sub)
        return self._result(sub, self.receipt_id(sub.job_id), gas, [rc])

    def _result(self, sub: Submission | AggregatedSubmission, rid: bytes, commit_gas: int, sent: list[Any]) -> SubmitResult:
        """What a submission that landed reports: the last transaction, every transaction's gas, the parts."""
        rc = sent[-1]
        return SubmitResult(sub.job_id, "0x" + bytes(rc["transactionHash"]).hex(), int(rc["blockNumber"]),
                            commit_gas + sum(int(r["gasUsed"]) for r in sent), self.registry_address, self.chain_id,
                            hex32(rid), len(sent))  # fmt: skip

    def send_aggregated(self, sub: AggregatedSubmission) -> tuple[int, Any]:
        """Commit (if not yet) and reveal ``sub``; returns (commitment gas, mined receipt of the reveal)."""
        reg = self.registry()
        gas = self._commit(reg, sub)
        fn = reg.functions.submitAggregated(job_id_bytes(sub.job_id), job_id_bytes(sub.model_id),
                                            job_id_bytes(sub.input_hash), bytes.fromhex(sub.proof.removeprefix("0x")),
                                            [int(v) for v in sub.instances])  # fmt: skip
        return gas, self.transact(fn, f"submitting the aggregated receipt of job {sub.job_id[:12]}")

    def _send_parts(self, reg, sub: Submission, first: int) -> list[Any]:
        """Send slices [first, n) in as few transactions as fit (halving a part that exceeds a block); returns
        the mined transaction receipts."""
        jid, key = job_id_bytes(sub.job_id), job_id_bytes(sub.model_id)
        proofs = [bytes.fromhex(p[2:]) for p in sub.proofs]
        insts = [list(col) for col in sub.instances]
        n, sent = len(proofs), []
        while first < n:
            size = n - first
            while size > 1 and _calldata_bytes(proofs[first : first + size], insts[first : first + size]) > MAX_CALLDATA:
                size //= 2
            while True:
                end = first + size
                if first == 0 and end == n:  # the whole receipt in one transaction
                    fn = reg.functions.submit(jid, key, proofs, insts)
                else:
                    fn = reg.functions.submitPart(jid, key, first, proofs[first:end], insts[first:end])
                what = f"submitting job {sub.job_id[:12]}" + ("" if end - first == n else f" (slices {first}..{end - 1} of {n})")
                try:
                    sent.append(self.transact(fn, what))
                    break
                except OutOfGasError:
                    if size == 1:
                        raise
                    size = (size + 1) // 2
                    log.info("job %s: slices %d..%d exceed a block; sending fewer per transaction", sub.job_id[:12], first, end - 1)
            first = end
        return sent

    def _keep_pending(self, workdir: Path, sub: Submission) -> Path:
        chain_id = self._chain_id  # never ask the (down) node
        record = {"submission": sub.to_json(), "rpc_url": self.rpc_url, "registry": self._registry_addr,
                  "chain_id": chain_id, "kept_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
        return storage.write_json(Path(workdir) / PENDING_FILE, record)

    def _landed(self, workdir: Path, result: SubmitResult) -> None:
        from dsperse.tools.ledger import record_submission

        storage.write_json(Path(workdir) / SUBMITTED_FILE, {**asdict(result), "rpc_url": self.rpc_url})
        (Path(workdir) / PENDING_FILE).unlink(missing_ok=True)
        record_submission(result, workdir, self.ledger)

    def receipt(self, job_id: str | bytes, prover: str | None = None) -> OnchainReceipt | None:
        """The receipt of ``job_id`` (same job id text as given to submit) by ``prover`` (default: this
        account), or None."""
        reg = self.registry()
        rid = self.receipt_id(job_id, prover)
        with self._rpc("reading the receipt"):
            model_id, ih, oh, outs, who, block = reg.functions.getReceipt(rid).call()
        if block == 0:
            return None
        m = self.model(bytes(model_id).hex())
        scale = m["output_scale"] if m else 0
        return OnchainReceipt(
            job_id=hex32(job_id_bytes(job_id)), model_id=m["label"] if m else "", registry_model_id=bytes(model_id).hex(),
            receipt_id=hex32(rid), input_hash=hex32(bytes(ih)), output_hash=hex32(bytes(oh)),
            output=tuple(v / 2**scale for v in outs), output_ints=tuple(int(v) for v in outs), output_scale=scale,
            prover=Web3.to_checksum_address(who), block=int(block),
        )  # fmt: skip

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the local chain this client started, if any."""
        if self.owner is not None:
            self.owner.stop()

    def __enter__(self) -> "ReceiptChain":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
