"""Verifiable inference over HTTP, on Ray Serve: the answer at once, its proof in the background.

    dsperse serve model.slices --port 8000                 # 127.0.0.1:8000; Ctrl-C stops it
    curl -s -XPOST localhost:8000/v1/infer -d '{"input": [[0.1, 0.2, 0.3, 0.4]]}'
    curl -s localhost:8000/v1/jobs/<job_id>                 # queued -> proving -> proven + receipt

From Python (or ``serve run``: a module with ``app = dsperse.serve.app("model.slices")``, or the builder
``serve run dsperse.serve:build plan=model.slices jobs=jobs``)::

    import ray
    from ray import serve
    import dsperse.serve

    ray.init(address="local", include_dashboard=False)
    serve.start(http_options={"host": "127.0.0.1", "port": 8000})
    serve.run(dsperse.serve.app("model.slices", jobs="jobs"), name="dsperse")

See docs/serve.md. Ray Serve, FastAPI and uvicorn (the ``serve`` extra: ``pip install 'dsperse-ray[serve]'``)
are imported only when an application is built; this module and :mod:`dsperse.serve.jobs` import without them.
"""
from __future__ import annotations

import atexit
import logging
from pathlib import Path
from typing import Any

from ..artifacts import SlicePlan
from ..errors import DsperseError

log = logging.getLogger(__name__)

REQUIRES = ("ray.serve", "fastapi", "starlette", "uvicorn")


def missing_dependencies() -> list[str]:
    """The Ray Serve stack's modules that cannot be found (cheap: nothing is imported)."""
    import importlib.util

    missing = []
    for name in REQUIRES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def app(
    plan: SlicePlan | Path | str,
    *,
    jobs: Path | str | None = None,
    name: str | None = None,
    workers: int = 2,
    actors: int | None = None,
    device: str | None = None,
    srs: Path | str | None = None,
    cache: Path | str | None = None,
    rpc: str | None = None,
    private_key: str | None = None,
    local_chain: bool = False,
    deployments: Path | str | None = None,
    max_body: int | None = None,
    verify: bool = True,
    ledger: Any = None,
):
    """A Ray Serve Application serving ``plan``: pass it to ``serve.run`` (or name it in ``serve run``).

    Compiles the plan's circuits here (keys cached by content: a later start reuses them), so the replica
    starts at once. ``jobs`` (default ``<plan>/../jobs``) holds one run directory per job; unfinished jobs
    found there are proven when the application starts. ``rpc`` (or ``local_chain=True``: an anvil on
    127.0.0.1 that lives as long as this process) puts each receipt on that chain. ``workers`` jobs are in
    flight at once; ``actors`` SliceProver actors prove them (None: one per slice) on ``device`` (None:
    ``$DSPERSE_DEVICE``, else auto).
    """
    if missing := missing_dependencies():
        raise DsperseError(f"dsperse serve needs Ray Serve ({', '.join(missing)} not found): pip install 'dsperse-ray[serve]'")
    from .. import compile as compile_plan
    from .jobs import MAX_BODY_BYTES
    from .service import DsperseService, ServeSpec

    if not isinstance(plan, SlicePlan):
        plan = SlicePlan.load(plan)
    circuits = compile_plan(plan, srs=srs, cache=cache)
    if local_chain:
        if rpc is not None:
            raise DsperseError("pass rpc= or local_chain=True, not both")
        rpc, private_key = start_local_chain()
    spec = ServeSpec(
        plan=str(plan.root), circuits=tuple(circuits), jobs=str(Path(jobs or plan.root.parent / "jobs").expanduser().resolve()),
        name=name or default_name(plan), workers=workers, actors=actors, device=device, rpc=rpc, private_key=private_key,
        deployments=str(deployments) if deployments else None, max_body=max_body or MAX_BODY_BYTES, verify=verify,
        ledger=ledger,
    )  # fmt: skip
    return DsperseService.bind(spec)


def build(args: dict[str, str]):
    """Application builder for ``serve run dsperse.serve:build plan=DIR [jobs=DIR name=ID workers=N rpc=URL ...]``."""
    args = dict(args)
    if "plan" not in args:
        raise DsperseError("serve run dsperse.serve:build needs plan=<slice plan dir>")
    ints = {"workers", "actors", "max_body"}
    bools = {"local_chain", "verify"}
    kw: dict[str, Any] = {}
    for k, v in args.items():
        k = k.replace("-", "_")
        kw[k] = int(v) if k in ints else (str(v).lower() in ("1", "true", "yes")) if k in bools else v
    return app(kw.pop("plan"), **kw)


def default_name(plan: SlicePlan) -> str:
    """The served model's id: the plan directory's name without ``.slices``."""
    name = Path(plan.root).name
    return name[: -len(".slices")] if name.endswith(".slices") and len(name) > len(".slices") else name


_chains: list = []


def start_local_chain() -> tuple[str, str]:
    """Start an anvil on 127.0.0.1 for this process's lifetime; returns (rpc url, funded dev key)."""
    from ..chain import LocalChain

    c = LocalChain().start()
    _chains.append(c)
    atexit.register(c.stop)
    log.warning("local chain (anvil pid %s) at %s", c.pid, c.url)
    return c.url, c.accounts[0][1]


def stop_local_chains() -> None:
    while _chains:
        _chains.pop().stop()


__all__ = ["app", "build", "default_name", "missing_dependencies", "start_local_chain", "stop_local_chains"]
