"""Ray simulation of a PoSP market with thousands of operators and a share of cheaters.

Each Ray task simulates a fixed chunk of operators with numpy (binomial draws per operator), seeded
from ``numpy.random.SeedSequence(seed).spawn(n_chunks)`` by chunk index, so the result is the same
whatever the scheduling and however many workers run. Ray is the scale-out; chunks are independent.

It measures, per strategy: how often cheated jobs are caught (``detection_rate``, expected
``p (1 - r)``), the share of cheating operators caught at least once, the profit per job, the honest
operators' return, and the verification overhead against proving every job.

Grinding (``grind_tries`` > 1): every cheating operator also builds blocks, so it can make ``grind_tries``
candidate blocks for each cheated job's commitment and keep the one whose draw looks unsampled. With
``seed_scheme="blockhash"`` (the market before issue 7) the draw is public, so it is audited only if all
candidates are sampled (p^tries). With ``"commit-reveal"`` (the market now) the draw also hashes the
requester's secret, which the grinder does not know: its choice is blind and its audited share stays p.
The draw is simulated, not assumed: 64-bit candidate seeds, mixed with a secret by splitmix64.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from dsperse.config import check
from dsperse.errors import ConfigError, SamplingError
from dsperse.sampling.economics import STRATEGIES, Economics, expected_profit, min_audit_probability

_CODES = {s: i for i, s in enumerate(STRATEGIES)}
SEED_SCHEMES = ("commit-reveal", "blockhash")
PROBABILITY = {"min": 0.0, "max": 1.0}
AT_LEAST_ONE = {"min": 1}
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a keyed 64-bit hash standing in for keccak256 (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (x ^ (x >> np.uint64(31))) & _M64


def grind_audits(rng: np.random.Generator, cheats: np.ndarray, p: float, tries: int, scheme: str) -> np.ndarray:
    """Audited cheated jobs per operator when each cheated job's seed is ground over ``tries`` candidate blocks.

    The grinder keeps the first candidate whose draw, as far as it can compute it, is unsampled (the last one
    if none is). Under "blockhash" it computes the true draw; under "commit-reveal" the true draw hashes the
    requester's secret, and the grinder can only use a guess of its own.
    """
    n = int(cheats.sum())
    bps = np.uint64(round(p * 10_000))
    cand = rng.integers(0, 2**63, size=(n, tries), dtype=np.uint64)
    if scheme == "blockhash":
        true = cand % np.uint64(10_000) < bps
        seen = true
    else:
        secret = rng.integers(0, 2**63, size=(n, 1), dtype=np.uint64)
        guess = rng.integers(0, 2**63, size=(n, 1), dtype=np.uint64)
        with np.errstate(over="ignore"):
            true = _mix64(cand ^ secret) % np.uint64(10_000) < bps
            seen = _mix64(cand ^ guess) % np.uint64(10_000) < bps
    looks_clear = ~seen
    choice = np.where(looks_clear.any(axis=1), looks_clear.argmax(axis=1), tries - 1)
    audited = true[np.arange(n), choice]
    owner = np.repeat(np.arange(len(cheats)), cheats)
    return np.bincount(owner, weights=audited, minlength=len(cheats)).astype(np.int64)


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. ``mix`` maps strategy -> share of operators (shares are normalised)."""

    economics: Economics
    """Fee, slash, cheat gain and collusion share: what each job pays or costs."""
    p: float = field(metadata=PROBABILITY)
    """Audit probability of each job."""
    n_operators: int = field(default=1000, metadata=AT_LEAST_ONE)
    jobs_per_operator: int = field(default=200, metadata=AT_LEAST_ONE)
    mix: dict = field(default_factory=lambda: {"honest": 0.7, "cheat": 0.1, "mixed": 0.1, "collude": 0.1})
    q: float = field(default=0.3, metadata=PROBABILITY)
    """Cheat probability of the "mixed" strategy."""
    proof_cpu_seconds: float = field(default=12.0, metadata={"min": 0})
    """Prover CPU-seconds to prove one job (slices x seconds per slice): used for the overhead figures."""
    chunk_size: int = field(default=250, metadata=AT_LEAST_ONE)
    """Operators per Ray task: enough numpy work per task to outweigh its overhead."""
    seed: int = 0
    grind_tries: int = field(default=1, metadata=AT_LEAST_ONE)
    """Candidate seed blocks a cheating operator builds per cheated job, keeping the best-looking one."""
    seed_scheme: str = "commit-reveal"
    """"commit-reveal" (requester secret + commitment block hash) or "blockhash" (public, the old market)."""

    def __post_init__(self) -> None:
        for f in fields(self):  # the bounds in each field's metadata, checked as a config section's are
            try:
                check(f, getattr(self, f.name), f.name)
            except ConfigError as exc:
                raise SamplingError(str(exc)) from None
        unknown = set(self.mix) - set(STRATEGIES)
        if unknown:
            raise SamplingError(f"unknown strategies in mix: {sorted(unknown)}; use {STRATEGIES}")
        if sum(self.mix.values()) <= 0 or any(v < 0 for v in self.mix.values()):
            raise SamplingError(f"mix shares must be >= 0 and not all 0: {self.mix}")
        if self.seed_scheme not in SEED_SCHEMES:
            raise SamplingError(f"seed_scheme must be one of {SEED_SCHEMES}, got {self.seed_scheme!r}")

    def strategies(self) -> np.ndarray:
        """Strategy code per operator, deterministic: counts by largest remainder, in STRATEGIES order."""
        total = sum(self.mix.values())
        shares = [self.mix.get(s, 0.0) / total * self.n_operators for s in STRATEGIES]
        counts = [math.floor(x) for x in shares]
        for i in sorted(range(len(shares)), key=lambda i: shares[i] - counts[i], reverse=True)[: self.n_operators - sum(counts)]:
            counts[i] += 1
        return np.repeat(np.arange(len(STRATEGIES)), counts)


class _Ratio:
    """A rate derived from two summed counters (nan when the second is 0): chunks add their counters, never rates."""

    def __init__(self, part: str, whole: str, doc: str):
        self.part, self.whole, self.__doc__ = part, whole, doc

    def __get__(self, obj: "StrategyStats | None", owner: type | None = None) -> float:
        if obj is None:
            return self  # type: ignore[return-value] - the class attribute itself, for help()
        whole = getattr(obj, self.whole)
        return getattr(obj, self.part) / whole if whole else float("nan")


@dataclass
class StrategyStats:
    """Totals for one strategy; rates are derived so chunks can simply be summed."""

    operators: int = 0
    jobs: int = 0
    cheats: int = 0
    """Jobs answered with a wrong result."""
    audited: int = 0
    audited_cheats: int = 0
    detected: int = 0
    """Cheated jobs proven a lie (audited and not covered by a colluding validator)."""
    caught_operators: int = 0
    cheating_operators: int = 0
    profit: float = 0.0

    def add(self, other: "StrategyStats") -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    detection_rate = _Ratio("detected", "cheats",
                            "Share of cheated jobs proven a lie (expected p for cheaters, p (1 - r) for colluders).")
    caught_share = _Ratio("caught_operators", "cheating_operators",
                          "Share of operators that cheated at least once and were caught at least once.")
    profit_per_job = _Ratio("profit", "jobs", "Mean profit per job.")
    audited_cheat_share = _Ratio("audited_cheats", "cheats",
                                 "Share of cheated jobs that were audited: p, unless the grinder could steer the draw.")


@dataclass
class SimResult:
    config: SimConfig
    stats: dict[str, StrategyStats]
    p_star: float

    @property
    def total_jobs(self) -> int:
        return sum(s.jobs for s in self.stats.values())

    @property
    def audited_jobs(self) -> int:
        return sum(s.audited for s in self.stats.values())

    @property
    def verification_overhead(self) -> float:
        """Proven jobs / all jobs: the prover work relative to proving every job."""
        return self.audited_jobs / self.total_jobs

    @property
    def prover_cpu_seconds_per_job(self) -> float:
        return self.verification_overhead * self.config.proof_cpu_seconds

    def rows(self) -> list[dict]:
        """One table row per strategy present, with the analytic expectation next to the measurement."""
        e, p = self.config.economics, self.config.p
        out = []
        for name, s in self.stats.items():
            if not s.operators:
                continue
            out.append(
                dict(
                    strategy=name,
                    operators=s.operators,
                    jobs=s.jobs,
                    cheats=s.cheats,
                    detected=s.detected,
                    detection_rate=s.detection_rate,
                    caught_share=s.caught_share,
                    profit_per_job=s.profit_per_job,
                    expected_profit_per_job=expected_profit(name, p, e, q=self.config.q),
                )
            )
        return out


def simulate_chunk(econ: Economics, p: float, q: float, jobs: int, codes: np.ndarray, seed: np.random.SeedSequence,
                   grind_tries: int = 1, seed_scheme: str = "commit-reveal") -> dict[str, StrategyStats]:
    """Simulate one chunk of operators with vectorised binomial draws (no Ray in here: pure numpy)."""
    rng = np.random.default_rng(seed)
    n = len(codes)
    cheat_prob = np.select(
        [codes == _CODES["honest"], codes == _CODES["mixed"]], [0.0, q], default=1.0
    )
    cheats = rng.binomial(jobs, cheat_prob)
    if grind_tries > 1 or seed_scheme != "commit-reveal":
        audited_cheats = grind_audits(rng, cheats, p, grind_tries, seed_scheme)
    else:
        audited_cheats = rng.binomial(cheats, p)
    cover = np.where(codes == _CODES["collude"], econ.r, 0.0)
    detected = rng.binomial(audited_cheats, 1.0 - cover)
    audited_honest = rng.binomial(jobs - cheats, p)
    profit = (
        (jobs - detected) * econ.R
        - jobs * econ.K
        + cheats * econ.C
        - detected * econ.S
        - audited_honest * econ.proof_cost
    )
    out: dict[str, StrategyStats] = {}
    for name, code in _CODES.items():
        m = codes == code
        if not m.any():
            continue
        out[name] = StrategyStats(
            operators=int(m.sum()),
            jobs=int(m.sum()) * jobs,
            cheats=int(cheats[m].sum()),
            audited=int(audited_cheats[m].sum() + audited_honest[m].sum()),
            audited_cheats=int(audited_cheats[m].sum()),
            detected=int(detected[m].sum()),
            caught_operators=int(((detected > 0) & m).sum()),
            cheating_operators=int(((cheats > 0) & m).sum()),
            profit=float(profit[m].sum()),
        )
    assert n == sum(s.operators for s in out.values())
    return out


def _chunks(cfg: SimConfig) -> list[tuple[np.ndarray, np.random.SeedSequence]]:
    codes = cfg.strategies()
    starts = range(0, cfg.n_operators, cfg.chunk_size)
    seeds = np.random.SeedSequence(cfg.seed).spawn(len(starts))
    return [(codes[s : s + cfg.chunk_size], seeds[i]) for i, s in enumerate(starts)]


def _merge(cfg: SimConfig, parts: Iterable[dict[str, StrategyStats]]) -> SimResult:
    stats = {s: StrategyStats() for s in STRATEGIES}
    for part in parts:
        for name, st in part.items():
            stats[name].add(st)
    e = cfg.economics
    return SimResult(cfg, stats, min_audit_probability(e.R, e.S, e.C, 0.0, e.proof_cost))


def simulate_many(configs: Sequence[SimConfig]) -> list[SimResult]:
    """Run several configurations as one batch of Ray tasks (ray.init() must have been called)."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("Ray is not initialised: call ray.init() (or use dsperse.sampling.simulation.run_local)")
    remote = ray.remote(num_cpus=1)(simulate_chunk)
    econ_refs = {}
    refs = []
    for cfg in configs:
        key = id(cfg.economics)
        if key not in econ_refs:
            econ_refs[key] = ray.put(cfg.economics)
        refs.append([remote.remote(econ_refs[key], cfg.p, cfg.q, cfg.jobs_per_operator, codes, seed, cfg.grind_tries, cfg.seed_scheme)
                     for codes, seed in _chunks(cfg)])  # fmt: skip
    return [_merge(cfg, ray.get(rs)) for cfg, rs in zip(configs, refs)]


def simulate(cfg: SimConfig) -> SimResult:
    """Run one configuration on the Ray cluster this process is connected to."""
    return simulate_many([cfg])[0]


def simulate_serial(cfg: SimConfig) -> SimResult:
    """The same computation without Ray (same chunks and seeds, so the same numbers)."""
    e = cfg.economics
    return _merge(cfg, (simulate_chunk(e, cfg.p, cfg.q, cfg.jobs_per_operator, c, s, cfg.grind_tries, cfg.seed_scheme)
                        for c, s in _chunks(cfg)))  # fmt: skip


def grinding_table(econ: Economics, p: float, tries: Sequence[int] = (1, 4, 16), n_operators: int = 200,
                   jobs_per_operator: int = 200, seed: int = 0) -> list[dict]:
    """Audited share of a grinding cheater's jobs per seed scheme and number of tries (serial numpy)."""
    rows = []
    for scheme in SEED_SCHEMES:
        for t in tries:
            cfg = SimConfig(econ, p, n_operators=n_operators, jobs_per_operator=jobs_per_operator, mix={"cheat": 1.0},
                            seed=seed, grind_tries=t, seed_scheme=scheme)  # fmt: skip
            st = simulate_serial(cfg).stats["cheat"]
            rows.append(dict(scheme=scheme, tries=t, p=p, cheated_jobs=st.cheats, audited_share=st.audited_cheat_share,
                             expected=p if scheme == "commit-reveal" else p**t, profit_per_job=st.profit_per_job))  # fmt: skip
    return rows


def sweep(base: SimConfig, p_values: Sequence[float]) -> list[SimResult]:
    """Simulate ``base`` at every audit probability in ``p_values`` (one Ray batch)."""
    from dataclasses import replace

    return simulate_many([replace(base, p=float(p)) for p in p_values])


def plot_profit_vs_p(results: Sequence[SimResult], out_dir: Path | str, name: str = "posp_profit_vs_p.png") -> Path:
    """Plot profit per job vs p per strategy (simulated dots, analytic lines) with p* marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dsperse.util.storage import atomic_path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = results[0].config
    e = cfg.economics
    ps = np.array([r.config.p for r in results])
    grid = np.linspace(0.0, max(1e-9, ps.max()), 200)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = {"honest": "tab:green", "cheat": "tab:red", "mixed": "tab:orange", "collude": "tab:purple"}
    for s in STRATEGIES:
        if not cfg.mix.get(s):
            continue
        label = {"mixed": f"cheat w.p. q={cfg.q}", "collude": f"collude (r={e.r})"}.get(s, s)
        ax.plot(grid, [expected_profit(s, float(x), e, q=cfg.q) for x in grid], color=colors[s], lw=1.2, label=f"{label} (expected)")
        ax.plot(ps, [r.stats[s].profit_per_job for r in results], "o", color=colors[s], ms=4, label=f"{label} (simulated)")
    p_star = min_audit_probability(e.R, e.S, e.C, 0.0, e.proof_cost)
    p_star_c = min_audit_probability(e.R, e.S, e.C, e.r, e.proof_cost)
    if p_star <= grid[-1]:
        ax.axvline(p_star, color="black", ls="--", lw=1, label=f"p* = C/(R+S) = {p_star:.3f}")
    if e.r > 0 and p_star_c <= grid[-1]:
        ax.axvline(p_star_c, color="tab:purple", ls=":", lw=1, label=f"p* colluders = {p_star_c:.3f}")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("audit probability p")
    ax.set_ylabel("operator profit per job")
    ax.set_title(f"PoSP: R={e.R:g}, S={e.S:g}, C={e.C:g}, {cfg.n_operators} operators x {cfg.jobs_per_operator} jobs")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    target = out_dir / name
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return target
