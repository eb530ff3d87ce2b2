"""Per-slice circuits: settings, calibration, compile and key setup, cached by content.

Scales chain through the slices: slice i+1's input scale is slice i's output
scale, so slice i's output field elements feed slice i+1 unchanged and the
boundary commitment is the same polynomial on both sides. Every slice gets the
same logrows so one SRS serves them all (and an aggregator later).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
from filelock import FileLock

from dsperse import proofsystem
from dsperse.artifacts import Circuit, SlicePlan, circuit_from_json
from dsperse.circuits import srs as srs_mod
from dsperse.circuits import srs_shrink
from dsperse.config import CircuitConfig  # noqa: F401 - re-exported: the circuits stage's section
from dsperse.errors import CircuitError, MissingArtifactError
from dsperse.slicing.chain import reference_tensors
from dsperse.slicing.sizing import MIN_LOGROWS, row_budget
from dsperse.util import storage

log = logging.getLogger(__name__)



COMPILED_FILE = "circuits.json"
POSEIDON_ROWS_PER_INPUT = 41
"""Rows EZKL 22.3 spends hashing one input element (measured: 16 -> 658, 256 -> 10,498, 3,072 -> 125,954 rows);
they sit in their own columns, so a slice needs max(its own rows, the hash's rows)."""
AUTO_HASH_MIN_INPUTS = 128
"""Below this many input elements ``auto`` keeps the input public. Measured (benchmarks/RESULTS.md, "Model input"):
a public input costs verifyProof ~1.1 k gas per element, a hashed one a flat ~115 k more than an empty input, so
hashing pays from ~104 elements; it also doubles the proving time and the key at the same k."""


def resolve_input_visibility(visibility: str, n_inputs: int, logrows: int) -> str:
    """``auto`` -> hashed or public for an input of ``n_inputs`` elements in circuits of 2^logrows rows."""
    if visibility != "auto":
        return visibility
    fits = POSEIDON_ROWS_PER_INPUT * n_inputs <= row_budget(logrows)
    choice = "hashed" if n_inputs >= AUTO_HASH_MIN_INPUTS and fits else "public"
    log.info("model input of %d elements: %s (hashing needs ~%d rows, circuits have %d)", n_inputs, choice,
             POSEIDON_ROWS_PER_INPUT * n_inputs, row_budget(logrows))  # fmt: skip
    return choice


def compile_plan(
    plan: SlicePlan,
    *,
    srs: Path | str | None = None,
    cache: Path | str | None = None,
    config: CircuitConfig = CircuitConfig(),
    calibration_input: np.ndarray | None = None,
    on_circuit: Callable[[Circuit], None] | None = None,
) -> list[Circuit]:
    """Build (or fetch from cache) a circuit and keys for every slice of ``plan``.

    The result is recorded in the plan directory (``circuits.json``) with what it was made from; a later call
    with the same plan, config, SRS and calibration data returns it without re-running calibration or
    ``gen_settings`` (compile once, prove many times).
    """
    proofsystem.get().quiet_logs()
    cache_root = srs_mod.cache_dir(cache)
    fingerprint = _fingerprint(plan, srs, cache_root, config, calibration_input)
    if (known := _recorded(plan, fingerprint)) is not None:
        log.info("circuits of %s reused from %s", plan.root, COMPILED_FILE)
        for c in known:
            if on_circuit:
                on_circuit(c)
        return known
    if calibration_input is None:
        calibration_input = np.random.default_rng(0).standard_normal(plan.input_shape).astype(np.float32)
    values = reference_tensors(plan, calibration_input)
    n = len(plan.slices)

    with tempfile.TemporaryDirectory(prefix="dsperse-settings-") as tmpd:
        tmp = Path(tmpd)
        data_paths = []
        for i, s in enumerate(plan.slices):
            dp = tmp / f"cal_{i}.json"
            dp.write_text(json.dumps({"input_data": [values[t].flatten().tolist() for t in s.inputs]}))
            data_paths.append(dp)

        scale = config.scale
        if scale is None:
            scale = _calibrate(plan.slices[0].path, data_paths[0], tmp / "scale.json", config, None)["run_args"]["input_scale"]
        if config.logrows:
            logrows = config.logrows
        elif plan.max_logrows:  # the planner sized every slice already: start small, grow to what EZKL needs
            logrows = MIN_LOGROWS
        else:
            logrows = max(
                MIN_LOGROWS,
                *(_calibrate(s.path, data_paths[i], tmp / f"k_{i}.json", config, scale)["run_args"]["logrows"] for i, s in enumerate(plan.slices)),
            )
        vis = resolve_input_visibility(config.input_visibility, int(np.prod(plan.input_shape)), plan.max_logrows or logrows)
        config = dataclasses.replace(config, input_visibility=vis)
        while True:
            settings, scale_of, made = [], {plan.input_name: scale}, {}
            for i, s in enumerate(plan.slices):
                vis_in, vis_out = _visibilities(plan, config, i, n)
                in_scales = {scale_of[t] for t in s.inputs}
                if len(in_scales) != 1:
                    raise CircuitError(f"slice {i} reads tensors at different scales {sorted(in_scales)}; EZKL takes one input scale")
                in_scale = in_scales.pop()
                same = (storage.sha256_file(s.path), vis_in, vis_out, in_scale)  # spatial tiles: one circuit, once
                if same not in made:
                    sp = tmp / f"settings_{i}.json"
                    proofsystem.get().gen_settings(
                        s.path, sp, error=CircuitError, context=f"slice {i}",
                        input_visibility=vis_in, output_visibility=vis_out, param_visibility=config.param_visibility,
                        input_scale=in_scale, param_scale=scale, logrows=logrows, check_mode="safe",
                    )
                    made[same] = storage.read_json(sp)
                st = made[same]
                settings.append(st)
                scale_of.update(zip(s.outputs, st["model_output_scales"]))
            need = max(_min_logrows(st) for st in settings)
            if need <= logrows or config.logrows:
                if need > logrows and not config.fold_rows:
                    raise CircuitError(f"logrows={logrows} is too small: the largest slice needs {need}")
                break
            logrows = need
    if plan.max_logrows and logrows > plan.max_logrows:
        raise CircuitError(f"the plan targets max_logrows={plan.max_logrows} but a slice needs k={logrows}; slice it again")

    # a larger SRS (the aggregator's, a ceremony's) is cut to this k once: same secret, no per-call shrink
    the_srs = srs_shrink.for_circuits(srs_mod.resolve(logrows, srs, cache_root), logrows, cache_root)
    circuits = []
    for i, (s, st) in enumerate(zip(plan.slices, settings)):
        c = _build(i, s.path, st, the_srs, cache_root)
        circuits.append(c)
        if on_circuit:
            on_circuit(c)
    storage.write_json(plan.root / COMPILED_FILE, {"fingerprint": fingerprint, "circuits": [_to_json(c) for c in circuits]})
    return circuits


def _visibilities(plan: SlicePlan, config: CircuitConfig, i: int, n: int) -> tuple[str, str]:
    """Model input/output visibility where a slice touches them, the boundary visibility on every edge."""
    if config.per_slice is not None:
        return config.visibilities(i, n)
    s = plan.slices[i]
    reads_input, writes_output = plan.consumes_model_input(i), plan.produces_model_output(i)
    if reads_input and len(s.inputs) > 1 or writes_output and len(s.outputs) > 1:
        raise CircuitError(f"slice {i} mixes the model's input/output with edges between slices; EZKL gives all its "
                           "inputs (outputs) one visibility. Slice the model again.")  # fmt: skip
    return (
        config.input_visibility if reads_input else config.boundary_visibility,
        config.output_visibility if writes_output else config.boundary_visibility,
    )


def _fingerprint(plan: SlicePlan, srs, cache_root: Path, config: CircuitConfig, calibration_input) -> str:
    from dataclasses import asdict

    cal = "default" if calibration_input is None else storage.sha256_bytes(np.asarray(calibration_input, np.float32).tobytes())
    slices = [storage.sha256_file(s.path) for s in plan.slices]
    srs_part = str(Path(srs).resolve()) if srs is not None else "dev"
    system = proofsystem.cache_tag(proofsystem.get())
    blob = json.dumps([asdict(config), cal, slices, srs_part, str(cache_root), system], sort_keys=True, default=str)
    return storage.sha256_bytes(blob.encode())


def _recorded(plan: SlicePlan, fingerprint: str) -> list[Circuit] | None:
    path = plan.root / COMPILED_FILE
    if not path.is_file():
        return None
    try:
        data = storage.read_json(path)
        if data.get("fingerprint") != fingerprint:
            return None
        circuits = [dataclasses.replace(circuit_from_json(c), reused=True) for c in data["circuits"]]
        for c in circuits:
            c.check()
    except (ValueError, KeyError, TypeError, MissingArtifactError):
        return None
    return circuits


def _to_json(c: Circuit) -> dict:
    from dsperse.artifacts import _to_dict

    return _to_dict(c)


def _calibrate(model: Path, data: Path, out: Path, config: CircuitConfig, scale: int | None) -> dict:
    ps = proofsystem.get()
    ps.gen_settings(model, out, error=CircuitError, param_visibility=config.param_visibility)
    scales = [scale] if scale is not None else None
    ps.calibrate_settings(data, model, out, config.calibration_target, scales=scales, error=CircuitError)  # quiet
    return storage.read_json(out)


def _min_logrows(settings: dict) -> int:
    rows = settings["num_rows"] + (settings.get("num_blinding_factors") or 5) + 8
    return max(MIN_LOGROWS, int(np.ceil(np.log2(max(rows, 2)))))


def key_id(slice_onnx: Path, settings: dict, srs_id: str) -> str:
    """Content address of a circuit's keys: same slice, same settings, same SRS -> same keys."""
    canonical = {k: v for k, v in settings.items() if k != "timestamp"}
    for k in ("required_range_checks", "required_lookups"):  # EZKL emits these from a hash set: order varies
        canonical[k] = sorted(canonical.get(k) or [], key=json.dumps)
    system = proofsystem.cache_tag(proofsystem.get())
    return storage.sha256_bytes(
        Path(slice_onnx).read_bytes(), json.dumps(canonical, sort_keys=True).encode(), srs_id.encode(), system.encode()
    )


def _build(index: int, model: Path, settings: dict, the_srs: srs_mod.SRS, cache_root: Path) -> Circuit:
    kid = key_id(model, settings, the_srs.id)
    d = cache_root / "keys" / kid
    files = {"settings": d / "settings.json", "compiled": d / "circuit.ezkl", "vk": d / "vk.key", "pk": d / "pk.key"}
    d.mkdir(parents=True, exist_ok=True)
    with FileLock(str(d / ".lock")):
        reused = all(p.exists() for p in files.values())
        if not reused:
            log.info("slice %d: compile + setup (k=%d, key %s)", index, settings["run_args"]["logrows"], kid[:12])
            storage.write_json(files["settings"], settings)
            with storage.atomic_path(files["compiled"]) as tmp:
                proofsystem.get().compile_circuit(model, tmp, files["settings"], error=CircuitError, context=f"slice {index}")
            with storage.atomic_path(files["vk"]) as tvk, storage.atomic_path(files["pk"]) as tpk:
                proofsystem.get().setup(files["compiled"], tvk, tpk, the_srs.path, error=CircuitError, context=f"slice {index}")
        else:
            log.info("slice %d: keys found in cache (%s)", index, kid[:12])
    ra = settings["run_args"]
    return Circuit(
        slice_index=index, key_id=kid, compiled=files["compiled"], settings=files["settings"], vk=files["vk"], pk=files["pk"],
        srs=the_srs.path, logrows=ra["logrows"], input_scale=ra["input_scale"], output_scale=settings["model_output_scales"][0],
        input_visibility=_vis(ra["input_visibility"]), output_visibility=_vis(ra["output_visibility"]),
        num_rows=settings["num_rows"], reused=reused, output_scales=tuple(settings["model_output_scales"]),
        layout=proofsystem.get().commitment_layout(settings),
    )


def _vis(v) -> str:
    """EZKL writes visibilities as 'Public', 'KZGCommit', {'Hashed': {...}}; normalise to our names."""
    name = v if isinstance(v, str) else next(iter(v))
    return {"Public": "public", "KZGCommit": "polycommit", "Private": "private", "Fixed": "fixed", "Hashed": "hashed"}.get(name, name.lower())


