"""Split an op too big for one circuit into tiles that are proven separately.

A 2-D Conv is split into bands of output rows over all its channels (and, when one row is still too big, also
into output-channel groups); a MatMul with constant weights over a sequence, by rows of the sequence (then
also by output columns); a Gemm, or a MatMul without a sequence dimension, by output columns. Each tile computes
the op on its part, followed by the channel-local ops after it (bias, activation, pooling, scalar arithmetic,
batch norm), and Concat nodes put the pieces back, so the rewritten graph computes the same function and
nothing downstream changes.

For row bands, a Pad node (the Conv's own padding) and one Slice per band (the band's window, with the halo
the kernel and pools need) run upstream of the tiles, and each tile is a padding-free Conv on the same
weights: equal bands are the same circuit, set up once.

An op with no constant weights (attention's ``q @ k^T``) or a single output channel and row cannot be tiled
this way; the planner then refuses with the rows it would need.
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
    """How one op was tiled: each tile's output channels (and output rows, for spatial tiles), its nodes, and
    the Concat node(s) that join the tiles back."""

    op: str
    op_type: str
    axis: int
    ranges: tuple[tuple[int, int], ...]
    tiles: tuple[tuple[str, ...], ...]
    joins: tuple[str, ...]
    rows: tuple[tuple[int, int], ...] = ()
    """Per tile, the rows of the tiled output it computes (spatial tiles); empty when tiled by channel only."""
    windows: tuple[str, ...] = ()
    """The Pad/Slice nodes that cut each spatial tile's input window (they run upstream of the tiles)."""

    @property
    def spatial(self) -> bool:
        return bool(self.rows)

    def minimal(self, tile: int) -> bool:
        """True when the tile is one output channel (and one output row): no finer tiling exists."""
        a, b = self.ranges[tile]
        return b - a == 1 and (not self.spatial or self.rows[tile][1] - self.rows[tile][0] == 1)

    def describe(self, tile: int) -> str:
        a, b = self.ranges[tile]
        what = f"out-channels {a}:{b}" if self.op_type == "Conv" else f"out-columns {a}:{b}"
        if self.spatial:
            r0, r1 = self.rows[tile]
            what = f"rows {r0}:{r1}" + (f", {what}" if len(set(self.ranges)) > 1 else "")
        return f"{self.op_type} {self.op} {what} ({tile + 1} of {len(self.tiles)})"


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ranges covering 0..n, sizes differing by at most one."""
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i + 1] > bounds[i]]


def layout(parts: int, n_out: int, height: int) -> tuple[int, int]:
    """(channel groups, row bands) for ``parts`` tiles of an output with ``n_out`` channels and ``height`` rows.

    Row bands come first: bands of equal height over the same weights are one circuit (one setup, one key).
    A band count that divides the height keeps every band equal; channel groups are added only when one
    output row per band is still too much.
    """
    if height <= 1:
        return min(parts, n_out), 1
    if parts <= height:
        even = next(d for d in range(parts, height + 1) if height % d == 0)
        return 1, even if even <= 2 * parts else parts
    return min(n_out, math.ceil(parts / height)), height


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _set_attr(node: onnx.NodeProto, name: str, value) -> None:
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


def tile_model(
    proto: onnx.ModelProto,
    budget: int,
    cost: Callable[[onnx.NodeProto], int],
    *,
    forced: dict[str, int] | None = None,
    spatial: bool = True,
) -> tuple[onnx.ModelProto, list[TileGroup]]:
    """Rewrite ``proto`` so that no tileable op (with the ops that follow it) costs more than ``budget`` rows.

    ``forced`` maps an op's name to a tile count, overriding the estimate (the planner raises it when EZKL
    counts more rows than estimated). ``spatial=False`` tiles by output channels/columns only (no row bands).
    """
    forced = forced or {}
    g = proto.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    outputs = {o.name for o in g.output}
    consumers: dict[str, list[int]] = {}
    for j, n in enumerate(g.node):
        for t in n.input:
            consumers.setdefault(t, []).append(j)
    shapes = tensor_shapes(proto)
    rank = {k: len(v) for k, v in shapes.items()}
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 13)

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
        last_out = g.node[chain[-1]].output[0] if chain else node.output[0]
        rows_spec = _row_tiling(node, [g.node[k] for k in chain], inits, rank) if spatial else None
        row_axis, window_ops = rows_spec if rows_spec is not None else (0, [])
        height = shapes[last_out][row_axis] if rows_spec is not None else 1
        n_groups, n_bands = layout(parts, n_out, height)
        if n_groups * n_bands <= 1:
            new_nodes.append(node)
            continue
        absorbed.update(chain)
        channel_ranges = split(n_out, n_groups)
        bands = split(height, n_bands) if n_bands > 1 else [(0, height)]

        windows: list[str] = []
        window_of: dict[int, str] = {}
        if n_bands > 1:
            src, pads = node.input[0], list(_attr(node, "pads", [0, 0, 0, 0]))
            if any(pads):  # pad once upstream, so every band (border or not) is the same valid Conv
                src = f"{name}::padded"
                full = [0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]]
                if opset >= 11:
                    new_inits.append(numpy_helper.from_array(np.array(full, np.int64), f"{name}::pads"))
                    pad = helper.make_node("Pad", [node.input[0], f"{name}::pads"], [src], name=f"{name}::pad")
                else:
                    pad = helper.make_node("Pad", [node.input[0]], [src], name=f"{name}::pad", pads=full)
                new_nodes.append(pad)
                windows.append(pad.name)
            for t, (r0, r1) in enumerate(bands):
                lo, hi = _rows_needed(r0, r1, window_ops)
                wname = f"{name}::window{t}"
                consts = {"starts": [lo], "ends": [hi], "axes": [row_axis], "steps": [1]}
                for key, val in consts.items():
                    new_inits.append(numpy_helper.from_array(np.array(val, np.int64), f"{wname}::{key}"))
                sl = helper.make_node("Slice", [src, *(f"{wname}::{k}" for k in consts)], [wname], name=wname)
                new_nodes.append(sl)
                windows.append(sl.name)
                window_of[t] = wname

        sliced_consts: dict[tuple[str, int], str] = {}
        tile_names, tails, tile_ranges, tile_rows = [], [], [], []
        for cg, (a, b) in enumerate(channel_ranges):
            for t, rows in enumerate(bands):
                idx = len(tile_names)
                rename: dict[str, str] = {}
                if t in window_of:
                    rename[node.input[0]] = window_of[t]
                members = []
                for k in (j, *chain):
                    src_node = g.node[k]
                    ins = []
                    for pos, inp in enumerate(src_node.input):
                        if inp in rename:
                            ins.append(rename[inp])
                        elif n_groups > 1 and inp in inits and _sliced(src_node, pos, k == j):
                            key = (inp, cg)
                            if key not in sliced_consts:
                                arr = _slice_const(src_node, pos, inits[inp], axis, n_out, rank.get(src_node.output[0], 0), a, b, k == j)
                                if arr is None:
                                    sliced_consts[key] = inp
                                else:
                                    sliced_consts[key] = f"{inp}::ch{cg}"
                                    new_inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), sliced_consts[key]))
                            ins.append(sliced_consts[key])
                        else:
                            ins.append(inp)
                    outs = [f"{o}::tile{idx}" for o in src_node.output]
                    rename.update(zip(src_node.output, outs))
                    nn = onnx.NodeProto()
                    nn.CopyFrom(src_node)
                    nn.name = f"{src_node.name or src_node.op_type + '_' + str(k)}::tile{idx}"
                    del nn.input[:]
                    nn.input.extend(ins)
                    del nn.output[:]
                    nn.output.extend(outs)
                    if k == j and t in window_of and node.op_type == "Conv":
                        _set_attr(nn, "pads", [0, 0, 0, 0])
                    new_nodes.append(nn)
                    members.append(nn.name)
                tile_names.append(tuple(members))
                tails.append(rename[last_out])
                tile_ranges.append((a, b))
                tile_rows.append(rows)

        joins = []
        if n_bands > 1 and n_groups > 1:  # rows back together per channel group, then the groups
            parts_out = []
            for cg in range(n_groups):
                out = f"{last_out}::ch{cg}"
                joins.append(helper.make_node("Concat", tails[cg * n_bands:(cg + 1) * n_bands], [out], name=f"{name}::rows{cg}", axis=row_axis))
                parts_out.append(out)
            joins.append(helper.make_node("Concat", parts_out, [last_out], name=f"{name}::concat", axis=axis))
        else:
            joins.append(helper.make_node("Concat", tails, [last_out], name=f"{name}::concat", axis=row_axis if n_bands > 1 else axis))
        new_nodes.extend(joins)
        groups.append(TileGroup(
            name, node.op_type, axis, tuple(tile_ranges), tuple(tile_names), tuple(n.name for n in joins),
            rows=tuple(tile_rows) if n_bands > 1 else (), windows=tuple(windows),
        ))

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


def tensor_shapes(proto: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Static shape of every tensor of a shape-inferred model, initializers included."""
    g = proto.graph
    out = {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim) for vi in [*g.value_info, *g.input, *g.output]}
    out.update({i.name: tuple(i.dims) for i in g.initializer})
    return out


def _row_tiling(node: onnx.NodeProto, chain: list[onnx.NodeProto], inits, rank) -> tuple[int, list[tuple[int, int]]] | None:
    """(row axis, (effective kernel height, stride) of each op that changes the rows) when the op and its
    followers can be tiled by rows of their output, else None.

    A 2-D Conv's rows are its output's height (a halo for the kernel and pools); a MatMul's are the sequence
    dimension of a (batch, sequence, features) input, each row computed on its own (no halo).
    """
    r = rank.get(node.output[0], 0)
    if node.op_type == "MatMul" and r >= 3:
        row = r - 2
        for n in chain:
            if n.op_type in BINARY_LOCAL and _varies_along(next(inits[t] for t in n.input if t in inits), row, r):
                return None
        return row, []
    ops = _window_ops(node, chain, inits, rank)
    return None if ops is None else (2, ops)


def _varies_along(arr: np.ndarray, axis: int, out_rank: int) -> bool:
    idx = axis - (out_rank - arr.ndim)
    return idx >= 0 and arr.shape[idx] != 1


def _window_ops(conv: onnx.NodeProto, chain: list[onnx.NodeProto], inits, rank) -> list[tuple[int, int]] | None:
    """(effective kernel height, stride) of each op that changes the rows, in order; None when the chain cannot
    be tiled by rows (not a 2-D Conv, auto_pad, a padded or ceil-mode pool, a constant that varies by row)."""
    if conv.op_type != "Conv" or rank.get(conv.output[0]) != 4 or _attr(conv, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    w = inits[conv.input[1]]
    ops = [((w.shape[2] - 1) * _attr(conv, "dilations", [1, 1])[0] + 1, _attr(conv, "strides", [1, 1])[0])]
    for n in chain:
        if n.op_type in POOLS:
            if any(_attr(n, "pads", [0])) or _attr(n, "ceil_mode", 0) or _attr(n, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                return None
            kh = _attr(n, "kernel_shape")[0]
            ops.append(((kh - 1) * _attr(n, "dilations", [1, 1])[0] + 1, _attr(n, "strides", [1, 1])[0]))
        elif n.op_type in BINARY_LOCAL and _varies_along(next(inits[t] for t in n.input if t in inits), 2, 4):
            return None
    return ops


def _rows_needed(r0: int, r1: int, ops: list[tuple[int, int]]) -> tuple[int, int]:
    """Input rows (of the padded input) that output rows r0:r1 of the chain read: the band plus the halo."""
    for k_eff, stride in reversed(ops):
        r0, r1 = r0 * stride, (r1 - 1) * stride + k_eff
    return r0, r1


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
        commuted = n.op_type in ("Add", "Mul") and len(n.input) == 2 and n.input[1] == cur  # torch: Add(bias, x)
        if (n.input[0] != cur and not commuted) or len(n.output) != 1:
            break
        others = [t for t in n.input if t and t != cur]
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
