"""Every setting in one tree: ``DsperseConfig``, a section per stage, each field with a default and a docstring.

    cfg = DsperseConfig.from_env()                      # defaults, then $DSPERSE_* (the ONLY place they are read)
    cfg = DsperseConfig.from_dict(yaml.safe_load(...))  # a pipeline spec: {"slicing": {"max_slices": 3}, ...}
    prove(plan, x, prover=cfg.prover)                   # a stage takes only its own section

CLI flags and pipeline specs are derived from these dataclasses (:func:`add_arguments`, :meth:`DsperseConfig.from_dict`),
so a setting has one name, one default and one help text everywhere. Sections are frozen: change one with
``dataclasses.replace``.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import re
import textwrap
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, Mapping

from dsperse.errors import CircuitError, ConfigError

Device = Literal["auto", "cpu", "gpu"]


@dataclass(frozen=True)
class PathsConfig:
    """Where artifacts live."""

    cache: Path = field(default=Path("~/.cache/dsperse").expanduser(), metadata={"env": "DSPERSE_CACHE"})
    """Keys, dev SRS files and compiled circuits, cached by content ($DSPERSE_CACHE)."""
    runs: Path = field(default=Path("~/dsperse-runs").expanduser(), metadata={"env": "DSPERSE_RUNS"})
    """Run directories of pipeline jobs that name no workdir ($DSPERSE_RUNS)."""
    ledger: Path | None = field(default=None, metadata={"metavar": "DIR", "env": "DSPERSE_LEDGER"})
    """The Parquet proof ledger directory ($DSPERSE_LEDGER; "off" disables it); None: <cache>/ledger."""
    ledger_enabled: bool = True
    """Write the proof ledger; False when $DSPERSE_LEDGER is "off"/"0"/"false" (or with --no-ledger)."""
    srs: Path | None = None
    """A ceremony SRS file; None: a development SRS made once per size into the cache (not for production)."""

    @property
    def ledger_dir(self) -> Path | None:
        if not self.ledger_enabled:
            return None
        return self.ledger if self.ledger is not None else self.cache / "ledger"


@dataclass(frozen=True)
class SlicingConfig:
    """How a model is cut into slices."""

    max_slices: int | None = field(default=None, metadata={"min": 1})
    """Cut a chain of at most this many slices (one tensor per cut); None: one per heavy op."""
    strategy: Literal["balanced", "layers"] = "balanced"
    """balanced: slices of similar cost; layers: a cut before every heavy op."""
    max_logrows: int | None = field(default=None, metadata={"min": 1, "max": 30, "metavar": "K"})
    """Plan a graph of slices that all fit 2^max_logrows rows, tiling ops too big for that."""
    max_memory: str | None = field(default=None, metadata={"metavar": "BYTES"})
    """A proving-memory budget per slice such as "4GB", mapped to max_logrows by measured peaks."""
    estimate: Literal["heuristic", "ezkl"] | None = None
    """Row counts the planner uses: ezkl (exact, the default with a target) or the MAC heuristic."""


@dataclass(frozen=True)
class ProverConfig:
    """Where slice proofs run: this process, or Ray actors (one per slice by default)."""

    cluster: str | None = field(default=None, metadata={"metavar": "CLUSTER"})
    """None: prove in this process. "auto": an existing Ray cluster or a new local one; "local"; or an address."""
    device: Device = field(default="auto", metadata={"env": "DSPERSE_DEVICE"})
    """Ray actors' device: auto (GPU where the cluster has one), cpu, gpu ($DSPERSE_DEVICE)."""
    actors: int | None = field(default=None, metadata={"min": 1, "env": "DSPERSE_RAY_ACTORS"})
    """Number of SliceProver actors; None: one per slice ($DSPERSE_RAY_ACTORS)."""
    artifacts: Literal["auto", "shared", "ship"] = "auto"
    """shared: actors read circuit files at the driver's paths; ship: send them once into each node's cache;
    auto: shared on one node, ship on several."""
    max_restarts: int = 3
    """How often Ray restarts a dead SliceProver actor."""
    max_task_retries: int = 3
    """How often a proof is retried on a restarted actor."""
    ready_timeout_s: float = 600.0
    """How long to wait for all actors to start before failing with the resources asked and available."""
    resources: Mapping[str, float] = field(default_factory=dict)
    """Extra custom Ray resources per actor, e.g. {"prover": 1} on the clusters/ configs."""
    node_cache: Path | None = field(default=None, metadata={"env": "DSPERSE_NODE_CACHE"})
    """Where shipped files land on each node; None: <tmp>/dsperse-node-cache ($DSPERSE_NODE_CACHE)."""


@dataclass(frozen=True)
class AggregationConfig:
    """Folding a chain's slice proofs into one proof (k >= 21: a big-memory job)."""

    enabled: bool = False
    """Aggregate after proving (a chain plan only)."""
    memory_gb: float | None = field(default=None, metadata={"gt": 0, "metavar": "GB"})
    """Memory of the node that runs the aggregation steps; None: this machine's, or the cluster's aggregator nodes."""


@dataclass(frozen=True)
class ChainConfig:
    """An EVM chain for receipts."""

    rpc: str | None = field(default=None, metadata={"metavar": "URL", "pattern": r"https?://[^\s/]+(/\S*)?",
                                                    "expect": "an http(s):// URL, e.g. http://127.0.0.1:8545",
                                                    "env": "DSPERSE_RPC"})
    """JSON-RPC endpoint, e.g. http://127.0.0.1:8545 ($DSPERSE_RPC)."""
    private_key: str | None = field(default=None, repr=False, metadata={
        "metavar": "HEX", "pattern": r"(0x)?[0-9a-fA-F]{64}", "expect": "a private key of 64 hex digits (0x optional)",
        "env": "DSPERSE_PRIVATE_KEY"})
    """The sender's key, 0x + 64 hex ($DSPERSE_PRIVATE_KEY). Never logged."""
    deployments: Path | None = field(default=None, metadata={"metavar": "FILE", "env": "DSPERSE_DEPLOYMENTS"})
    """The file remembering deployed contract addresses per chain id; None: <cache>/evm/deployments.json
    ($DSPERSE_DEPLOYMENTS)."""
    toolchain: Path | None = field(default=None, metadata={"env": "DSPERSE_TOOLCHAIN"})
    """Install dir of anvil / cast / solc-js; None: <cache>/toolchain ($DSPERSE_TOOLCHAIN)."""
    node_modules: Path | None = field(default=None, metadata={"env": "DSPERSE_NODE_MODULES"})
    """A node_modules dir searched first for the tools ($DSPERSE_NODE_MODULES)."""
    solc_dir: Path | None = field(default=None, metadata={"env": "DSPERSE_SOLC_DIR"})
    """The solc-js 0.8.20 package directory to compile with (used first when it holds that version); None: the
    one found in the node_modules search ($DSPERSE_SOLC_DIR, also read by the solc wrapper EZKL runs)."""


@dataclass(frozen=True)
class SamplingConfig:
    """Proof of Sampling: the staking market."""

    market: str | None = field(default=None, metadata={"metavar": "ADDRESS", "pattern": r"0x[0-9a-fA-F]{40}",
                                                       "expect": "an address (0x + 40 hex digits)",
                                                       "env": "DSPERSE_MARKET"})
    """Address of the PoSPMarket contract ($DSPERSE_MARKET)."""


@dataclass(frozen=True)
class ServeConfig:
    """The verifiable-inference HTTP service (Ray Serve)."""

    host: str = "127.0.0.1"
    """Address to bind; loopback by default (there is no authentication: put a proxy with one in front)."""
    port: int = field(default=8000, metadata={"min": 1, "max": 65535})
    """HTTP port."""
    workers: int = field(default=2, metadata={"min": 1})
    """Jobs proven at once; each proves its slices in parallel on the actors."""
    max_body: int = field(default=1 << 20, metadata={"min": 1, "metavar": "BYTES"})
    """Largest request body accepted, in bytes; a larger one is a 413."""
    verify: bool = True
    """Verify every run (each proof, each link, job id, input) before calling its job proven."""


@dataclass(frozen=True)
class CircuitConfig:
    """How slices become circuits. Boundaries are always committed the same way on both sides."""

    input_visibility: Literal["public", "hashed", "auto", "polycommit", "private"] = "public"
    """Visibility of the model's input (slice 0's input). ``hashed``: the proof states its Poseidon hash, one
    public instance, instead of every element (a receipt's gas then no longer grows with the input; ~41 rows
    per element in their own columns). ``auto``: hashed when the input has at least
    :data:`dsperse.circuits.build.AUTO_HASH_MIN_INPUTS` (128) elements and its hash fits the circuit size, else public."""
    output_visibility: Literal["public", "polycommit", "hashed", "private"] = "public"
    """Visibility of the model's output (the last slice's output)."""
    boundary_visibility: Literal["polycommit", "hashed"] = "polycommit"
    """How slice i's output / slice i+1's input is exposed; polycommit links by KZG commitment."""
    param_visibility: Literal["fixed", "private", "public"] = "fixed"
    """fixed bakes weights into the verifying key, so a proof for other weights fails verification."""
    scale: int | None = field(default=None, metadata={"min": 0, "max": 30})
    """Fixed-point scale (bits). None: let EZKL calibrate it on slice 0."""
    logrows: int | None = field(default=None, metadata={"min": 1, "max": 30, "metavar": "K"})
    """Rows as a power of two for every slice. None: the smallest that fits all slices."""
    calibration_target: Literal["resources", "accuracy"] = "resources"
    """What EZKL's calibration optimises: small circuits (resources) or fidelity to the float model (accuracy)."""
    proof_type: Literal["single", "for-aggr"] = "single"
    """for-aggr uses a Poseidon transcript so the proofs can be aggregated; single is EVM-verifiable."""
    fold_rows: bool = False
    """With ``logrows`` set: let EZKL fold a slice with more rows than 2^logrows into more columns
    ("column duplication") instead of refusing. Committed tensors then span several columns."""
    per_slice: tuple[tuple[str, str], ...] | None = None
    """Explicit (input, output) visibility per slice; aggregation plans set it (hashed exposed boundaries)."""

    def visibilities(self, index: int, count: int) -> tuple[str, str]:
        if self.per_slice is not None:
            if len(self.per_slice) != count:
                raise CircuitError(f"per_slice visibilities name {len(self.per_slice)} slices, the plan has {count}")
            return self.per_slice[index]
        first, last = index == 0, index == count - 1
        return (
            self.input_visibility if first else self.boundary_visibility,
            self.output_visibility if last else self.boundary_visibility,
        )


@dataclass(frozen=True)
class DsperseConfig:
    """The whole tree; each stage takes only its own section."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    slicing: SlicingConfig = field(default_factory=SlicingConfig)
    circuit: CircuitConfig = field(default_factory=CircuitConfig)
    prover: ProverConfig = field(default_factory=ProverConfig)
    aggregation: AggregationConfig = field(default_factory=AggregationConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "DsperseConfig":
        """Defaults with every ``DSPERSE_*`` variable of :data:`ENV` applied."""
        return apply_env(cls(), os.environ if environ is None else environ)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: "DsperseConfig | None" = None) -> "DsperseConfig":
        """``{"section": {"field": value}}`` over ``base`` (default: :meth:`from_env`); unknown names are a ConfigError."""
        cfg = base if base is not None else cls.from_env()
        if not isinstance(data, Mapping):
            raise ConfigError(f"a config is a mapping of sections, got {type(data).__name__}")
        for name, values in data.items():
            if name not in SECTIONS:
                raise ConfigError(f"unknown config section {name!r}; sections: {', '.join(SECTIONS)}")
            cfg = dataclasses.replace(cfg, **{name: update(getattr(cfg, name), values, where=name)})
        return cfg

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: _plain(dataclasses.asdict(getattr(self, name))) for name in SECTIONS}


def resolve(config: "DsperseConfig | CircuitConfig | Mapping | None" = None) -> DsperseConfig:
    """The whole tree for an SDK call's ``config=``: None -> :meth:`DsperseConfig.from_env`; a bare CircuitConfig
    becomes its ``circuit`` section (the rest from the environment); a mapping is ``from_dict`` over the environment."""
    if config is None:
        return DsperseConfig.from_env()
    if isinstance(config, DsperseConfig):
        return config
    if isinstance(config, CircuitConfig):
        return dataclasses.replace(DsperseConfig.from_env(), circuit=config)
    if isinstance(config, Mapping):
        return DsperseConfig.from_dict(config)
    raise ConfigError(f"config= takes a DsperseConfig, a CircuitConfig or a mapping of sections, not {type(config).__name__}")


SECTIONS = tuple(f.name for f in dataclasses.fields(DsperseConfig))
SECTION_TYPES: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(DsperseConfig)}  # type: ignore[misc]

ENV: dict[str, tuple[str, str]] = {
    f.metadata["env"]: (section, f.name)
    for section, kind in SECTION_TYPES.items()
    for f in dataclasses.fields(kind)
    if "env" in f.metadata
}
"""Every environment variable dsperse reads, and the field it sets (each field names its own: ``metadata["env"]``)."""


def env_table() -> str:
    """:data:`ENV` as a Markdown table (README's "Configuration" section is this; a test keeps them equal)."""
    rows = ["| variable | sets | meaning |", "|---|---|---|"]
    for var, (section, name) in ENV.items():
        doc = _rst_free(field_docs(SECTION_TYPES[section])[name])
        doc = re.sub(r"\s*\(\$DSPERSE_\w+(?:; ([^)]*))?\)", lambda m: f" ({m[1]})" if m[1] else "", doc)
        doc = doc.split("; None:")[0].rstrip(".")
        rows.append(f"| `{var}` | `{section}.{name}` | {doc} |")
    return "\n".join(rows)


def apply_env(cfg: DsperseConfig, environ: Mapping[str, str]) -> DsperseConfig:
    for var, (section, name) in ENV.items():
        raw = environ.get(var)
        if not raw:
            continue
        if var == "DSPERSE_LEDGER" and raw.lower() in ("off", "0", "false", "no"):
            values = {"ledger_enabled": False}
        else:
            values = {name: raw}
        cfg = dataclasses.replace(cfg, **{section: update(getattr(cfg, section), values, where=f"${var}")})
    return cfg


def update(section: Any, values: Mapping[str, Any], where: str = "config") -> Any:
    """``section`` with ``values`` converted to each field's type; a bad name or value is a ConfigError naming it."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping of fields, got {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(section)}
    changes = {}
    for name, value in values.items():
        if name not in known:
            raise ConfigError(f"{where}: unknown field {name!r}; fields: {', '.join(known)}")
        changes[name] = check(known[name], convert(type_hints(type(section))[name], value, f"{where}.{name}"), f"{where}.{name}")
    return dataclasses.replace(section, **changes)


def check(f: dataclasses.Field, value: Any, where: str) -> Any:
    """``value`` if it keeps the field's metadata bounds (``min``/``max`` inclusive, ``gt``) and ``pattern``."""
    if value is None:
        return value
    meta = f.metadata
    lo, hi, gt = meta.get("min"), meta.get("max"), meta.get("gt")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        if (lo is not None and value < lo) or (hi is not None and value > hi) or (gt is not None and value <= gt):
            bound = (f"in [{lo}, {hi}]" if lo is not None and hi is not None else f">= {lo}" if lo is not None
                     else f"> {gt}" if gt is not None else f"<= {hi}")  # fmt: skip
            raise ConfigError(f"{where}: must be {bound}, got {value!r}")
    if (pattern := meta.get("pattern")) and isinstance(value, str) and not re.fullmatch(pattern, value.strip()):
        shown = "(not echoed)" if f.name == "private_key" else repr(value)
        raise ConfigError(f"{where}: expected {meta.get('expect', 'a value matching ' + pattern)}, got {shown}")
    return value


def convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` (from YAML, a flag or the environment) as type ``tp``: Optional, Literal, bool, int, float, Path, str."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {tp}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            out = tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {'an integer' if tp is int else 'a number'}, got {value!r}") from None
        if tp is int and isinstance(value, float) and value != out:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return out
    if tp is Path:
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value).expanduser()
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if origin in (Mapping, dict, typing.Mapping) or tp in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


@cache
def type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, globalns={**vars(typing), **globals()})


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (Python keeps none at runtime, so read the source)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for stmt, nxt in zip(body, body[1:]):
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def add_arguments(parser, section: type, only: tuple[str, ...] | None = None, defaults: Any = None, prefix: str = "") -> None:
    """Add ``--field-name`` flags for a config section's fields, typed, with choices and the field's docstring as help.

    Flags default to None (unset), so :func:`from_args` applies only what the user gave.
    """
    hints, docs = type_hints(section), field_docs(section)
    base = defaults if defaults is not None else section()
    for f in dataclasses.fields(section):
        if only is not None and f.name not in only:
            continue
        tp = hints[f.name]
        kind = tp
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            kind = next(a for a in typing.get_args(tp) if a is not type(None))
        flag = "--" + prefix + f.name.replace("_", "-")
        default = getattr(base, f.name)
        help_text = _rst_free(docs.get(f.name, "")) + (f" (default: {default})" if default not in (None, {}) else "")
        kw: dict[str, Any] = {"dest": f"{prefix}{f.name}".replace("-", "_"), "default": None, "help": help_text}
        if typing.get_origin(kind) is Literal:
            kw["choices"] = list(typing.get_args(kind))
        elif kind is bool:
            kw["action"] = argparse_bool()
        elif kind in (int, float, str, Path):
            kw["type"] = _flag_type(f, kind)
            kw["metavar"] = f.metadata.get("metavar") or {int: "N", float: "X", Path: "PATH", str: "TEXT"}[kind]
        else:
            continue  # mappings etc. are set through a spec file, not a flag
        parser.add_argument(flag, **kw)


def _flag_type(f: dataclasses.Field, kind: type):
    """An argparse ``type=`` for a field: converted and checked as a spec value is; argparse names the flag."""
    import argparse

    def parse(text: str):
        try:
            return check(f, convert(kind, text, f.name), f.name)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{f.name}: ")) from None

    parse.__name__ = {int: "integer", float: "number", Path: "path", str: "text"}[kind]
    return parse


def argparse_bool():
    import argparse

    return argparse.BooleanOptionalAction


def from_args(section: Any, args: Any, prefix: str = "") -> Any:
    """``section`` with every flag the user gave (not None) applied."""
    given = {}
    for f in dataclasses.fields(section):
        v = getattr(args, f"{prefix}{f.name}".replace("-", "_"), None)
        if v is not None:
            given[f.name] = v
    return update(section, given, where="flags") if given else section


def _rst_free(text: str) -> str:
    """A docstring as --help shows it: ``x`` and :data:`x` read as x."""
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "")


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
