"""Bad models and bad inputs fail early with the library's own errors, not EZKL tracebacks."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import dsperse
from dsperse.errors import (
    DynamicShapeError, InputShapeError, MalformedModelError, MissingArtifactError, UnsupportedOpError,
)
from dsperse.slicing.model import coerce_input, load_model


def _save(model: onnx.ModelProto, path):
    onnx.save(model, str(path))
    return path


def _graph(nodes, inp_shape=(1, 4), out_shape=(1, 4), inits=()):
    g = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(inp_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        initializer=list(inits),
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def test_truncated_file_is_malformed(zoo_model, tmp_path):
    data = zoo_model("mlp").read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(MalformedModelError, match="not a valid ONNX model"):
        load_model(bad)


def test_garbage_file_is_malformed(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"this is not protobuf at all \x00\xff" * 10)
    with pytest.raises(MalformedModelError):
        dsperse.slice(bad)


def test_missing_file(tmp_path):
    with pytest.raises(MissingArtifactError, match="ONNX model"):
        load_model(tmp_path / "nope.onnx")


def test_unsupported_op_is_named(tmp_path):
    model = _graph([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Hardmax", ["r"], ["y"])])
    with pytest.raises(UnsupportedOpError, match="Hardmax") as info:
        load_model(_save(model, tmp_path / "m.onnx"))
    assert info.value.ops == ["Hardmax"]


def test_dynamic_batch_is_fixed_to_one(tmp_path):
    model = _graph([helper.make_node("Relu", ["x"], ["y"])], inp_shape=("N", 4), out_shape=("N", 4))
    lm = load_model(_save(model, tmp_path / "m.onnx"))
    assert lm.input_shape == (1, 4) and lm.output_shape == (1, 4)


def test_dynamic_inner_dim_needs_input_shape(tmp_path):
    path = _save(_graph([helper.make_node("Relu", ["x"], ["y"])], inp_shape=(1, "L"), out_shape=(1, "L")), tmp_path / "m.onnx")
    with pytest.raises(DynamicShapeError, match="input_shape"):
        load_model(path)
    assert load_model(path, input_shape=(1, 6)).input_shape == (1, 6)


def test_wrong_input_length():
    with pytest.raises(InputShapeError, match=r"3 values.*\(1, 4\)"):
        coerce_input((1, 4), [1.0, 2.0, 3.0])
    with pytest.raises(InputShapeError, match="non-finite"):
        coerce_input((1, 2), [1.0, float("nan")])
    assert coerce_input((1, 4), [1, 2, 3, 4]).shape == (1, 4)


def test_prove_rejects_wrong_input_before_any_proving(mlp_plan, tmp_path):
    circuits = []  # never reached: the input check comes first
    with pytest.raises(InputShapeError):
        dsperse.prove(mlp_plan, np.zeros(5, np.float32), tmp_path, circuits=circuits)
