"""The main job on an embedded default: bundled model, local chain, receipt.

``dsperse demo`` exports a tiny seeded MLP, slices it in three, proves and
verifies every slice and link, then starts anvil on 127.0.0.1, registers the
model's verifiers and submits the receipt in one transaction.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from dsperse import prove, verify
from dsperse import slice as slice_model
from dsperse.tools import zoo

log = logging.getLogger(__name__)


def run_demo(workdir: Path = Path("runs/demo"), slices: int = 3, chain: bool = True, cache: Path | None = None) -> int:
    workdir = Path(workdir).resolve()
    t0 = time.perf_counter()
    model = zoo.export("mlp", workdir / "mlp.onnx")
    plan = slice_model(model, workdir / "slices", max_slices=slices)
    print(f"[1/4] sliced {model.name} into {len(plan.slices)} slices")
    x = np.random.default_rng(7).standard_normal(plan.input_shape).astype(np.float32)
    job_id = f"demo-{int(time.time())}"
    run = prove(plan, x, workdir / "run", config={"paths": {"cache": cache}} if cache else None, job_id=job_id)
    print(f"[2/4] proved {len(run.proofs)} slices: " + ", ".join(f"{p.seconds:.1f}s" for p in run.proofs))
    verify(run, job_id=job_id, expected_input=x, reference=True)
    print(f"[3/4] verified every slice proof and link; output {np.round(run.output, 4).tolist()} matches onnxruntime")
    if chain:
        from dsperse.chain import local

        with local() as c:
            model_id = c.register_model(run)
            sent = c.submit(run, job_id=job_id)
            onchain = c.receipt(job_id)
            print(f"[4/4] receipt stored on the local chain in one transaction (model {model_id[:16]}..., "
                  f"tx {sent.tx_hash}, block {sent.block}, {sent.gas_used:,} gas):")
            print(json.dumps(_plain(onchain), indent=2, default=str))
    print(f"done in {time.perf_counter() - t0:.0f}s; artifacts in {workdir}")
    return 0


def _plain(obj):
    import dataclasses

    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
