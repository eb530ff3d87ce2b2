"""Bind an aggregated proof to the job's input and output on chain (ProofOfInference's aggregated receipts,
dsperse/chain/contracts/AggregatedReceipt.sol).

For a run made with ``dsperse.prove(..., aggregate=True)``::

    chain = dsperse.chain.local()                      # or ReceiptChain(rpc_url, private_key)
    chain.submit(run, job_id="job-1")                  # all of the below, as for a linked receipt

    verifier, model = deploy_for_run(chain, run)       # once per model: the verifier, registered with its layout
    submit_run(chain, model, run, job_id="job-1")      # commit, then reveal; reverts unless proof, x and y agree
    read(chain, model, "job-1")["outputs"]

Aggregated models live in the same registry as linked ones and their receipts in the same store (receipt ids
per prover and job, commit-reveal), so the PoSP market reads both kinds from one address.

The aggregate's public instances are ``[16 accumulator limbs | inner instances...]`` (recursively for a
tree). :class:`ReceiptLayout` says where the model input and output are in that vector and which
instance pairs must be equal (hashed boundaries between level-0 groups), and is checked against the
honest proofs when it is built, so a wrong layout fails here rather than on chain.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from dsperse.aggregation import proofs as P
from dsperse.aggregation.planning import ACCUMULATOR_LIMBS
from dsperse.artifacts import AggregationKeys, Run, RunAggregate
from dsperse.chain.encoding import ZERO32, bytes32_id, felts_to_uints, hex32, uints_hash
from dsperse.errors import AggregationError, ChainError
from dsperse.util import storage


@dataclass(frozen=True)
class SliceIO:
    """How one slice's public instances are laid out: its input part, then its output part."""

    n_instances: int
    input_visibility: str
    output_visibility: str
    n_inputs: int
    n_outputs: int

    def part(self, side: str) -> tuple[int, int]:
        """(offset, length) of the input or output part within this slice's instances."""
        vis, n = (self.input_visibility, self.n_inputs) if side == "input" else (self.output_visibility, self.n_outputs)
        length = n if vis == "public" else 1 if vis == "hashed" else 0
        if side == "input":
            return 0, length
        return self.n_instances - length, length


@dataclass(frozen=True)
class ReceiptLayout:
    num_instances: int
    input_start: int
    num_inputs: int
    output_start: int
    num_outputs: int
    links: tuple[tuple[int, int], ...]

    def flat_links(self) -> list[int]:
        return [i for pair in self.links for i in pair]

    def as_abi(self) -> tuple:
        """AggregatedReceipt.Layout as a tuple for web3."""
        return (self.num_instances, self.input_start, self.num_inputs, self.output_start, self.num_outputs,
                self.flat_links())  # fmt: skip


def leaf_offsets(leaf_sizes: Sequence[int], levels: Sequence[Sequence[Sequence[int]]]) -> tuple[list[int], int]:
    """Offset of every leaf proof's instances in the root aggregate's instances, and the total count.

    ``levels[l][j]`` lists the children (indices into level l-1, or leaves for l=0) of node j at level l.
    """
    sizes = list(leaf_sizes)
    offsets = [[0] for _ in sizes]  # per current node: offsets of the leaves below it, relative to the node
    leaves_below = [[i] for i in range(len(sizes))]
    for lvl in levels:
        new_sizes, new_offsets, new_leaves = [], [], []
        for children in lvl:
            pos, offs, lv = ACCUMULATOR_LIMBS, [], []
            for c in children:
                offs.extend(pos + o for o in offsets[c])
                lv.extend(leaves_below[c])
                pos += sizes[c]
            new_sizes.append(pos)
            new_offsets.append(offs)
            new_leaves.append(lv)
        sizes, offsets, leaves_below = new_sizes, new_offsets, new_leaves
    if len(sizes) != 1:
        raise AggregationError(f"the tree has {len(sizes)} roots; the last level must have one node")
    result = [0] * len(leaf_sizes)
    for leaf, off in zip(leaves_below[0], offsets[0]):
        result[leaf] = off
    return result, sizes[0]


def layout(
    slices: Sequence[SliceIO],
    levels: Sequence[Sequence[Sequence[int]]],
    sample_instances: Sequence[Sequence[int]] | None = None,
) -> ReceiptLayout:
    """Where input, output and boundary hashes sit in the root's instances.

    ``sample_instances`` (each slice proof's instances, honest run) are used to check the layout: every
    hashed boundary must carry equal values on both sides.
    """
    offs, total = leaf_offsets([s.n_instances for s in slices], levels)
    first, last = slices[0], slices[-1]
    if first.input_visibility != "public" or last.output_visibility != "public":
        raise AggregationError("an aggregated receipt needs the model input and output public (slice 0 input, last output)")
    i_off, n_in = first.part("input")
    o_off, n_out = last.part("output")
    links = []
    for i in range(len(slices) - 1):
        a, b = slices[i], slices[i + 1]
        if a.output_visibility == "hashed" or b.input_visibility == "hashed":
            if a.output_visibility != "hashed" or b.input_visibility != "hashed":
                raise AggregationError(f"boundary {i}: hashed on one side only ({a.output_visibility} -> {b.input_visibility})")
            pa, pb = a.part("output")[0], b.part("input")[0]
            if sample_instances is not None and sample_instances[i][pa] != sample_instances[i + 1][pb]:
                raise AggregationError(f"boundary {i}: the honest proofs' hashes differ at the assumed positions")
            links.append((offs[i] + pa, offs[i + 1] + pb))
        elif a.output_visibility == "public" and b.input_visibility == "public":
            pa, la = a.part("output")
            pb, _ = b.part("input")
            links.extend((offs[i] + pa + j, offs[i + 1] + pb + j) for j in range(la))
    return ReceiptLayout(total, offs[0] + i_off, n_in, offs[-1] + o_off, n_out, tuple(links))


def slice_io(proof_data: dict[str, Any], settings: dict[str, Any]) -> SliceIO:
    """Read a slice's instance layout from its proof and settings (EZKL 22.3 names: Public, Hashed, KZGCommit)."""
    ra = settings["run_args"]

    def norm(v: Any) -> str:
        s = str(v if isinstance(v, str) else next(iter(v))).lower()
        return "hashed" if s.startswith("hashed") else "polycommit" if s in ("kzgcommit", "polycommit") else s

    shapes = settings.get("model_instance_shapes", [])
    vin, vout = norm(ra["input_visibility"]), norm(ra["output_visibility"])

    def prod(xs: Sequence[int]) -> int:
        n = 1
        for x in xs:
            n *= int(x)
        return n

    n_in = prod(shapes[0]) if vin == "public" and shapes else 0
    n_out = prod(shapes[-1]) if vout == "public" and shapes else 0
    return SliceIO(sum(len(c) for c in proof_data["instances"]), vin, vout, n_in, n_out)


def input_hash(instances: Sequence[int], lay: ReceiptLayout) -> bytes:
    """keccak256 of the input field elements, as the contract computes it (abi.encodePacked uint256[])."""
    return uints_hash(instances[lay.input_start : lay.input_start + lay.num_inputs])


def deploy_verifier(chain: Any, verifier_sol: Path) -> str:
    """Compile and deploy an aggregated verifier; returns its address. ``chain`` is a ReceiptChain."""
    from dsperse.chain.toolchain import EIP170_LIMIT, compile_solidity

    compiled = compile_solidity({"AggregateVerifier.sol": Path(verifier_sol)})
    if len(compiled) != 1:
        raise AggregationError(f"{verifier_sol}: expected one verifier contract, got {sorted(compiled)}")
    ver = next(iter(compiled.values()))
    if ver.runtime_size > EIP170_LIMIT:
        raise AggregationError(f"aggregated verifier is {ver.runtime_size} bytes, over EIP-170's {EIP170_LIMIT}")
    return chain.deploy(ver, what="deploying the aggregated verifier")


def deploy(chain: Any, verifier_sol: Path, lay: ReceiptLayout, label: bytes, *, input_scale: int = 0,
           output_scale: int = 0) -> tuple[str, str]:  # fmt: skip
    """Deploy the aggregated verifier and register the model with it and ``lay`` in the chain's registry;
    returns (verifier address, 0x registry model id)."""
    v_addr = deploy_verifier(chain, verifier_sol)
    return v_addr, "0x" + chain.register_aggregated(label, v_addr, lay.as_abi(), input_scale, output_scale)


def submit(chain: Any, model_id: str | bytes, job_id: str | bytes, proof: bytes, instances: Sequence[int],
           expected_input_hash: bytes = ZERO32) -> Any:  # fmt: skip
    """Commit to the aggregate, then reveal it (one transaction each): the registry checks the layout's links
    and the aggregate and stores the receipt. Returns the mined receipt of the reveal."""
    from dsperse.chain.client import AggregatedSubmission

    sub = AggregatedSubmission(hex32(bytes32_id(job_id)), hex32(bytes32_id(model_id)), "0x" + bytes(proof).hex(),
                               tuple(int(v) for v in instances), hex32(expected_input_hash))  # fmt: skip
    return chain.send_aggregated(sub)[1]


def read(chain: Any, model_id: str | bytes, job_id: str | bytes, prover: str | None = None) -> dict[str, Any]:
    """The receipt of ``job_id`` by ``prover`` (default: the chain's account); every field zero when none.
    A stored receipt of another model raises."""
    reg = chain.registry()
    m, ih, oh, outs, who, block = reg.functions.getReceipt(chain.receipt_id(job_id, prover)).call()
    if block and bytes(m) != bytes32_id(model_id):
        raise ChainError(f"the receipt of job {job_id!r} is for model 0x{bytes(m).hex()}, not {model_id!r}")
    return {"input_hash": bytes(ih), "output_hash": bytes(oh), "outputs": list(outs), "prover": who, "block": block}


def slice_instances(paths: Sequence[Path | str]) -> list[list[int]]:
    return [P.instances(P.load(p)) for p in paths]


# -- a whole aggregated run -------------------------------------------------------------------------------


def _aggregate_of(run: Run) -> RunAggregate:
    if run.aggregate is None:
        raise AggregationError(f"{run.workdir}: this run has no aggregate; prove it with aggregate=True")
    return run.aggregate


def run_layout(run: Run) -> ReceiptLayout:
    """The receipt layout of an aggregated run, checked against its own slice proofs."""
    levels = _aggregate_of(run).levels
    if not levels:
        raise AggregationError(f"{run.workdir}: the aggregate record has no tree ('levels'); re-run the aggregation")
    proofs = [p.path for p in sorted(run.proofs, key=lambda p: p.slice_index)]
    circuits = sorted(run.circuits, key=lambda c: c.slice_index)
    ios = [slice_io(P.load(p), storage.read_json(Path(c.settings))) for p, c in zip(proofs, circuits)]
    return layout(ios, levels, slice_instances(proofs))


def run_keys(run: Run) -> AggregationKeys:
    """The root step's aggregation keys (for its Solidity verifier)."""
    return _aggregate_of(run).keys


def felts_hash(felts: Sequence[str]) -> bytes:
    """keccak256 of field elements (EZKL's hex felts) as the contract hashes the input: what a requester pins."""
    return uints_hash(felts_to_uints(felts))


def deploy_for_run(chain: Any, run: Run, verifier_dir: Path | str | None = None, *,
                   register: bool = True) -> tuple[str, str]:  # fmt: skip
    """The (verifier address, 0x registry model id) of this run's model and aggregation keys. The verifier is
    found in the chain's deployments file when already deployed (same code), else generated, deployed and
    recorded; the model is registered with it and the run's layout (idempotent). With ``register`` False a
    missing verifier or registration raises instead."""
    from dsperse.aggregation.aggregate import evm_verifier

    keys = run_keys(run)
    name = f"{run.receipt.model_id}:{keys.key_id}"
    rec = chain.deployments.get(chain.chain_id, "aggregate-verifier", name)
    v = rec["address"] if rec and chain.codehash(rec["address"]) == rec["codehash"] else None
    if v is None:
        if not register:
            raise ChainError(f"no aggregated verifier of model {run.receipt.model_id[:12]} deployed on chain {chain.chain_id}")
        out = Path(verifier_dir) if verifier_dir is not None else run.workdir / "aggregate"
        sol = evm_verifier(keys, sorted(run.circuits, key=lambda c: c.slice_index)[0].settings, out / "AggregateVerifier.sol")
        v = deploy_verifier(chain, sol)
        chain.deployments.put(chain.chain_id, "aggregate-verifier", name, v, chain.codehash(v))
    circuits = sorted(run.circuits, key=lambda c: c.slice_index)
    args = (bytes.fromhex(run.receipt.model_id), v, run_layout(run).as_abi(), circuits[0].input_scale,
            circuits[-1].output_scale)  # fmt: skip
    if not register:
        reg = chain.registry()
        key = bytes(reg.functions.aggregatedKey(args[0], v, args[3], args[4], args[2]).call())
        if chain.model(key.hex()) is None:
            raise ChainError(f"aggregated model 0x{key.hex()} is not registered; submit without --no-register")
        return v, hex32(key)
    return v, "0x" + chain.register_aggregated(*args)


def submission_for_run(run: Run, model_id: str, job_id: str | bytes | None = None):
    """The run's aggregate as an AggregatedSubmission, pinned to the run's own quantized input."""
    from dsperse.aggregation.aggregate import evm_calldata
    from dsperse.chain.client import AggregatedSubmission, default_job_id

    pb, inst = evm_calldata(_aggregate_of(run).proof)
    jid = bytes32_id(job_id if job_id is not None else default_job_id(run))
    return AggregatedSubmission(hex32(jid), hex32(bytes32_id(model_id)), "0x" + bytes(pb).hex(),
                                tuple(int(v) for v in inst), hex32(felts_hash(run.receipt.input_felts)))  # fmt: skip


def submit_run(chain: Any, model_id: str, run: Run, job_id: str | bytes | None = None) -> Any:
    """Submit the run's aggregate with the job's input pinned; returns the mined receipt of the reveal."""
    return chain.send_aggregated(submission_for_run(run, model_id, job_id))[1]
