"""Bind an aggregated proof to the job's input and output on chain (AggregatedReceipt.sol).

For a run made with ``dsperse.prove(..., aggregate=True)``::

    chain = dsperse.chain.local()                      # or ReceiptChain(rpc_url, private_key)
    verifier, receipts = deploy_for_run(chain, run)    # once per model
    submit_run(chain, receipts, run, job_id="job-1")   # one transaction; reverts unless proof, x and y agree
    read(chain, receipts, "job-1")["outputs"]

The aggregate's public instances are ``[16 accumulator limbs | inner instances...]`` (recursively for a
tree). :class:`ReceiptLayout` says where the model input and output are in that vector and which
instance pairs must be equal (hashed boundaries between level-0 groups), and is checked against the
honest proofs when it is built, so a wrong layout fails here rather than on chain.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from eth_utils import keccak

from .. import storage
from ..artifacts import Run
from ..errors import AggregationError
from . import proofs as P
from .planning import ACCUMULATOR_LIMBS

SOURCE = Path(__file__).with_name("AggregatedReceipt.sol")


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


def _uints_hash(values: Iterable[int]) -> bytes:
    """keccak256(abi.encodePacked(uint256[])): how the contract hashes the input."""
    return keccak(b"".join(int(v).to_bytes(32, "big") for v in values))


def input_hash(instances: Sequence[int], lay: ReceiptLayout) -> bytes:
    """keccak256 of the input field elements, as the contract computes it (abi.encodePacked uint256[])."""
    return _uints_hash(instances[lay.input_start : lay.input_start + lay.num_inputs])


def contract():
    """Compiled AggregatedReceipt (solc-js 0.8.20 through dsperse.chain)."""
    from ..chain.toolchain import compile_solidity

    return compile_solidity({"AggregatedReceipt.sol": SOURCE})["AggregatedReceipt"]


def deploy(chain: Any, verifier_sol: Path, lay: ReceiptLayout, model_id: bytes) -> tuple[str, str]:
    """Deploy the aggregated verifier and a receipt contract bound to it; returns (verifier, receipt) addresses.

    ``chain`` is a :class:`dsperse.chain.ReceiptChain`.
    """
    from ..chain.toolchain import EIP170_LIMIT, compile_solidity

    compiled = compile_solidity({"AggregateVerifier.sol": Path(verifier_sol)})
    if len(compiled) != 1:
        raise AggregationError(f"{verifier_sol}: expected one verifier contract, got {sorted(compiled)}")
    ver = next(iter(compiled.values()))
    if ver.runtime_size > EIP170_LIMIT:
        raise AggregationError(f"aggregated verifier is {ver.runtime_size} bytes, over EIP-170's {EIP170_LIMIT}")
    v_addr = chain.deploy(ver, what="deploying the aggregated verifier")
    r_addr = chain.deploy(
        contract(), v_addr, model_id, lay.num_instances, lay.input_start, lay.num_inputs, lay.output_start,
        lay.num_outputs, lay.flat_links(), what="deploying AggregatedReceipt",
    )  # fmt: skip
    return v_addr, r_addr


def submit(chain: Any, receipt_addr: str, job_id: bytes, proof: bytes, instances: Sequence[int],
           expected_input_hash: bytes = b"\0" * 32) -> Any:  # fmt: skip
    """One transaction: check links and the aggregate, store the receipt. Returns the mined tx receipt."""
    c = chain.contract(receipt_addr, contract().abi)
    fn = c.functions.submit(job_id, expected_input_hash, proof, [int(v) for v in instances])
    return chain.transact(fn, "submitting an aggregated receipt")


def read(chain: Any, receipt_addr: str, job_id: str | bytes) -> dict[str, Any]:
    from ..chain.client import job_id_bytes

    c = chain.contract(receipt_addr, contract().abi)
    ih, oh, outs, prover, block = c.functions.getReceipt(job_id_bytes(job_id)).call()
    return {"input_hash": ih, "output_hash": oh, "outputs": list(outs), "prover": prover, "block": block}


def slice_instances(paths: Sequence[Path | str]) -> list[list[int]]:
    return [P.instances(P.load(p)) for p in paths]


# -- a whole aggregated run -------------------------------------------------------------------------------


def _aggregate_of(run: Run) -> dict:
    if not run.aggregate:
        raise AggregationError(f"{run.workdir}: this run has no aggregate; prove it with aggregate=True")
    return run.aggregate


def run_layout(run: Run) -> ReceiptLayout:
    """The receipt layout of an aggregated run, checked against its own slice proofs."""
    levels = _aggregate_of(run).get("levels")
    if not levels:
        raise AggregationError(f"{run.workdir}: the aggregate record has no tree ('levels'); re-run the aggregation")
    proofs = [p.path for p in sorted(run.proofs, key=lambda p: p.slice_index)]
    circuits = sorted(run.circuits, key=lambda c: c.slice_index)
    ios = [slice_io(P.load(p), storage.read_json(Path(c.settings))) for p, c in zip(proofs, circuits)]
    return layout(ios, levels, slice_instances(proofs))


def run_keys(run: Run):
    """The root step's aggregation keys (for its Solidity verifier)."""
    return step_keys(_aggregate_of(run)["root"])


def step_keys(step: dict):
    """The aggregation keys recorded in one step's dict (ray_task.run_step's result)."""
    from .aggregate import AggregationKeys

    k = dict(step["keys"])
    for name in ("vk", "pk", "srs"):
        k[name] = Path(k[name])
    return AggregationKeys(**k)


def felts_hash(felts: Sequence[str]) -> bytes:
    """keccak256 of field elements (EZKL's hex felts) as the contract hashes the input: what a requester pins."""
    from ..chain.client import felt_to_uint

    return _uints_hash(felt_to_uint(f) for f in felts)


def deploy_for_run(chain: Any, run: Run, verifier_dir: Path | str | None = None) -> tuple[str, str]:
    """The (verifier, receipt contract) of this run's model and aggregation keys: found in the chain's
    deployments file when already deployed (same code), else generated and deployed once and recorded."""
    from .aggregate import evm_verifier

    keys = run_keys(run)
    name = f"{run.receipt.model_id}:{keys.key_id}"
    rec = chain.deployments.get(chain.chain_id, "aggregated-receipt", name)
    if rec and chain.codehash(rec["address"]) == rec["codehash"] and chain.codehash(rec["verifier"]) == rec["verifier_codehash"]:
        return rec["verifier"], rec["address"]
    out = Path(verifier_dir) if verifier_dir is not None else run.workdir / "aggregate"
    sol = evm_verifier(keys, sorted(run.circuits, key=lambda c: c.slice_index)[0].settings, out / "AggregateVerifier.sol")
    v, r = deploy(chain, sol, run_layout(run), bytes.fromhex(run.receipt.model_id))
    chain.deployments.put(chain.chain_id, "aggregated-receipt", name, r, chain.codehash(r), verifier=v,
                          verifier_codehash=chain.codehash(v))  # fmt: skip
    return v, r


def submit_run(chain: Any, receipt_addr: str, run: Run, job_id: str | bytes | None = None) -> Any:
    """Submit the run's aggregate with the job's input pinned (the run's own quantized input)."""
    from ..chain.client import default_job_id, job_id_bytes
    from .aggregate import evm_calldata

    pb, inst = evm_calldata(_aggregate_of(run)["proof"])
    jid = job_id_bytes(job_id if job_id is not None else default_job_id(run))
    return submit(chain, receipt_addr, jid, pb, inst, expected_input_hash=felts_hash(run.receipt.input_felts))
