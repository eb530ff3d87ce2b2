"""Child process that writes one slice's Solidity verifier with EZKL.

Run as ``python -m dsperse.chain._gen_verifier --vk VK --settings S --srs SRS --out Verifier.sol``
by :func:`dsperse.chain.verifiers.verifier_source`. It leaves with ``os._exit`` because the
interpreter aborts (exit 134) while finalizing after EZKL's async calls. Kept apart from the
package ``__init__`` so ``-m`` does not import it twice.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def _generate(vk: Path, settings: Path, srs: Path, out: Path, reusable: bool = False, vka: Path | None = None) -> None:
    import ezkl

    from dsperse.errors import ChainError
    from dsperse.proofsystem import _ezkl
    from dsperse.util import storage

    with storage.atomic_path(out) as tmp_sol, storage.atomic_path(out.with_suffix(".abi")) as tmp_abi:
        _ezkl.call_async("create_evm_verifier", ChainError, ezkl.create_evm_verifier,
                         str(vk), str(settings), str(tmp_sol), str(tmp_abi), str(srs), reusable=reusable)  # fmt: skip
    if vka is not None:  # the verifying-key artifact a reusable verifier is given per call
        with storage.atomic_path(vka) as tmp_vka:
            _ezkl.call_async("create_evm_vka", ChainError, ezkl.create_evm_vka, str(vk), str(settings), str(tmp_vka), str(srs))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m dsperse.chain._gen_verifier",
                                description="Write the Solidity verifier of one slice with EZKL (used as a child process).")  # fmt: skip
    p.add_argument("--vk", type=Path, required=True)
    p.add_argument("--settings", type=Path, required=True)
    p.add_argument("--srs", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--reusable", action="store_true", help="EZKL's experimental reusable verifier (benchmarks only)")
    p.add_argument("--vka", type=Path, help="also write the verifying-key artifact for the reusable verifier here")
    a = p.parse_args(argv)
    from dsperse.proofsystem._ezkl import child_exit

    child_exit(lambda: _generate(a.vk, a.settings, a.srs, a.out, a.reusable, a.vka))


if __name__ == "__main__":
    main()
