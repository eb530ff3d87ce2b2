"""``dsperse submit`` / ``register`` / ``receipt``: put a run's receipt on an EVM chain and read it back."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from dsperse.options import chain_options, job_id_option, require_rpc, settings
from dsperse.util.argtypes import address, nonempty

CHAIN_EPILOG = """\
The registry (ProofOfInference) and the per-slice verifiers are deployed on first use and their
addresses recorded per chain id in the deployments file ($DSPERSE_DEPLOYMENTS, default
~/.cache/dsperse/evm/deployments.json), so later commands find them. A local chain for trying it out:
  dsperse toolchain install      # once; `dsperse toolchain status` prints where anvil is
  <that anvil> --host 127.0.0.1 --port 8545
The signing key comes from --private-key or $DSPERSE_PRIVATE_KEY; without one, the node's first
unlocked account signs (anvil has ten).
"""


def _chain_flags(q: argparse.ArgumentParser) -> None:
    chain_options(q)  # --rpc, --private-key (else the node's first unlocked account signs), --deployments
    q.add_argument("--registry", type=address, metavar="ADDRESS", help="ProofOfInference address (default: from the deployments file)")
    q.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _client(a: argparse.Namespace):
    from dsperse.chain import connect

    chain = settings(a).chain  # flags, then $DSPERSE_RPC / $DSPERSE_PRIVATE_KEY / $DSPERSE_DEPLOYMENTS
    return connect(require_rpc(chain), private_key=chain.private_key, registry=a.registry, deployments=chain.deployments)


def _print(a: argparse.Namespace, obj: dict, text: str) -> None:
    print(json.dumps(obj, default=str) if a.json else text)


def cmd_submit(a: argparse.Namespace) -> int:
    from dsperse.artifacts import Run
    from dsperse.chain.client import PENDING_FILE
    from dsperse.errors import ChainError

    client = _client(a)
    pending = (a.run / PENDING_FILE).is_file()
    if a.aggregated and not Run.load(a.run).aggregate:
        raise ChainError(f"{a.run}: --aggregated, but this run has no aggregate; prove it with --aggregate")
    if pending and a.job_id is None and not a.aggregated:
        result = client.submit_pending(a.run)
    else:
        result = client.submit(a.run, job_id=a.job_id, register=not a.no_register)
    how = "already on chain from an earlier attempt" if result.tx_hash is None else f"tx {result.tx_hash}, gas {result.gas_used:,}"
    kind = "aggregated receipt" if a.aggregated else "receipt"
    _print(a, dataclasses.asdict(result), f"{kind} for job {result.job_id} stored in block {result.block} ({how}); "
           f"registry {result.registry} on chain {result.chain_id}")
    return 0


def cmd_register(a: argparse.Namespace) -> int:
    client = _client(a)
    model_id = client.register_model(a.run)
    m = client.model(model_id) or {}
    _print(a, {"model_id": model_id, "registry": client.registry_address, "chain_id": client.chain_id, **m},
           f"model {model_id} registered at {client.registry_address} on chain {client.chain_id}; "
           f"slice verifiers: {', '.join(m.get('verifiers', []))}")
    return 0


def cmd_receipt(a: argparse.Namespace) -> int:
    from dsperse.errors import ChainError

    client = _client(a)
    rec = client.receipt(a.job_id, prover=a.prover)
    if rec is None:
        raise ChainError(f"no receipt stored for job {a.job_id!r} by {a.prover or client.address} on this registry")
    _print(a, dataclasses.asdict(rec), "\n".join(f"{k}: {v}" for k, v in dataclasses.asdict(rec).items()))
    return 0


def add_subcommands(subparsers) -> None:
    """Add ``submit``, ``register`` and ``receipt`` to the ``dsperse`` command."""
    fmt = argparse.RawDescriptionHelpFormatter
    s = subparsers.add_parser(
        "submit", help="put a run's receipt on an EVM chain (one transaction)", formatter_class=fmt, epilog=CHAIN_EPILOG,
        description="Send every slice proof of RUN_DIR to the ProofOfInference registry: first a commitment to the "
        "proofs (so nobody who copies them from the mempool becomes the prover of record), then the proofs, in one "
        "transaction or in parts when they exceed a block. The registry checks the slice count, every link between "
        "slices (all columns) and every slice proof, then stores the receipt (model id, input hash, output, prover, "
        "block) under (prover, job id). The model is registered first if needed. If the node is down, the submission "
        "is kept in RUN_DIR/pending_submit.json; running this again lands it (a half-sent receipt resumes). A run "
        "proven with --aggregate is submitted as its ONE aggregated proof, with the same commitment and receipt id.",
    )
    s.add_argument("run", type=Path, metavar="RUN_DIR", help="run directory (holding run.json)")
    job_id_option(s, "the receipt's id on chain (text is keccak256-hashed to bytes32; 0x + 64 hex is used as is). "
                  "Default: the run's job id, else one derived from its proofs", type=nonempty)
    s.add_argument("--no-register", action="store_true", help="fail instead of registering an unknown model")
    s.add_argument("--aggregated", action="store_true", help="insist on the run's ONE aggregated proof (prove --aggregate; "
                   "a run with an aggregate is submitted that way anyway): its verifier is deployed and the model "
                   "registered with its instance layout on first use; pins the run's input")
    _chain_flags(s)
    s.set_defaults(fn=cmd_submit)

    r = subparsers.add_parser(
        "register", help="deploy a model's slice verifiers and register it", formatter_class=fmt, epilog=CHAIN_EPILOG,
        description="Deploy (once per chain) the EZKL verifier of every slice of RUN_DIR's model and register the model "
        "with its scales, public input/output counts and link table. Its registry id is a content hash (of the label "
        "= sha256 over the verifying keys, the verifier code, scales, counts and links), so nobody can squat it.",
    )
    r.add_argument("run", type=Path, metavar="RUN_DIR", help="run directory (holding run.json) of any run of the model")
    _chain_flags(r)
    r.set_defaults(fn=cmd_register)

    q = subparsers.add_parser(
        "receipt", help="read a stored receipt back from the chain", formatter_class=fmt, epilog=CHAIN_EPILOG,
        description="Print the receipt stored for JOB_ID: model id, input hash, output hash, de-quantized output, "
        "prover and block.",
    )
    q.add_argument("job_id", type=nonempty, metavar="JOB_ID", help="the job id given at submit time")
    q.add_argument("--prover", type=address, metavar="ADDRESS", help="whose receipt of JOB_ID to read (default: the signing account); "
                   "receipts are kept per prover and job, so one prover cannot block another's job id")
    _chain_flags(q)
    q.set_defaults(fn=cmd_receipt)
