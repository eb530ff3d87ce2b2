"""Child process that writes one slice's Solidity verifier with the proof system (EZKL).

Run as ``python -m dsperse.chain._gen_verifier --vk VK --settings S --srs SRS --out Verifier.sol``
by :func:`dsperse.chain.verifiers.verifier_source`. It leaves with ``os._exit`` because the
interpreter aborts (exit 134) while finalizing after EZKL's async calls. Kept apart from the
package ``__init__`` so ``-m`` does not import it twice.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def _generate(vk: Path, settings: Path, srs: Path, out: Path, reusable: bool = False, vka: Path | None = None,
              system: str = "ezkl") -> None:  # fmt: skip
    from dsperse import proofsystem
    from dsperse.errors import ChainError
    from dsperse.util import storage

    ps = proofsystem.get(system)
    with storage.atomic_path(out) as tmp_sol, storage.atomic_path(out.with_suffix(".abi")) as tmp_abi:
        ps.create_evm_verifier(vk, settings, tmp_sol, tmp_abi, srs, reusable=reusable, error=ChainError)
    if vka is not None:  # the verifying-key artifact a reusable verifier is given per call
        with storage.atomic_path(vka) as tmp_vka:
            ps.create_evm_vka(vk, settings, tmp_vka, srs, error=ChainError)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m dsperse.chain._gen_verifier",
                                description="Write the Solidity verifier of one slice with EZKL (used as a child process).")  # fmt: skip
    p.add_argument("--vk", type=Path, required=True)
    p.add_argument("--settings", type=Path, required=True)
    p.add_argument("--srs", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--reusable", action="store_true", help="EZKL's experimental reusable verifier (benchmarks only)")
    p.add_argument("--vka", type=Path, help="also write the verifying-key artifact for the reusable verifier here")
    p.add_argument("--system", default="ezkl", help="the proof system's registry name")
    a = p.parse_args(argv)
    from dsperse.proofsystem import child_exit

    child_exit(lambda: _generate(a.vk, a.settings, a.srs, a.out, a.reusable, a.vka, a.system))


if __name__ == "__main__":
    main()
