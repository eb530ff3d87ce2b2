"""Load an ONNX model and make sure EZKL can turn it into circuits.

Checks happen here, before any slow work: a truncated file, an op EZKL cannot
prove, or a dynamic shape should fail in milliseconds with a message that says
what to change, not minutes later inside EZKL.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import shape_inference

from dsperse.errors import (
    DynamicShapeError,
    InputShapeError,
    MalformedModelError,
    MissingArtifactError,
    ModelError,
    UnsupportedOpError,
)
from dsperse.util import storage

log = logging.getLogger(__name__)

# ONNX ops that EZKL 22.3 (through tract) lowers to circuits. A best-effort allowlist taken from EZKL's op
# conversion table; EZKL stays the final judge, and a compile failure still names the slice.
SUPPORTED_OPS = frozenset(
    """Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Clip Concat
    Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum Div Dropout Einsum Elu Equal Erf Exp Expand Flatten Floor
    Gather GatherElements GatherND Gemm GlobalAveragePool GlobalMaxPool Greater GreaterOrEqual HardSigmoid HardSwish
    Identity InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LpNormalization MatMul Max
    MaxPool Mean Min Mul Neg Not OneHot Or Pad Pow PRelu Range Reciprocal ReduceL1 ReduceL2 ReduceMax ReduceMean ReduceMin
    ReduceProd ReduceSum Relu Reshape Resize Round ScatterElements ScatterND Selu Shape Sigmoid Sign Sin Sinh Slice
    Softmax Softplus Softsign Sqrt Squeeze Sub Sum Tan Tanh TopK Transpose Trilu Unsqueeze Upsample Where Xor""".split()
)


@dataclass
class LoadedModel:
    """A checked model with static shapes, constants folded, and a single input and output."""

    path: Path
    proto: onnx.ModelProto
    sha256: str
    input_name: str
    input_shape: tuple[int, ...]
    output_name: str
    output_shape: tuple[int, ...]

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))


def load_model(path: Path | str, input_shape: Sequence[int] | None = None) -> LoadedModel:
    path = Path(path)
    if not path.exists():
        raise MissingArtifactError("ONNX model", path)
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError, truncated external data, ...
        raise MalformedModelError(path, f"cannot be parsed: {exc}") from exc
    if not proto.graph.node:
        raise MalformedModelError(path, "the graph has no nodes")
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # ValidationError; a mangled name is a UnicodeDecodeError inside the checker
        raise MalformedModelError(path, (str(exc).splitlines() or [type(exc).__name__])[0]) from exc

    custom = [n.op_type for n in proto.graph.node if n.domain not in ("", "ai.onnx")]
    unsupported = [n.op_type for n in proto.graph.node if n.op_type not in SUPPORTED_OPS] + custom
    if unsupported:
        raise UnsupportedOpError(path, unsupported)

    initializers = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(proto.graph.output) != 1:
        raise ModelError(
            f"{path}: dsperse proves models with exactly one input and one output; "
            f"this one has {len(inputs)} inputs and {len(proto.graph.output)} outputs"
        )
    _fix_input_shape(inputs[0], input_shape)
    try:
        proto = shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise MalformedModelError(path, f"shape inference failed: {exc}") from exc
    try:
        proto = _fold_constants(proto)
    except Exception as exc:  # onnxruntime refuses a graph the checker let through
        raise MalformedModelError(path, f"onnxruntime cannot load it: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc

    out = proto.graph.output[0]
    out_shape = _dims(out)
    if any(d <= 0 for d in out_shape):
        raise DynamicShapeError(out.name, out_shape)
    return LoadedModel(
        path=path,
        proto=proto,
        sha256=storage.sha256_file(path),
        input_name=inputs[0].name,
        input_shape=_dims(inputs[0]),
        output_name=out.name,
        output_shape=out_shape,
    )


def _dims(value_info: onnx.ValueInfoProto) -> tuple[int, ...]:
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim)


def _fix_input_shape(inp: onnx.ValueInfoProto, given: Sequence[int] | None) -> None:
    """Make the input static: use ``given``, else fix a symbolic leading (batch) dim to 1."""
    dims = inp.type.tensor_type.shape.dim
    current = _dims(inp)
    if given is not None:
        given = tuple(int(d) for d in given)
        if len(given) != len(current) or any(c > 0 and c != g for c, g in zip(current, given)):
            raise InputShapeError(current, f"input_shape={given}", " (rank or fixed dims differ)")
        shape = given
    else:
        shape = tuple(1 if (i == 0 and d <= 0) else d for i, d in enumerate(current))
        if any(d <= 0 for d in shape):
            raise DynamicShapeError(inp.name, tuple(d.dim_param or d.dim_value for d in dims))
    for d, v in zip(dims, shape):
        d.Clear()
        d.dim_value = v


def _fold_constants(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Fold shape arithmetic (Shape -> Gather -> Concat -> Reshape chains from torch export) into constants.

    Slicing then sees one real tensor crossing each cut instead of shape side-channels. Uses
    onnxruntime's BASIC level, which only folds and removes nodes and keeps standard ONNX ops.
    """
    import onnxruntime as ort

    if not any(n.op_type in ("Shape", "Size", "ConstantOfShape", "Range") for n in proto.graph.node):
        return proto
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "folded.onnx"
        opts.optimized_model_filepath = str(out)
        ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        folded = onnx.load(str(out))
    return shape_inference.infer_shapes(folded, strict_mode=True)


def coerce_input(model_shape: Sequence[int], data) -> np.ndarray:
    """Turn user data (nested lists, flat list, array) into a float32 array of the model's input shape."""
    arr = np.asarray(data, dtype=np.float32)
    expected = int(np.prod(model_shape))
    if arr.size != expected:
        raise InputShapeError(model_shape, f"{arr.size} values", f" ({expected} values)")
    if arr.shape != tuple(model_shape) and arr.ndim > 1 and arr.shape != (1, expected):
        raise InputShapeError(model_shape, f"shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputShapeError(model_shape, "non-finite values (NaN or inf)")
    return arr.reshape(model_shape)
