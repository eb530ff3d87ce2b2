"""Split an op too big for one circuit into tiles that are proven separately.

A Conv is split by output-channel groups, a Gemm or a MatMul with constant weights by output columns. Each
tile computes the op on a slice of the weights, followed by the channel-local ops after it (bias, activation,
pooling, scalar arithmetic, batch norm), and one Concat puts the pieces back. The rewritten graph computes
the same function, nothing downstream changes, and each tile becomes a slice of its own.

An op with no constant weights (attention's ``q @ k^T``) or a single output channel cannot be tiled this way;
the planner then refuses with the rows it would need.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

UNARY_LOCAL = frozenset(
    {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Abs",
     "Neg", "Identity", "Dropout", "Erf", "Exp", "Sqrt", "Round", "Floor", "Ceil", "Sign"}
)
BINARY_LOCAL = frozenset({"Add", "Sub", "Mul", "Div"})
POOLS = frozenset({"MaxPool", "AveragePool"})


@dataclass(frozen=True)
class TileGroup:
    """How one op was tiled: the tiles' node names and the Concat that joins them."""

    op: str
    op_type: str
    axis: int
    ranges: tuple[tuple[int, int], ...]
    tiles: tuple[tuple[str, ...], ...]
    concat: str

    def describe(self, tile: int) -> str:
        a, b = self.ranges[tile]
        what = "out-channels" if self.op_type == "Conv" else "out-columns"
        return f"{self.op_type} {self.op} {what} {a}:{b} ({tile + 1} of {len(self.ranges)})"


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ranges covering 0..n, sizes differing by at most one."""
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i + 1] > bounds[i]]


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def tile_model(
    proto: onnx.ModelProto, budget: int, cost: Callable[[onnx.NodeProto], int], *, forced: dict[str, int] | None = None
) -> tuple[onnx.ModelProto, list[TileGroup]]:
    """Rewrite ``proto`` so that no tileable op (with the ops that follow it) costs more than ``budget`` rows.

    ``forced`` maps an op's name to a tile count, overriding the estimate (the planner raises it when EZKL
    counts more rows than estimated).
    """
    forced = forced or {}
    g = proto.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    outputs = {o.name for o in g.output}
    consumers: dict[str, list[int]] = {}
    for j, n in enumerate(g.node):
        for t in n.input:
            consumers.setdefault(t, []).append(j)
    rank = _ranks(proto)

    new_nodes: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    groups: list[TileGroup] = []
    absorbed: set[int] = set()
    for j, node in enumerate(g.node):
        if j in absorbed:
            continue
        spec = _tileable(node, inits, rank)
        if spec is None:
            new_nodes.append(node)
            continue
        axis, n_out = spec
        chain = _followers(g.node, j, consumers, inits, outputs, axis, n_out, node.op_type == "Conv", rank)
        name = node.name or f"{node.op_type}_{j}"
        total = cost(node) + sum(cost(g.node[k]) for k in chain)
        parts = forced.get(name, math.ceil(total / max(budget, 1)))
        parts = min(parts, n_out)
        if parts <= 1:
            new_nodes.append(node)
            continue
        absorbed.update(chain)
        ranges = split(n_out, parts)
        last_out = g.node[chain[-1]].output[0] if chain else node.output[0]
        tile_names, tails = [], []
        for t, (a, b) in enumerate(ranges):
            rename: dict[str, str] = {}
            members = []
            for k in (j, *chain):
                src = g.node[k]
                ins = []
                for pos, inp in enumerate(src.input):
                    if inp in rename:
                        ins.append(rename[inp])
                    elif inp in inits and _sliced(src, pos, k == j):
                        arr = _slice_const(src, pos, inits[inp], axis, n_out, rank.get(src.output[0], 0), a, b, k == j)
                        if arr is None:
                            ins.append(inp)
                        else:
                            new_name = f"{inp}::tile{t}"
                            new_inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), new_name))
                            ins.append(new_name)
                    else:
                        ins.append(inp)
                outs = [f"{o}::tile{t}" for o in src.output]
                rename.update(zip(src.output, outs))
                nn = onnx.NodeProto()
                nn.CopyFrom(src)
                nn.name = f"{src.name or src.op_type + '_' + str(k)}::tile{t}"
                del nn.input[:]
                nn.input.extend(ins)
                del nn.output[:]
                nn.output.extend(outs)
                new_nodes.append(nn)
                members.append(nn.name)
            tile_names.append(tuple(members))
            tails.append(rename[last_out])
        concat = helper.make_node("Concat", tails, [last_out], name=f"{name}::concat", axis=axis)
        new_nodes.append(concat)
        groups.append(TileGroup(name, node.op_type, axis, tuple(ranges), tuple(tile_names), concat.name))

    if not groups:
        return proto, []
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    del out.graph.node[:]
    out.graph.node.extend(new_nodes)
    out.graph.initializer.extend(new_inits)
    del out.graph.value_info[:]
    used = {t for n in new_nodes for t in n.input}
    keep = [i for i in out.graph.initializer if i.name in used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(keep)
    return shape_inference.infer_shapes(out, strict_mode=True), groups


def _ranks(proto: onnx.ModelProto) -> dict[str, int]:
    g = proto.graph
    return {vi.name: len(vi.type.tensor_type.shape.dim) for vi in [*g.value_info, *g.input, *g.output]}


def _tileable(node: onnx.NodeProto, inits: dict[str, np.ndarray], rank: dict[str, int]) -> tuple[int, int] | None:
    """(axis, number of output channels/columns) of an op this module can tile, else None."""
    if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in inits:
        if _attr(node, "group", 1) != 1:
            return None
        return 1, int(inits[node.input[1]].shape[0])
    if node.op_type == "Gemm" and node.input[1] in inits:
        if len(node.input) > 2 and node.input[2] and node.input[2] not in inits:
            return None
        b = inits[node.input[1]]
        return 1, int(b.shape[0] if _attr(node, "transB", 0) else b.shape[1])
    if node.op_type == "MatMul" and node.input[1] in inits and inits[node.input[1]].ndim == 2:
        r = rank.get(node.output[0], 2)
        return r - 1, int(inits[node.input[1]].shape[1])
    return None


def _sliced(node: onnx.NodeProto, pos: int, heavy: bool) -> bool:
    """Which constant inputs of a tiled node carry the tiled axis."""
    if heavy:
        return pos >= 1
    if node.op_type == "BatchNormalization":
        return pos >= 1
    return node.op_type in BINARY_LOCAL


def _slice_const(node, pos, arr, axis, n_out, out_rank, a, b, heavy) -> np.ndarray | None:
    if heavy:
        if node.op_type == "Conv":
            return arr[a:b]  # weight (M, C, kh, kw) and bias (M,)
        if node.op_type == "Gemm":
            if pos == 1:
                return arr[a:b] if _attr(node, "transB", 0) else arr[:, a:b]
            return _slice_broadcast(arr, 1, 2, n_out, a, b)  # C broadcasts to (N, M)
        return arr[:, a:b]  # MatMul weight (K, N)
    if node.op_type == "BatchNormalization":
        return arr[a:b]
    return _slice_broadcast(arr, axis, out_rank, n_out, a, b)


def _slice_broadcast(arr: np.ndarray, axis: int, out_rank: int, n_out: int, a: int, b: int) -> np.ndarray | None:
    """Slice a constant that broadcasts against the tiled tensor along ``axis``; None when it has no such axis."""
    idx = axis - (out_rank - arr.ndim)
    if idx < 0 or arr.shape[idx] == 1:
        return None
    if arr.shape[idx] != n_out:
        raise ValueError(f"constant of shape {arr.shape} does not broadcast over {n_out} channels")
    sl = [slice(None)] * arr.ndim
    sl[idx] = slice(a, b)
    return arr[tuple(sl)]


def _followers(nodes, j, consumers, inits, outputs, axis, n_out, spatial_ok, rank) -> list[int]:
    """The channel-local ops right after node ``j`` that can move into its tiles (a single-consumer chain)."""
    chain: list[int] = []
    cur = nodes[j].output[0]
    while cur not in outputs and len(consumers.get(cur, [])) == 1:
        k = consumers[cur][0]
        n = nodes[k]
        if n.input[0] != cur or len(n.output) != 1:
            break
        others = [t for t in n.input[1:] if t]
        if n.op_type in UNARY_LOCAL or n.op_type == "Clip":
            ok = all(t in inits and inits[t].size == 1 for t in others)
        elif n.op_type in POOLS:
            ok = spatial_ok and axis == 1
        elif n.op_type == "BatchNormalization":
            ok = axis == 1 and all(t in inits for t in others)
        elif n.op_type in BINARY_LOCAL:
            ok = len(others) == 1 and others[0] in inits and _broadcasts(inits[others[0]], axis, rank.get(cur, 0), n_out)
        else:
            ok = False
        if not ok:
            break
        chain.append(k)
        cur = n.output[0]
    return chain


def _broadcasts(arr: np.ndarray, axis: int, out_rank: int, n_out: int) -> bool:
    if arr.ndim > out_rank:
        return False
    idx = axis - (out_rank - arr.ndim)
    return idx < 0 or arr.shape[idx] in (1, n_out)
