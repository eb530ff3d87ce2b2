"""Child process that writes a Solidity verifier with the proof system: one slice's, or an aggregate's.

Run by :func:`dsperse.proofsystem.run_child` for :func:`dsperse.chain.verifiers.verifier_source` (a slice)
and :func:`dsperse.aggregation.aggregate.evm_verifier` (``--aggregate``). It leaves with ``os._exit``
because the interpreter aborts (exit 134) while finalizing after EZKL's async calls. Kept apart from the
package ``__init__`` so ``-m`` does not import it twice.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def _generate(a: argparse.Namespace) -> None:
    from dsperse import proofsystem
    from dsperse.util import storage

    ps = proofsystem.get(a.system)
    with storage.atomic_path(a.out) as tmp_sol, storage.atomic_path(a.out.with_suffix(".abi")) as tmp_abi:
        if a.aggregate:
            ps.create_evm_verifier_aggr([a.settings], a.vk, tmp_sol, tmp_abi, a.logrows, a.srs)
        else:
            ps.create_evm_verifier(a.vk, a.settings, tmp_sol, tmp_abi, a.srs, reusable=a.reusable)
    if a.vka is not None:  # the verifying-key artifact a reusable verifier is given per call
        with storage.atomic_path(a.vka) as tmp_vka:
            ps.create_evm_vka(a.vk, a.settings, tmp_vka, a.srs)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m dsperse.proofsystem._evm_verifier",
                                description="Write a Solidity verifier and its ABI (used as a child process).")  # fmt: skip
    p.add_argument("--vk", type=Path, required=True)
    p.add_argument("--settings", type=Path, required=True, help="the slice's settings (an aggregate: the verifier's)")
    p.add_argument("--srs", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="the .sol file; the ABI goes beside it as .abi")
    p.add_argument("--aggregate", action="store_true", help="an aggregate's verifier (create_evm_verifier_aggr)")
    p.add_argument("--logrows", type=int, help="with --aggregate: the aggregation circuit's k")
    p.add_argument("--reusable", action="store_true", help="EZKL's experimental reusable verifier (benchmarks only)")
    p.add_argument("--vka", type=Path, help="also write the verifying-key artifact for the reusable verifier here")
    p.add_argument("--system", default="ezkl", help="the proof system's registry name")
    a = p.parse_args(argv)
    if a.aggregate and a.logrows is None:
        p.error("--aggregate needs --logrows")
    from dsperse.proofsystem import child_exit

    child_exit(lambda: _generate(a))


if __name__ == "__main__":
    main()
