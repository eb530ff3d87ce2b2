"""Plan a model as a graph of slices, every one within a target circuit size.

The planner tiles every op too big for the target (:mod:`dsperse.slicing.tiling`), lays the rewritten graph out in
topological order with each tile's nodes together, and cuts it into consecutive pieces, each as large as the
target allows. A spatial tile (a band of output rows) is always a slice of its own, written with canonical
tensor names: its bands are then byte-identical ONNX files, hence one circuit and one set of keys. A piece
may read and write several tensors: each is an edge of the slice graph, committed on both sides and linked
on every column. A skip connection is one more edge, so residual blocks are cut
where it pays. EZKL's own row count then checks every slice; a slice over the target is tiled finer (or cut
smaller) and the plan is made again.

The model's input reaches the circuits through ONE slice (its public instances are the receipt's input): when
several slices read it, a cheap Identity "source" slice publishes it and commits it for all of them.
"""
from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import helper
from onnx.utils import Extractor

from dsperse.artifacts import Slice, SlicePlan
from dsperse.errors import SlicingError
from dsperse.slicing import sizing
from dsperse.slicing.model import LoadedModel
from dsperse.slicing.tiling import tensor_shapes, tile_model
from dsperse.util import storage

log = logging.getLogger(__name__)

SOURCE_SUFFIX = "::source"
MAX_ROUNDS = 8


@dataclass(frozen=True)
class _Piece:
    nodes: tuple[int, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    cost: int


def plan_graph(lm: LoadedModel, root: Path, max_logrows: int, *, estimate: str = "ezkl") -> SlicePlan:
    """Slice ``lm`` so that every slice fits ``2^max_logrows`` rows; write the slices and ``plan.json`` to ``root``."""
    from dsperse.slicing.chain import _node_cost

    budget = sizing.row_budget(max_logrows)
    forced: dict[str, int] = {}
    calib: dict[str, float] = {}  # node -> EZKL's rows / the estimate, learned from pieces that came out over
    model_shapes = tensor_shapes(lm.proto)
    for round_ in range(MAX_ROUNDS):
        proto, groups = tile_model(lm.proto, int(budget * 0.9), lambda n: _node_cost(n, model_shapes), forced=forced)
        proto = _with_source(proto, lm.input_name)
        shapes = tensor_shapes(proto)
        pins = {name: (gi, t) for gi, g in enumerate(groups) if g.spatial for t, members in enumerate(g.tiles) for name in members}
        costs = {n.name: int(_plan_cost(n, shapes) * calib.get(n.name, 1.0)) for n in proto.graph.node}
        pieces = _cut(proto, lm, costs, budget, pins)
        pieces = _add_source_if_needed(proto, pieces, lm.input_name)
        rows = _measure(proto, pieces, lm.input_name, lm.output_name) if estimate == "ezkl" else [p.cost for p in pieces]
        over = [(p, r) for p, r in zip(pieces, rows) if r > budget]
        if not over:
            break
        log.info("plan round %d: %d slices over %d rows (%s); tiling finer", round_ + 1, len(over), budget,
                 ", ".join(f"{r:,} vs estimated {p.cost:,} ({_ops(proto, p)})" for p, r in over))
        joins = {c for g in groups for c in (*g.joins, *g.windows)}
        for p, r in over:
            names = {proto.graph.node[j].name for j in p.nodes}
            tiles_in = [(g, t) for g in groups for t in g.tiles if set(t) & names]
            if len(tiles_in) == 1 and set(tiles_in[0][1]) >= names - {"dsperse::source"} - joins:
                g, members = tiles_in[0]  # one tile alone is too big: more tiles for its op
                if g.minimal(g.tiles.index(members)):
                    what = "channel" if g.op_type == "Conv" else "column"
                    raise SlicingError(
                        f"op {g.op_type} {g.op!r}: one output {what}{' and row' if g.spatial else ''} alone "
                        f"needs {r:,} rows (k={sizing.logrows_for(r)}), over max_logrows={max_logrows} ({budget:,} rows), "
                        f"and tiling cannot go finer; raise max_logrows to {sizing.logrows_for(r)}."
                    )
                forced[g.op] = math.ceil(len(g.tiles) * r / budget * 1.1)
            elif len([j for j in p.nodes if proto.graph.node[j].op_type not in ("Identity", "Concat")]) > 1:
                ratio = 1.05 * r / max(p.cost, 1)  # the estimate packed too much: cost these nodes as EZKL does
                for j in p.nodes:
                    name = proto.graph.node[j].name
                    calib[name] = calib.get(name, 1.0) * ratio
                for g, _ in tiles_in:  # and make its tiles match what EZKL counts
                    forced[g.op] = max(forced.get(g.op, len(g.tiles)), math.ceil(len(g.tiles) * r / max(p.cost, 1)))
            elif proto.graph.node[p.nodes[0]].name == "dsperse::source":
                raise SlicingError(
                    f"the model input ({math.prod(lm.input_shape):,} elements) alone needs {r:,} rows to be published and "
                    f"committed (k={sizing.logrows_for(r)}), over the target max_logrows={max_logrows} ({budget:,} rows). "
                    f"Raise max_logrows to {sizing.logrows_for(r)}."
                )
            else:
                node = proto.graph.node[p.nodes[0]]
                raise SlicingError(
                    f"op {node.op_type} {node.name!r} alone needs {r:,} rows (k={sizing.logrows_for(r)}), over the target "
                    f"max_logrows={max_logrows} ({budget:,} rows), and dsperse cannot tile it (no constant weights, or one "
                    "output channel). Raise max_logrows or change the model."
                )
    else:
        raise SlicingError(f"could not fit every slice within max_logrows={max_logrows} after {MAX_ROUNDS} rounds")

    root.mkdir(parents=True, exist_ok=True)
    tile_of = {name: g.describe(t) for g in groups for t, members in enumerate(g.tiles) for name in members}
    extractor = Extractor(proto)
    slices = []
    for i, (p, r) in enumerate(zip(pieces, rows)):
        blob = canonical(extractor.extract_model(list(p.inputs), list(p.outputs))).SerializeToString()
        path = root / f"slice_{i}.onnx"
        storage.write_bytes(path, blob)
        nodes = [proto.graph.node[j] for j in p.nodes]
        tiles = sorted({tile_of[n.name] for n in nodes if n.name in tile_of})
        slices.append(
            Slice(
                index=i, path=path.resolve(), inputs=p.inputs, input_shapes=tuple(shapes[t] for t in p.inputs),
                outputs=p.outputs, output_shapes=tuple(shapes[t] for t in p.outputs),
                op_types=tuple(n.op_type for n in nodes), cost=int(r), tile="; ".join(tiles),
                circuit_group=storage.sha256_bytes(blob)[:16],
            )
        )
    plan = SlicePlan(
        model_path=lm.path.resolve(), model_sha256=lm.sha256, root=root.resolve(), input_name=lm.input_name,
        input_shape=lm.input_shape, output_name=lm.output_name, output_shape=lm.output_shape, strategy="target",
        slices=slices, max_logrows=max_logrows,
    )
    plan.save()
    log.info("planned %s at max_logrows=%d: %d slices, %d tiled ops", lm.path.name, max_logrows, len(slices), len(groups))
    return plan


def _ops(proto: onnx.ModelProto, p: _Piece) -> str:
    ops = [proto.graph.node[j].op_type for j in p.nodes]
    return " ".join(ops[:6]) + (f" +{len(ops) - 6}" if len(ops) > 6 else "")


def _static(proto: onnx.ModelProto) -> set[str]:
    static = {i.name for i in proto.graph.initializer}
    for n in proto.graph.node:
        if n.op_type == "Constant" or (n.input and all((not t) or t in static for t in n.input)):
            static.update(n.output)
    return static


def _with_source(proto: onnx.ModelProto, input_name: str) -> onnx.ModelProto:
    """Put an Identity right after the model input; it becomes a slice of its own only when needed."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    src = input_name + SOURCE_SUFFIX
    for n in out.graph.node:
        for k, t in enumerate(n.input):
            if t == input_name:
                n.input[k] = src
    ident = helper.make_node("Identity", [input_name], [src], name="dsperse::source")
    nodes = [ident, *out.graph.node]
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return onnx.shape_inference.infer_shapes(out, strict_mode=True)


def _plan_cost(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> int:
    """The MAC/element heuristic, plus what EZKL charges for a window cut out for spatial tiles."""
    from dsperse.slicing.chain import _node_cost

    if node.op_type in ("Slice", "Pad"):  # measured: ~4 rows per element of a committed window
        return 4 * math.prod(shapes.get(node.output[0], (1,)))
    return _node_cost(node, shapes)


def _cut(
    proto: onnx.ModelProto, lm: LoadedModel, cost: dict[str, int], budget: int, pins: dict[str, tuple[int, int]] | None = None
) -> list[_Piece]:
    """Consecutive pieces of the node order, each as large as ``budget`` allows (greedy; the source alone).

    A node in ``pins`` (a spatial tile's) goes in a piece holding exactly its tile.
    """
    pins = pins or {}
    static = _static(proto)
    nodes = [j for j, n in enumerate(proto.graph.node) if not all(o in static for o in n.output)]
    groups: list[list[int]] = [[nodes[0]]]  # the source Identity
    cur: list[int] = []
    cur_cost = 0
    cur_pin = None
    for j in nodes[1:]:
        name = proto.graph.node[j].name
        c = cost[name]
        pin = pins.get(name)
        if cur and (pin != cur_pin or (pin is None and cur_cost + c > budget)):
            groups.append(cur)
            cur, cur_cost = [], 0
        cur_pin = pin
        cur.append(j)
        cur_cost += c
    if cur:
        groups.append(cur)
    return _pieces(proto, groups, static, lm.output_name, cost)


def _pieces(proto, groups: list[list[int]], static: set[str], output_name: str, cost: dict[str, int]) -> list[_Piece]:
    owner = {}
    for gi, members in enumerate(groups):
        for j in members:
            for o in proto.graph.node[j].output:
                owner[o] = gi
    readers: dict[str, set[int]] = {}
    for gi, members in enumerate(groups):
        for j in members:
            for t in proto.graph.node[j].input:
                if t and t not in static:
                    readers.setdefault(t, set()).add(gi)
    pieces = []
    for gi, members in enumerate(groups):
        ins = _unique(t for j in members for t in proto.graph.node[j].input
                      if t and t not in static and owner.get(t) != gi)  # fmt: skip
        outs = _unique(o for j in members for o in proto.graph.node[j].output
                       if o == output_name or readers.get(o, set()) - {gi})  # fmt: skip
        pieces.append(_Piece(tuple(members), tuple(ins), tuple(outs), sum(cost[proto.graph.node[j].name] for j in members)))
    if output_name not in pieces[-1].outputs or len(pieces[-1].outputs) != 1:
        raise SlicingError(f"the model output {output_name!r} is not produced by the last slice alone; cannot plan this graph")
    return pieces


def _unique(xs) -> list[str]:
    seen: list[str] = []
    for x in xs:
        if x not in seen:
            seen.append(x)
    return seen


def _add_source_if_needed(proto: onnx.ModelProto, pieces: list[_Piece], input_name: str) -> list[_Piece]:
    """Keep the source slice only when several slices read the model input, or its reader reads more."""
    src = input_name + SOURCE_SUFFIX
    readers = [p for p in pieces[1:] if src in p.inputs]
    if len(readers) == 1 and readers[0] is pieces[1] and readers[0].inputs == (src,):
        merged = _Piece(pieces[0].nodes + pieces[1].nodes, (input_name,), pieces[1].outputs, pieces[1].cost)
        return [merged, *pieces[2:]]
    return pieces


def _measure(proto: onnx.ModelProto, pieces: list[_Piece], input_name: str, output_name: str) -> list[int]:
    """EZKL's row count of every piece (``gen_settings``, fixed weights), with the visibilities the compile step
    gives it: the model's input and output public, every edge committed (a public or committed tensor costs
    different rows)."""
    from dsperse import proofsystem

    ps = proofsystem.get()
    extractor = Extractor(proto)
    rows, seen = [], {}
    with tempfile.TemporaryDirectory(prefix="dsperse-plan-") as d:
        for i, p in enumerate(pieces):
            blob = canonical(extractor.extract_model(list(p.inputs), list(p.outputs))).SerializeToString()
            key = (blob, input_name in p.inputs, output_name in p.outputs)
            if key not in seen:  # the bands of a spatial tiling are one circuit: count it once
                path, settings = Path(d) / f"p{i}.onnx", Path(d) / f"p{i}.json"
                path.write_bytes(blob)
                ps.gen_settings(
                    path, settings, error=SlicingError, context=f"row count of slice {i}",
                    param_visibility="fixed", input_visibility="public" if input_name in p.inputs else "polycommit",
                    output_visibility="public" if output_name in p.outputs else "polycommit",
                )
                seen[key] = int(storage.read_json(settings)["num_rows"])
            rows.append(seen[key])
    return rows


def canonical(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every tensor and node renamed by position (``in0``, ``w3``, ``t7``, ``n2``, ``out0``).

    Names carry no meaning for EZKL or onnxruntime (inputs and outputs are fed by position), and two slices that
    compute the same thing on the same weights become the same bytes: one key cache entry, one setup.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    names: dict[str, str] = {"": ""}
    for k, vi in enumerate(g.input):
        names.setdefault(vi.name, f"in{k}")
    for k, vi in enumerate(g.output):
        names.setdefault(vi.name, f"out{k}")
    for k, init in enumerate(g.initializer):
        names.setdefault(init.name, f"w{k}")
    for n in g.node:
        for t in n.output:
            names.setdefault(t, f"t{len(names)}")
    for k, n in enumerate(g.node):
        n.name = f"n{k}"
        n.doc_string = ""
        n.input[:] = [names.get(t, t) for t in n.input]
        n.output[:] = [names[t] for t in n.output]
    for vi in [*g.input, *g.output, *g.value_info]:
        vi.name = names.get(vi.name, vi.name)
    for init in g.initializer:
        init.name = names[init.name]
    ordered = sorted(g.value_info, key=lambda vi: vi.name)
    del g.value_info[:]
    g.value_info.extend(ordered)
    g.name = "dsperse-slice"
    return out

