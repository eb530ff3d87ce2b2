"""Rows a boundary costs: a Poseidon-hashed edge vs a KZG-committed one, against the tensor's size N.

    .venv/bin/python benchmarks/bench_boundary_rows.py --sizes 256,1024,4096,16384

Mixed k across slices needs hashed boundaries (a commitment is only comparable at one k); this measures what
hashing adds (EZKL's own row count, ``gen_settings``; no proving), to weigh it against the padding it saves.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import onnx
from onnx import TensorProto, helper


def _relu_model(n: int, path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "edge", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.save(m, str(path))


def rows(n: int, vis: str, d: Path) -> int:
    import ezkl

    from dsperse.proofsystem import _ezkl
    from dsperse.util import storage
    model, settings = d / f"m{n}.onnx", d / f"s{n}{vis}.json"
    _relu_model(n, model)
    ra = _ezkl.run_args(input_visibility=vis, output_visibility=vis, param_visibility="fixed", input_scale=7, param_scale=7)
    _ezkl.call("gen_settings", RuntimeError, ezkl.gen_settings, str(model), str(settings), py_run_args=ra)
    return int(storage.read_json(settings)["num_rows"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="256,1024,4096,16384")
    a = p.parse_args()
    print("| N | rows, polycommit in+out | rows, hashed in+out | added by hashing | per element |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as td:
        for n in (int(s) for s in a.sizes.split(",")):
            pc, hs = rows(n, "polycommit", Path(td)), rows(n, "hashed", Path(td))
            print(f"| {n:,} | {pc:,} | {hs:,} | {hs - pc:,} | {(hs - pc) / (2 * n):.1f} |", flush=True)


if __name__ == "__main__":
    main()
