"""The PoSP incentive condition (pure arithmetic) and the Ray simulation that checks it by sampling."""
from __future__ import annotations

import math

import pytest

from dsperse.sampling.economics import (
    Economics,
    cheating_advantage,
    expected_profit,
    is_deterrent,
    min_audit_probability,
    min_slash,
)
from dsperse.errors import SamplingError
from dsperse.sampling.simulation import SimConfig, plot_profit_vs_p, simulate, simulate_serial, sweep

E = Economics(R=1.0, S=10.0, C=0.5, r=0.5, K=0.6)


def test_threshold_is_where_cheating_stops_paying():
    p_star = min_audit_probability(E.R, E.S, E.C)
    assert p_star == pytest.approx(0.5 / 11)
    # at p* cheating and honesty earn the same; just above, honesty wins; just below, cheating wins
    assert expected_profit("cheat", p_star, E) == pytest.approx(expected_profit("honest", p_star, E))
    assert is_deterrent(p_star * 1.01, E) and not is_deterrent(p_star * 0.99, E)
    # colluders dodge a share r of audits, so they need a higher p
    p_c = min_audit_probability(E.R, E.S, E.C, r=E.r)
    assert p_c == pytest.approx(p_star / (1 - E.r))
    assert cheating_advantage(p_c, E, colluding=True) == pytest.approx(0.0, abs=1e-12)


def test_mixed_strategy_is_linear_so_pure_strategies_are_best():
    for p in (0.01, 0.2):
        vals = [expected_profit("mixed", p, E, q=q) for q in (0.0, 0.5, 1.0)]
        assert vals[1] == pytest.approx((vals[0] + vals[2]) / 2)
        assert vals[0] == pytest.approx(expected_profit("honest", p, E))


def test_proving_cost_and_unreachable_thresholds():
    # an honest operator that must prove when audited needs a slightly higher p
    assert min_audit_probability(1, 10, 0.5, proof_cost=1) == pytest.approx(0.5 / 10)
    assert min_audit_probability(1, 0, 2) == 2.0  # > 1: not reachable, raise S
    assert min_audit_probability(1, 1, 1, r=1.0) is math.inf  # everyone colludes: no p helps
    assert min_slash(0.05, 1.0, 0.5) == pytest.approx(9.0)  # S >= C/p - R
    with pytest.raises(ValueError, match="colluding share"):
        Economics(R=1, S=1, C=1, r=1.5)
    with pytest.raises(ValueError, match="unknown strategy"):
        expected_profit("bribe", 0.1, E)  # type: ignore[arg-type]


def test_ray_simulation_detection_rate_matches_p(ray_cluster):
    """1,000 operators x 200 jobs: cheaters are caught at rate p, colluders at p (1 - r), within 4 sigma."""
    cfg = SimConfig(E, p=0.05, n_operators=1000, jobs_per_operator=200, seed=7)
    res = simulate(cfg)
    assert res.stats == simulate_serial(cfg).stats  # the same numbers whatever the Ray scheduling
    for name, rate in (("cheat", cfg.p), ("mixed", cfg.p), ("collude", cfg.p * (1 - E.r))):
        s = res.stats[name]
        sigma = math.sqrt(rate * (1 - rate) / s.cheats)
        assert abs(s.detection_rate - rate) < 4 * sigma, (name, s.detection_rate, rate, sigma)
    assert res.stats["honest"].detected == 0 and res.stats["honest"].profit_per_job == pytest.approx(E.R - E.K)
    # each cheater strategy's profit agrees with the closed form (4 sigma of the per-job slash noise)
    for name in ("cheat", "mixed", "collude"):
        s = res.stats[name]
        want = expected_profit(name, cfg.p, E, q=cfg.q)
        assert abs(s.profit_per_job - want) < 4 * (E.R + E.S) * math.sqrt(cfg.p / s.jobs) + 1e-9
    # sampling proves about p of all jobs: the overhead against proving everything
    n = res.total_jobs
    assert abs(res.verification_overhead - cfg.p) < 4 * math.sqrt(cfg.p * (1 - cfg.p) / n)


def test_sweep_and_plot_mark_the_threshold(ray_cluster, tmp_path):
    base = SimConfig(E, p=0.0, n_operators=1000, jobs_per_operator=100, seed=3)
    results = sweep(base, [0.0, 0.02, 0.05, 0.1, 0.2])
    p_star = results[0].p_star
    for r in results:
        cheat, honest = r.stats["cheat"].profit_per_job, r.stats["honest"].profit_per_job
        if r.config.p > 1.5 * p_star:
            assert cheat < honest  # above the threshold cheating loses
        if r.config.p < 0.5 * p_star:
            assert cheat > honest  # well below it cheating pays
    png = plot_profit_vs_p(results, tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.parametrize(("kw", "says"), [
    ({"p": 1.5}, "p: must be in [0.0, 1.0]"), ({"p": float("nan")}, "p: expected a finite number"),
    ({"p": 0.1, "q": -0.1}, "q: must be in [0.0, 1.0]"), ({"p": 0.1, "n_operators": 0}, "n_operators: must be >= 1"),
    ({"p": 0.1, "grind_tries": 0}, "grind_tries: must be >= 1"), ({"p": 0.1, "seed_scheme": "dice"}, "seed_scheme must be one of"),
    ({"p": 0.1, "mix": {"honest": 1.0, "lazy": 1.0}}, "unknown strategies in mix"),
])  # fmt: skip
def test_sim_config_refuses_bad_values_naming_them(kw, says):
    with pytest.raises(SamplingError) as exc:
        SimConfig(E, **kw)
    assert says in str(exc.value)
