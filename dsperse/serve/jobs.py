"""Jobs of the inference service: request parsing, and one directory per job that survives a restart.

No Ray here. A job lives in ``<jobs dir>/<job_id>/``: ``job.json`` (its input, reference output, status,
per-slice status, error, receipt, chain transaction), written atomically after every change, next to the
core's run directory files (``manifest.json``, witnesses, proofs, ``run.json``) that ``dsperse.prove``'s
resume logic reads. A job whose ``job.json`` says queued, proving or submitting is unfinished: the service
picks it up again when it starts.
"""
from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..config import ServeConfig
from ..errors import DsperseError, InputShapeError
from ..slicing.model import coerce_input
from ..util import storage

JOB_FILE = "job.json"
STATES = ("queued", "proving", "submitting", "proven", "failed")
"""A job's life: queued -> proving -> (submitting, when a chain is configured) -> proven; or failed."""
UNFINISHED = ("queued", "proving", "submitting")
SLICE_STATES = ("queued", "proving", "proven", "failed")
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_BODY_BYTES = ServeConfig().max_body
"""Default cap on a request body (1 MiB); larger requests get 413 before they are parsed."""


class RequestError(DsperseError):
    """A request the service refuses; ``status`` is the HTTP status it maps to (4xx)."""

    status = 400

    def __init__(self, message: str, status: int | None = None):
        if status is not None:
            self.status = status
        super().__init__(message)


class BadInputError(RequestError):
    """The input is not a numeric tensor of the model's shape (HTTP 422)."""

    status = 422


class BodyTooLargeError(RequestError):
    """The request body is over the service's limit (HTTP 413)."""

    status = 413

    def __init__(self, size: int, limit: int):
        self.size, self.limit = size, limit
        super().__init__(f"request body of {size:,} bytes is over the limit of {limit:,} bytes (--max-body)")


class JobNotFoundError(RequestError):
    """No job with this id (HTTP 404)."""

    status = 404

    def __init__(self, job_id: str):
        self.job_id = job_id
        super().__init__(f"no job {job_id!r}")


class JobConflictError(RequestError):
    """A job id that is already used for another input (HTTP 409)."""

    status = 409


def status_of(exc: BaseException) -> int:
    """The HTTP status a library error maps to: a bad input 422, other refusals their own 4xx."""
    if isinstance(exc, RequestError):
        return exc.status
    if isinstance(exc, InputShapeError):
        return 422
    return 400


def _check_numbers(value: Any, path: str = "input") -> None:
    """Nested lists of real numbers only (JSON true/false, strings, null and objects are refused)."""
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_numbers(v, f"{path}[{i}]")
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInputError(f"{path} is {json.dumps(value)[:40]}: every element of input must be a number")
    elif isinstance(value, float) and not math.isfinite(value):
        raise BadInputError(f"{path} is not finite: every element of input must be a finite number")


@dataclass(frozen=True)
class InferRequest:
    """A parsed ``POST /v1/infer`` body."""

    x: np.ndarray
    job_id: str | None
    model: str | None


def parse_infer(body: bytes, input_shape: Sequence[int], max_bytes: int = MAX_BODY_BYTES) -> InferRequest:
    """``{"input": [...], "job_id": optional, "model": optional}`` -> an input of the model's shape, or RequestError.

    The input may be nested as the model's shape or flat (row-major), as ``dsperse prove`` accepts it.
    """
    if len(body) > max_bytes:
        raise BodyTooLargeError(len(body), max_bytes)
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(f"body is not JSON ({exc})") from None
    except RecursionError:
        raise RequestError("body is nested too deeply to be a model input") from None
    if not isinstance(data, dict):
        raise RequestError('body must be a JSON object like {"input": [[...]], "job_id": "optional"}')
    unknown = sorted(set(data) - {"input", "job_id", "model"})
    if unknown:
        raise RequestError(f"unknown field(s) {unknown}; the body takes input, job_id and model")
    if "input" not in data:
        raise BadInputError('missing "input": a (nested) list of numbers of the model\'s input shape')
    raw = data["input"]
    if not isinstance(raw, list):
        raise BadInputError(f"input must be a (nested) list of numbers, not {type(raw).__name__}")
    try:
        _check_numbers(raw)
    except RecursionError:
        raise BadInputError("input is nested too deeply to be a tensor of the model's input shape") from None
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except ValueError:  # ragged nesting
        raise BadInputError(
            f"input is ragged (or nested too deeply): not a tensor of the model's input shape {tuple(input_shape)}"
        ) from None
    if np.any(np.abs(arr) > np.finfo(np.float32).max):
        raise BadInputError("input has values beyond float32's range")
    try:
        x = coerce_input(tuple(input_shape), arr.astype(np.float32))
    except InputShapeError as exc:
        raise BadInputError(str(exc)) from None
    job_id = data.get("job_id")
    if job_id is not None and (not isinstance(job_id, str) or not JOB_ID.match(job_id)):
        raise BadInputError(f"job_id {job_id!r} must be 1-128 characters of A-Z a-z 0-9 . _ - (not starting with . _ -)")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise BadInputError("model must be a string (a model id from GET /v1/models)")
    return InferRequest(x, job_id, model)


def new_job_id() -> str:
    return uuid.uuid4().hex[:20]


class JobStore:
    """The jobs directory: one ``<job_id>/job.json`` per job, kept in memory too; thread-safe."""

    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._jobs: dict[str, dict] = {}
        for path in sorted(self.root.glob(f"*/{JOB_FILE}")):
            try:
                job = storage.read_json(path)
            except (OSError, ValueError):
                continue  # a job dir without a readable job.json was never accepted (job.json is written first)
            self._jobs[job["job_id"]] = job

    def workdir(self, job_id: str) -> Path:
        return self.root / job_id

    def create(self, job_id: str, x: np.ndarray, output: np.ndarray, model: str, slices: int) -> tuple[dict, bool]:
        """Record a new queued job (``output``: the reference answer, kept in the model's output shape); returns (job, created). The same id with the same input is the same job
        (a retried request); with another input it is a JobConflictError."""
        flat = [float(v) for v in np.asarray(x, np.float32).flatten()]
        with self._lock:
            old = self.get(job_id, missing_ok=True)
            if old is not None:
                if old["input"] != flat or old["model"] != model:
                    raise JobConflictError(f"job id {job_id!r} is already used for another input or model; pick another")
                return old, False
            now = time.time()
            job = {
                "job_id": job_id, "model": model, "input": flat, "input_shape": list(np.shape(x)),
                "output": np.asarray(output, np.float64).tolist(), "status": "queued", "error": None,
                "slices": {str(i): {"status": "queued"} for i in range(slices)},
                "created": now, "updated": now, "attempts": 0, "receipt": None, "chain": None,
                "run_dir": str(self.workdir(job_id)),
            }  # fmt: skip
            self._save(job)
            return job, True

    def get(self, job_id: str, missing_ok: bool = False) -> dict | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None and JOB_ID.match(job_id) and (path := self.workdir(job_id) / JOB_FILE).is_file():
                job = self._jobs[job_id] = storage.read_json(path)  # written by another process on this dir
            if job is None and not missing_ok:
                raise JobNotFoundError(job_id)
            return json.loads(json.dumps(job)) if job is not None else None  # a copy: callers never see half an update

    def update(self, job_id: str, **fields) -> dict:
        """Change top-level fields of a job and write it (atomically) before returning."""
        with self._lock:
            job = self._jobs[job_id]
            job.update(fields)
            job["updated"] = time.time()
            self._save(job)
            return job

    def set_slice(self, job_id: str, index: int, **fields) -> None:
        with self._lock:
            job = self._jobs[job_id]
            job["slices"].setdefault(str(index), {}).update(fields)
            job["updated"] = time.time()
            self._save(job)

    def unfinished(self) -> list[str]:
        """Ids of jobs not yet proven or failed, oldest first: what a (re)started service proves."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j["status"] in UNFINISHED]
            return [j["job_id"] for j in sorted(jobs, key=lambda j: j["created"])]

    def counts(self) -> dict[str, int]:
        with self._lock:
            out = {s: 0 for s in STATES}
            for j in self._jobs.values():
                out[j["status"]] = out.get(j["status"], 0) + 1
            return out

    def __iter__(self) -> Iterator[dict]:
        with self._lock:
            return iter([json.loads(json.dumps(j)) for j in self._jobs.values()])

    def _save(self, job: dict) -> None:
        storage.write_json(self.workdir(job["job_id"]) / JOB_FILE, job)
