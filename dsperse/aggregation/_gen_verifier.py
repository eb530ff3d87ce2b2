"""Child process that writes an aggregate's Solidity verifier (the proof system's ``create_evm_verifier_aggr``).

Run by :func:`dsperse.aggregation.aggregate.evm_verifier`. Leaves with ``os._exit``: the interpreter
aborts (exit 134) while finalizing after EZKL's async calls.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def _generate(vk: Path, settings: Path, srs: Path, logrows: int, out: Path, system: str = "ezkl") -> None:
    from dsperse import proofsystem
    from dsperse.errors import AggregationError
    from dsperse.util import storage

    ps = proofsystem.get(system)
    with storage.atomic_path(out) as tmp_sol, storage.atomic_path(out.with_suffix(".abi")) as tmp_abi:
        ps.create_evm_verifier_aggr([settings], vk, tmp_sol, tmp_abi, logrows, srs, error=AggregationError)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m dsperse.aggregation._gen_verifier",
                                description="Write an aggregate's Solidity verifier with EZKL (child process).")  # fmt: skip
    p.add_argument("--vk", type=Path, required=True)
    p.add_argument("--settings", type=Path, required=True)
    p.add_argument("--srs", type=Path, required=True)
    p.add_argument("--logrows", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--system", default="ezkl", help="the proof system's registry name")
    a = p.parse_args(argv)
    from dsperse.proofsystem import child_exit

    child_exit(lambda: _generate(a.vk, a.settings, a.srs, a.logrows, a.out, a.system))


if __name__ == "__main__":
    main()
