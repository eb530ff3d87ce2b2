"""The Ray Serve application: HTTP in front, warm SliceProver actors behind.

One ingress replica (FastAPI on Ray Serve) answers ``POST /v1/infer`` at once with onnxruntime's output of the
whole model and a job id, and hands the job to :class:`Engine`: worker threads in the replica that prove each
job with :func:`dsperse.distributed.prove_on_ray` on ONE :class:`~dsperse.distributed.ProverPool` (warm actors,
one per slice by default), verify the run, and submit its receipt to a chain when one is configured. Every
step is written to the job's ``job.json`` (:mod:`dsperse.serve.jobs`); a restarted replica proves what was
left unfinished, resuming from the run directories' manifests.

Imports Ray Serve and FastAPI: reach it through :func:`dsperse.serve.app`.
"""
# no `from __future__ import annotations`: FastAPI reads the handlers' annotations (Request) at runtime

import dataclasses
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

from ..artifacts import Circuit, SlicePlan, SliceProof
from ..config import DsperseConfig
from ..errors import DsperseError
from ..util import storage
from .jobs import BodyTooLargeError, JobStore, RequestError, new_job_id, parse_infer, status_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeSpec:
    """Everything the replica needs; built by :func:`dsperse.serve.app` in the process that deploys."""

    plan: str
    """The slice plan's directory."""
    config: DsperseConfig
    """Settings, resolved where the app is built: ``serve`` (workers, max_body, verify), ``prover`` (the actors'
    device and count), ``chain`` (rpc: submit each proven receipt there; private_key, deployments), ``paths``
    (the ledger)."""
    circuits: tuple[Circuit, ...]
    """Compiled circuits and keys (compiled by the deploying process, so the replica starts at once)."""
    jobs: str
    """The jobs directory: ``<jobs>/<job_id>/`` is each job's run directory."""
    name: str
    """The model id clients see in ``GET /v1/models`` (and may pass as ``"model"``)."""

    @property
    def rpc(self) -> str | None:
        return self.config.chain.rpc


class Reference:
    """onnxruntime on the whole model (after the same shape fixing and folding as slicing), one session kept."""

    def __init__(self, plan: SlicePlan):
        import onnxruntime as ort

        from ..slicing.model import load_model

        lm = load_model(plan.model_path, plan.input_shape)
        self.input_name, self.output_name, self.input_shape = lm.input_name, lm.output_name, lm.input_shape
        self.session = ort.InferenceSession(lm.proto.SerializeToString(), providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            return self.session.run([self.output_name], {self.input_name: x.astype(np.float32).reshape(self.input_shape)})[0]


class Engine:
    """Background proving of the jobs in a JobStore on one warm ProverPool; needs a Ray connection."""

    def __init__(self, plan: SlicePlan, spec: ServeSpec, store: JobStore):
        from ..distributed import ProverPool
        from ..tools import ledger as ledger_mod

        self.plan, self.spec, self.store = plan, spec, store
        self.circuits = list(spec.circuits)
        self.pool = ProverPool(self.circuits, spec.config.prover)
        self.ledger = ledger_mod.resolve(spec.config.paths.ledger_dir or False) or False
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._closing = threading.Event()
        self._chain = None
        self._chain_lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, name=f"dsperse-prover-{n}", daemon=True)
                         for n in range(spec.config.serve.workers)]  # fmt: skip
        resumed = store.unfinished()
        for job_id in resumed:
            self._queue.put(job_id)
        if resumed:
            log.warning("resuming %d unfinished job(s) from %s: %s", len(resumed), store.root, ", ".join(resumed))
        for t in self._threads:
            t.start()

    def submit(self, job_id: str) -> None:
        self._queue.put(job_id)

    def pending(self) -> int:
        return self._queue.qsize()

    def _loop(self) -> None:
        while not self._closing.is_set():
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self._prove(job_id)
            except BaseException:  # never let a job kill the worker; _prove records its failure
                log.exception("job %s: unexpected error in the prover thread", job_id)

    def _prove(self, job_id: str) -> None:
        from .. import verify
        from ..distributed import prove_on_ray
        from ..tools import ledger as ledger_mod

        store = self.store
        job = store.get(job_id)
        x = np.asarray(job["input"], np.float32).reshape(job["input_shape"])
        workdir = store.workdir(job_id)
        before = _proven_slices(workdir)
        store.update(job_id, status="proving", attempts=job["attempts"] + 1, error=None, started=time.time(),
                     resumed_slices=sorted(before))  # fmt: skip
        for c in self.circuits:
            if c.slice_index in before:
                store.set_slice(job_id, c.slice_index, status="proven", resumed=True)
            else:
                store.set_slice(job_id, c.slice_index, status="proving")
        made: list[SliceProof] = []

        def landed(p: SliceProof) -> None:
            made.append(p)
            store.set_slice(job_id, p.slice_index, status="proven", seconds=round(p.seconds, 3), prover=p.prover)

        try:
            run = prove_on_ray(self.plan, [x], workdir, circuits=self.circuits, job_id=job_id, cluster=None,
                               progress=False, on_slice_proven=landed, pool=self.pool)  # fmt: skip
            ledger_mod.record(ledger_mod.prove_rows(run, made), self.ledger)
            checked = self.spec.config.serve.verify
            if checked:
                verify(run, job_id=job_id, expected_input=x, ledger=self.ledger)
            receipt = {**dataclasses.asdict(run.receipt), "verified": checked,
                       "prove_seconds": round(sum(p.seconds for p in run.proofs), 3)}  # fmt: skip
            if self.spec.rpc is None:
                store.update(job_id, status="proven", receipt=receipt, finished=time.time())
                return
            store.update(job_id, status="submitting", receipt=receipt)
            chain = self._submit(run, job_id)
            store.update(job_id, status="proven", chain=chain, finished=time.time())
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if self._closing.is_set():  # the service is stopping (its actors go first): left for the next start
                log.warning("job %s interrupted by shutdown; it resumes when the service starts again", job_id)
                return
            error = f"{type(exc).__name__}: {exc}"
            log.warning("job %s failed: %s", job_id, error)
            for c in self.circuits:
                if c.slice_index not in before and c.slice_index not in {p.slice_index for p in made}:
                    store.set_slice(job_id, c.slice_index, status="failed")
            store.update(job_id, status="failed", error=error, finished=time.time())

    def _submit(self, run, job_id: str) -> dict:
        """Put the receipt on the chain once (a landed submission is read back from chain_receipt.json)."""
        from ..chain.client import SUBMITTED_FILE

        landed = run.workdir / SUBMITTED_FILE
        if landed.is_file():
            return storage.read_json(landed)
        with self._chain_lock:  # one signing account: nonces in order
            if self._chain is None:
                from .. import chain

                cc = self.spec.config.chain
                self._chain = chain.connect(cc.rpc, private_key=cc.private_key, deployments=cc.deployments)
            if (run.workdir / "pending_submit.json").is_file():
                result = self._chain.submit_pending(run.workdir)
            else:
                result = self._chain.submit(run, job_id=job_id)
        return {**dataclasses.asdict(result), "rpc_url": self.spec.rpc}

    def close(self) -> None:
        self._closing.set()
        for _ in self._threads:
            self._queue.put(None)
        self.pool.close()


def _proven_slices(workdir: Path) -> set[int]:
    """Slices whose proof the run directory's manifest already records (and whose file is intact)."""
    path = workdir / "manifest.json"
    if not path.is_file():
        return set()
    try:
        proofs = storage.read_json(path).get("proofs", {})
    except (OSError, ValueError):
        return set()
    done = set()
    for i, rec in proofs.items():
        p = workdir / f"proof_{i}.json"
        if p.is_file() and storage.sha256_file(p) == rec.get("sha256"):
            done.add(int(i))
    return done


api = FastAPI(
    title="dsperse verifiable inference",
    description="POST /v1/infer returns the model output at once; GET /v1/jobs/{id} follows its proof to a receipt.",
)


def _error(exc: BaseException) -> JSONResponse:
    return JSONResponse({"error": str(exc), "type": type(exc).__name__}, status_code=status_of(exc))


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=64, graceful_shutdown_timeout_s=5)
@serve.ingress(api)
class DsperseService:
    """The ingress replica: validates requests, runs the reference inference, keeps the jobs, owns the Engine."""

    def __init__(self, spec: ServeSpec):
        self.spec = spec
        self.plan = SlicePlan.load(spec.plan)
        self.reference = Reference(self.plan)
        self.store = JobStore(spec.jobs)
        from ..linking.receipts import model_id

        self.model_id = model_id(list(spec.circuits))
        self.engine = Engine(self.plan, spec, self.store)
        log.warning("dsperse serve: model %s (%d slices), jobs in %s", spec.name, len(self.plan.slices), self.store.root)

    @api.get("/v1/models")
    def models(self) -> dict:
        p = self.plan
        slices = [{"index": s.index, "ops": list(s.op_types), "tile": s.tile, "logrows": c.logrows, "rows": c.num_rows,
                   "key_id": c.key_id} for s, c in zip(p.slices, self.spec.circuits)]  # fmt: skip
        return {"models": [{
            "id": self.spec.name, "model_id": self.model_id, "plan": str(p.root), "model": str(p.model_path),
            "input_shape": list(p.input_shape), "output_shape": list(p.output_shape), "slices": slices,
            "edges": len(p.edges), "chain": self.spec.rpc, "jobs": str(self.store.root),
        }]}  # fmt: skip

    @api.post("/v1/infer")
    async def infer(self, request: Request):
        try:
            size = int(request.headers.get("content-length") or 0)
            limit = self.spec.config.serve.max_body
            if size > limit:
                raise BodyTooLargeError(size, limit)
            req = parse_infer(await request.body(), self.plan.input_shape, limit)
            if req.model is not None and req.model not in (self.spec.name, self.model_id):
                raise RequestError(f"unknown model {req.model!r}; this service serves {self.spec.name!r}", 404)
            output = self.reference(req.x)
            job, created = self.store.create(req.job_id or new_job_id(), req.x, output, self.spec.name, len(self.plan.slices))
            if created:
                self.engine.submit(job["job_id"])
            elif job["status"] == "failed":  # the same request again: retry the failed job
                job = self.store.update(job["job_id"], status="queued", error=None)
                self.engine.submit(job["job_id"])
        except DsperseError as exc:
            return _error(exc)
        return JSONResponse(
            {"job_id": job["job_id"], "model": self.spec.name, "output": job["output"], "output_shape": list(output.shape),
             "status": job["status"], "job": f"/v1/jobs/{job['job_id']}"},
            status_code=202 if created else 200,
        )  # fmt: skip

    @api.get("/v1/jobs/{job_id}")
    def job(self, job_id: str):
        try:
            return self.store.get(job_id)
        except DsperseError as exc:
            return _error(exc)

    @api.get("/v1/jobs")
    def jobs(self) -> dict:
        jobs = sorted(self.store, key=lambda j: j["created"])
        return {"counts": self.store.counts(), "queued_here": self.engine.pending(),
                "jobs": [{"job_id": j["job_id"], "status": j["status"], "created": j["created"]} for j in jobs]}  # fmt: skip

    @api.get("/healthz")
    def health(self) -> dict:
        return {"ok": True, "model": self.spec.name, "counts": self.store.counts()}

    def __del__(self):
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()
