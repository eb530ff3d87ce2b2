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
import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ..artifacts import SlicePlan
from ..errors import DsperseError, UsageError

if TYPE_CHECKING:
    from ..config import DsperseConfig

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
    config: "DsperseConfig | Mapping | None" = None,
    jobs: Path | str | None = None,
    name: str | None = None,
    local_chain: bool = False,
):
    """A Ray Serve Application serving ``plan``: pass it to ``serve.run`` (or name it in ``serve run``).

    ``config``: a :class:`~dsperse.config.DsperseConfig` or a mapping of its sections (default: from the
    environment), resolved here and shipped to the replica: ``serve`` (workers: jobs in flight at once;
    max_body; verify), ``prover`` (the SliceProver actors: device, actors, None = one per slice), ``chain``
    (rpc: put each receipt on that chain; private_key, deployments), ``paths`` (srs, cache, ledger),
    ``circuit``. The plan's circuits are compiled here (keys cached by content: a later start reuses them), so
    the replica starts at once. ``jobs`` (default ``<plan>/../jobs``) holds one run directory per job;
    unfinished jobs found there are proven when the application starts. ``local_chain=True``: an anvil on
    127.0.0.1 that lives as long as this process takes the receipts (exclusive with ``chain.rpc``).
    """
    if missing := missing_dependencies():
        raise DsperseError(f"dsperse serve needs Ray Serve ({', '.join(missing)} not found): pip install 'dsperse-ray[serve]'")
    from ..circuits.build import compile_plan
    from ..config import resolve as resolve_config
    from .service import DsperseService, ServeSpec

    cfg = resolve_config(config)
    if not isinstance(plan, SlicePlan):
        plan = SlicePlan.load(plan)
    circuits = compile_plan(plan, srs=cfg.paths.srs, cache=cfg.paths.cache, config=cfg.circuit)
    if local_chain:
        if cfg.chain.rpc is not None:
            raise UsageError("give a chain RPC endpoint or local_chain=True (--local-chain), not both")
        rpc, key = start_local_chain()
        cfg = dataclasses.replace(cfg, chain=dataclasses.replace(cfg.chain, rpc=rpc, private_key=key))
    jobs_dir = Path(jobs or plan.root.parent / "jobs").expanduser().resolve()
    spec = ServeSpec(plan=str(plan.root), config=cfg, circuits=tuple(circuits), jobs=str(jobs_dir),
                     name=name or default_name(plan))  # fmt: skip
    return DsperseService.bind(spec)


def build(args: dict[str, str]):
    """Application builder for ``serve run dsperse.serve:build plan=DIR [jobs=DIR name=ID local_chain=1]``; every
    other setting comes from the environment ($DSPERSE_*) or a section.field=value pair (``serve.workers=4``,
    ``prover.device=cpu``, ``chain.rpc=http://...``)."""
    args = {k.replace("-", "_"): v for k, v in dict(args).items()}
    if "plan" not in args:
        raise DsperseError("serve run dsperse.serve:build needs plan=<slice plan dir>")
    sections: dict[str, dict[str, str]] = {}
    for key in [k for k in args if "." in k]:
        section, _, field = key.partition(".")
        sections.setdefault(section, {})[field] = args.pop(key)
    local = str(args.pop("local_chain", "")).lower() in ("1", "true", "yes")
    unknown = set(args) - {"plan", "jobs", "name"}
    if unknown:
        raise UsageError(f"serve run dsperse.serve:build: unknown argument(s) {sorted(unknown)}; give plan=, jobs=, "
                         "name=, local_chain= or section.field=value")  # fmt: skip
    return app(args["plan"], config=sections, jobs=args.get("jobs"), name=args.get("name"), local_chain=local)


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
