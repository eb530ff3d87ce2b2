"""Cut an ONNX graph into consecutive sub-graphs with one tensor crossing each cut.

A cut between node j-1 and node j (in topological order) is *valid* when exactly one
runtime tensor crosses it. Initializers, Constant nodes and anything computed only
from them are static and never count: the extractor copies them into every slice
that needs them. A cut inside a skip connection has two tensors crossing and is
refused, so a residual block always stays in one slice.

Strategies:
- ``layers``: cut before every heavy op (Conv, Gemm, MatMul, ...) where a cut is valid;
- ``balanced``: choose cuts among all valid ones to minimise the largest slice's cost.
Both honour ``max_slices`` by merging with the balanced partition.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import onnx
from onnx.utils import Extractor

from dsperse.artifacts import Slice, SlicePlan
from dsperse.errors import SlicingError
from dsperse.slicing.model import LoadedModel, load_model
from dsperse.util import storage

log = logging.getLogger(__name__)

Strategy = Literal["layers", "balanced"]
HEAVY_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum"})
LINEAR_OPS = frozenset({"Add", "Sub", "Mul", "Neg", "Sum", "Identity", "Dropout", "BatchNormalization"})
FREE_OPS = frozenset(
    {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Slice", "Gather", "Constant", "Shape", "Cast", "Expand"}
)


@dataclass(frozen=True)
class GraphInfo:
    """What the cutter needs to know about a model's nodes."""

    nodes: tuple[onnx.NodeProto, ...]
    shapes: dict[str, tuple[int, ...]]
    static: frozenset[str]
    valid_cuts: tuple[int, ...]
    """Positions j (1..n-1) where cutting before node j leaves exactly one tensor crossing."""
    crossing: dict[int, str]
    node_costs: tuple[int, ...]


def analyse(model: LoadedModel) -> GraphInfo:
    g = model.proto.graph
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        shapes[vi.name] = tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
    for init in g.initializer:
        shapes[init.name] = tuple(init.dims)

    static = {i.name for i in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" or (n.input and all((not i) or i in static for i in n.input)):
            static.update(n.output)
    # Static nodes take no position: the extractor copies them into whichever slice reads them.
    nodes = tuple(n for n in g.node if not all(o in static for o in n.output))

    producer = {model.input_name: -1}
    for j, n in enumerate(nodes):
        for o in n.output:
            producer[o] = j
    last_use: dict[str, int] = {}
    for j, n in enumerate(nodes):
        for i in n.input:
            if i and i not in static:
                last_use[i] = j
    last_use[model.output_name] = len(nodes)  # the graph output "uses" its tensor after the last node

    valid, crossing = [], {}
    for j in range(1, len(nodes)):
        live = [t for t, p in producer.items() if p < j and last_use.get(t, -2) >= j]
        if len(live) == 1 and live[0] != model.input_name:
            valid.append(j)
            crossing[j] = live[0]
    costs = tuple(_node_cost(n, shapes) for n in nodes)
    return GraphInfo(nodes, shapes, frozenset(static), tuple(valid), crossing, costs)


def _numel(shape: Sequence[int]) -> int:
    return int(np.prod(shape)) if shape else 1


def _node_cost(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> int:
    """A rough circuit-rows estimate: MACs for heavy ops, a range-check per element for non-linear ops."""
    out = _numel(shapes.get(node.output[0], ()))
    if node.op_type in ("Gemm", "MatMul", "Einsum"):
        a = shapes.get(node.input[0], ())
        k = a[-1] if a else 1
        return out * k
    if node.op_type in ("Conv", "ConvTranspose"):
        w = shapes.get(node.input[1], ())
        return out * (_numel(w[1:]) if len(w) > 1 else 1)
    if node.op_type in FREE_OPS:
        return 0
    if node.op_type in LINEAR_OPS:
        return out
    return 4 * out  # non-linear: decomposition range checks dominate


def _partition(costs: Sequence[int], candidates: Sequence[int], parts: int) -> list[int]:
    """Pick ``parts-1`` cut positions from ``candidates`` minimising the largest segment's cost (exact DP)."""
    n = len(costs)
    prefix = np.concatenate([[0], np.cumsum(costs)])
    points = [0, *sorted(candidates), n]
    parts = max(1, min(parts, len(points) - 1))

    @lru_cache(maxsize=None)
    def best(start: int, k: int) -> tuple[int, tuple[int, ...]]:
        # best split of points[start:] into k segments -> (max cost, cut indices into points)
        if k == 1:
            return int(prefix[n] - prefix[points[start]]), ()
        result = (1 << 62, ())
        for nxt in range(start + 1, len(points) - k + 1):
            seg = int(prefix[points[nxt]] - prefix[points[start]])
            if seg >= result[0]:
                break
            rest, cuts = best(nxt, k - 1)
            cand = (max(seg, rest), (nxt, *cuts))
            result = min(result, cand)
        return result

    _, idx = best(0, parts)
    return [points[i] for i in idx]


def layer_cuts(info: GraphInfo) -> list[int]:
    """One slice per heavy op: for each heavy op after the first, the last valid cut before it.

    Element-wise ops that follow a heavy op (bias, activation) stay with it; a skip connection
    keeps everything up to its merge point in one slice.
    """
    heavy = [j for j, n in enumerate(info.nodes) if n.op_type in HEAVY_OPS]
    cuts: list[int] = []
    for h in heavy[1:]:
        options = [c for c in info.valid_cuts if c <= h and c > (cuts[-1] if cuts else 0)]
        if options and any(info.nodes[k].op_type in HEAVY_OPS for k in range(cuts[-1] if cuts else 0, options[-1])):
            cuts.append(options[-1])
    return cuts


def choose_cuts(info: GraphInfo, strategy: Strategy, max_slices: int | None) -> list[int]:
    if strategy == "layers":
        candidates = layer_cuts(info)
        if max_slices is None or len(candidates) + 1 <= max_slices:
            return candidates
        return _partition(info.node_costs, candidates, max_slices)
    if strategy == "balanced":
        heavy = sum(1 for n in info.nodes if n.op_type in HEAVY_OPS)
        parts = max_slices if max_slices is not None else max(1, heavy)
        return _partition(info.node_costs, info.valid_cuts, parts)
    raise SlicingError(f"unknown slicing strategy {strategy!r}; choose 'layers' or 'balanced'")


def ezkl_costs(lm: LoadedModel, info: GraphInfo) -> GraphInfo:
    """Replace the heuristic with EZKL's own row count for each piece between two valid cuts.

    Each piece's ``num_rows`` (from ``ezkl.gen_settings``, ~0.3 s each) is booked on its first node;
    cuts only fall between pieces, so the partition sees exact per-piece rows.
    """
    import dataclasses
    import tempfile

    from dsperse import proofsystem

    ps = proofsystem.get()
    bounds = [0, *info.valid_cuts, len(info.nodes)]
    names = [lm.input_name, *(info.crossing[c] for c in info.valid_cuts), lm.output_name]
    extractor = Extractor(lm.proto)
    costs = [0] * len(info.nodes)
    with tempfile.TemporaryDirectory() as d:
        for k in range(len(bounds) - 1):
            piece, settings = Path(d) / f"p{k}.onnx", Path(d) / f"p{k}.json"
            onnx.save(extractor.extract_model([names[k]], [names[k + 1]]), str(piece))
            ps.gen_settings(piece, settings, error=SlicingError, context="cost estimate", param_visibility="fixed")
            costs[bounds[k]] = int(storage.read_json(settings)["num_rows"])
    return dataclasses.replace(info, node_costs=tuple(costs))


def slice_model(
    model: Path | str | LoadedModel,
    out_dir: Path | str | None = None,
    *,
    max_slices: int | None = None,
    strategy: Strategy = "balanced",
    cuts: Sequence[int] | None = None,
    input_shape: Sequence[int] | None = None,
    estimate: Literal["heuristic", "ezkl"] | None = None,
    max_logrows: int | None = None,
    max_memory: str | float | None = None,
) -> SlicePlan:
    """Slice a model and write ``slice_<i>.onnx`` files plus ``plan.json`` into ``out_dir``.

    ``max_logrows`` (or ``max_memory``, a proving-memory budget such as "4GB" mapped to k by measured peaks)
    plans a graph of slices that all fit 2^max_logrows rows: ops too big are tiled, small ones merged; see
    :mod:`dsperse.slicing.graph`. Without a target, ``strategy`` cuts a chain (one tensor per cut).
    ``cuts`` overrides the strategy with explicit node positions (each must be a valid cut).
    ``estimate="ezkl"`` plans on EZKL's row counts (the default with a target) instead of the MAC heuristic.
    """
    lm = model if isinstance(model, LoadedModel) else load_model(model, input_shape)
    if max_slices is not None and max_slices < 1:
        raise SlicingError(f"max_slices must be >= 1, got {max_slices}")
    if max_memory is not None:
        from dsperse.slicing.sizing import logrows_for_memory

        k = logrows_for_memory(max_memory)
        max_logrows = k if max_logrows is None else min(max_logrows, k)
    if max_logrows is not None:
        from dsperse.slicing.graph import plan_graph
        from dsperse.slicing.sizing import MIN_LOGROWS

        if max_logrows < MIN_LOGROWS or max_logrows > 26:
            raise SlicingError(f"max_logrows must be between {MIN_LOGROWS} and 26, got {max_logrows}")
        if cuts is not None or max_slices is not None:
            raise SlicingError("max_logrows/max_memory plan the cuts themselves; drop cuts= and max_slices=")
        root = Path(out_dir) if out_dir is not None else lm.path.with_suffix(".slices")
        return plan_graph(lm, root, max_logrows, estimate=estimate or "ezkl")
    estimate = estimate or "heuristic"
    info = analyse(lm)
    if estimate == "ezkl":
        info = ezkl_costs(lm, info)
    if cuts is None:
        cuts = choose_cuts(info, strategy, max_slices)
        if max_slices is not None and len(cuts) + 1 < max_slices:
            log.info("asked for up to %d slices; only %d valid cuts exist", max_slices, len(info.valid_cuts))
    else:
        bad = [c for c in cuts if c not in info.crossing]
        if bad:
            raise SlicingError(
                f"cannot cut before node(s) {bad}: more than one tensor crosses there (a skip connection) "
                f"or it is the graph's edge. Valid cut positions: {list(info.valid_cuts)}"
            )
        strategy = "explicit"  # type: ignore[assignment]
    cuts = sorted(set(cuts))

    root = Path(out_dir) if out_dir is not None else lm.path.with_suffix(".slices")
    root.mkdir(parents=True, exist_ok=True)
    bounds = [0, *cuts, len(info.nodes)]
    names = [lm.input_name, *(info.crossing[c] for c in cuts), lm.output_name]
    extractor = Extractor(lm.proto)
    slices = []
    for i in range(len(bounds) - 1):
        sub = extractor.extract_model([names[i]], [names[i + 1]])
        _strip_unused_inputs(sub, names[i])
        path = root / f"slice_{i}.onnx"


        storage.write_bytes(path, sub.SerializeToString())
        ops = tuple(n.op_type for n in info.nodes[bounds[i] : bounds[i + 1]])
        in_shape = info.shapes.get(names[i], lm.input_shape) if i else lm.input_shape
        slices.append(
            Slice(
                index=i,
                path=path.resolve(),
                inputs=(names[i],),
                input_shapes=(tuple(in_shape),),
                outputs=(names[i + 1],),
                output_shapes=(tuple(info.shapes.get(names[i + 1], lm.output_shape)),),
                op_types=ops,
                cost=int(sum(info.node_costs[bounds[i] : bounds[i + 1]])),
            )
        )
    plan = SlicePlan(
        model_path=lm.path.resolve(),
        model_sha256=lm.sha256,
        root=root.resolve(),
        input_name=lm.input_name,
        input_shape=lm.input_shape,
        output_name=lm.output_name,
        output_shape=lm.output_shape,
        strategy=strategy,
        slices=slices,
    )
    plan.save()
    log.info("sliced %s into %d slices (%s): costs %s", lm.path.name, len(slices), strategy, [s.cost for s in slices])
    return plan


def _strip_unused_inputs(sub: onnx.ModelProto, keep: str) -> None:
    """Extractor keeps initializers as graph inputs in old-IR models; EZKL wants exactly one real input."""
    inits = {i.name for i in sub.graph.initializer}
    extra = [i for i in sub.graph.input if i.name != keep and i.name not in inits]
    if extra:
        raise SlicingError(f"slice needs tensors {[i.name for i in extra]} besides {keep!r}; cannot cut here")


def reference_tensors(plan: SlicePlan, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run the slices in plan order with onnxruntime; returns every tensor that crosses a slice boundary."""
    import onnxruntime as ort

    values = {plan.input_name: np.asarray(x, np.float32).reshape(plan.input_shape)}
    for s in plan.slices:
        sess = ort.InferenceSession(str(s.path), providers=["CPUExecutionProvider"])
        # by position: a graph plan's slice files name their tensors canonically (graph_slicing.canonical)
        feeds = {i.name: values[t].astype(np.float32).reshape(shape) for i, t, shape in zip(sess.get_inputs(), s.inputs, s.input_shapes)}
        values.update(zip(s.outputs, sess.run(None, feeds)))
    return values


def reference_outputs(plan: SlicePlan, x: np.ndarray) -> list[np.ndarray]:
    """Each slice's first output, chained through the plan (the last one is the model's output)."""
    values = reference_tensors(plan, x)
    return [values[s.outputs[0]] for s in plan.slices]


def reference_model_output(model_path: Path, x: np.ndarray, input_shape: Sequence[int] | None = None) -> np.ndarray:
    """The whole model's output from onnxruntime, after the same shape fixing and folding as slicing."""
    import onnxruntime as ort

    lm = load_model(model_path, input_shape)
    sess = ort.InferenceSession(lm.proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run([lm.output_name], {lm.input_name: x.astype(np.float32).reshape(lm.input_shape)})[0]



