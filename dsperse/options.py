"""Option groups shared by the ``dsperse`` subcommands (and ``python -m pipelines.prove``), built once from
:mod:`dsperse.config`: a flag has one name, one type, one help text and one meaning in every subcommand.

    q = sub.add_parser("prove")
    circuit_options(q); prover_options(q, ("cluster", "device"))
    ...
    cfg = settings(a)          # DsperseConfig.from_env() with every flag the user gave applied
    prove(..., config=cfg.circuit, cluster=cfg.prover.cluster)

Flags default to None (unset), so a flag the user gave beats ``$DSPERSE_*``, which beats the field's default.
"""
from __future__ import annotations

import argparse
import dataclasses

from dsperse.config import (
    SECTIONS,
    AggregationConfig,
    ChainConfig,
    CircuitConfig,
    DsperseConfig,
    PathsConfig,
    ProverConfig,
    SamplingConfig,
    SlicingConfig,
    add_arguments,
    field_docs,
    from_args,
)

AGGREGATION_PREFIX = "aggregation-"
"""Aggregation flags carry their section's name: ``--aggregation-memory-gb`` (a bare ``--memory-gb`` says nothing)."""
PREFIXES = {"aggregation": AGGREGATION_PREFIX}


def settings(a: argparse.Namespace, base: DsperseConfig | None = None) -> DsperseConfig:
    """``base`` (default: :meth:`DsperseConfig.from_env`) with every config flag given in ``a`` applied."""
    cfg = base if base is not None else DsperseConfig.from_env()
    if getattr(a, "no_ledger", False):
        cfg = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, ledger_enabled=False))
    changes = {name: from_args(getattr(cfg, name), a, prefix=PREFIXES.get(name, "")) for name in SECTIONS}
    return dataclasses.replace(cfg, **changes)


def slicing_options(q: argparse.ArgumentParser, only: tuple[str, ...] | None = None, defaults: SlicingConfig | None = None) -> None:
    """--max-slices, --strategy, --max-logrows, --max-memory, --estimate (``slicing``)."""
    add_arguments(q.add_argument_group("slicing"), SlicingConfig, only=only, defaults=defaults)


def circuit_options(q: argparse.ArgumentParser) -> None:
    """--srs, --cache (``paths``), --scale, --logrows, --input-visibility (``circuit``)."""
    g = q.add_argument_group("circuits")
    add_arguments(g, PathsConfig, only=("srs", "cache"))
    add_arguments(g, CircuitConfig, only=("scale", "logrows", "input_visibility"))


def prover_options(q: argparse.ArgumentParser, only: tuple[str, ...] = ("cluster", "device", "actors"),
                   defaults: ProverConfig | None = None) -> None:  # fmt: skip
    """--cluster, --device, --actors (``prover``): where proofs (or any Ray work) run."""
    add_arguments(q.add_argument_group("prover"), ProverConfig, only=only, defaults=defaults)


def aggregation_options(q: argparse.ArgumentParser, enable: bool = True) -> None:
    """--aggregate (``aggregation.enabled``) and --aggregation-memory-gb (``aggregation.memory_gb``)."""
    g = q.add_argument_group("aggregation")
    if enable:
        g.add_argument("--aggregate", dest="aggregation_enabled", action="store_const", const=True, default=None,
                       help=field_docs(AggregationConfig)["enabled"] + " Folds the slice proofs into ONE proof (k>=21, "
                       "~20 GB per step); plans first and refuses if no node fits: see `dsperse aggregate-plan`.")  # fmt: skip
    add_arguments(g, AggregationConfig, only=("memory_gb",), prefix=AGGREGATION_PREFIX)


def ledger_options(q: argparse.ArgumentParser) -> None:
    """--ledger DIR / --no-ledger (``paths.ledger`` / ``paths.ledger_enabled``)."""
    g = q.add_mutually_exclusive_group()
    add_arguments(g, PathsConfig, only=("ledger",))
    g.add_argument("--no-ledger", action="store_true", help="do not write the proof ledger")


def chain_options(q: argparse.ArgumentParser, deployments: bool = True, market: bool = False) -> None:
    """--rpc, --private-key, --deployments (``chain``), --market (``sampling``)."""
    g = q.add_argument_group("chain")
    add_arguments(g, ChainConfig, only=("rpc", "private_key") + (("deployments",) if deployments else ()))
    if market:
        add_arguments(g, SamplingConfig, only=("market",))


JOB_ID_HELP = "the job id a receipt is bound to (text, or 0x + 64 hex)"


def job_id_option(q: argparse.ArgumentParser, role: str, metavar: str = "JOB_ID", **kw) -> None:
    """--job-id: the job id a receipt is bound to; ``role`` says what this command does with it."""
    q.add_argument("--job-id", metavar=metavar, help=f"{JOB_ID_HELP}: {role}", **kw)


def require_rpc(chain: ChainConfig) -> str:
    """The RPC endpoint, or ChainUnavailableError saying how to give one."""
    from dsperse.errors import ChainUnavailableError

    if not chain.rpc:
        raise ChainUnavailableError("no RPC endpoint: pass --rpc URL or set $DSPERSE_RPC")
    return chain.rpc
