"""Operators, validators and a watchtower challenger as Ray actors (real ray.init(num_cpus=2)) against anvil.

Two honest operators and one cheater each get a job; honest ones compute it with EZKL, the cheater
commits a made-up answer. The market samples nothing (p = 0), so only the watchtower's re-execution
catches the cheater: it challenges, two validator actors re-execute, the cheater is slashed and the
honest operators are paid after the challenge window (the quorum takes effect at the proof deadline).
"""
from __future__ import annotations

from dsperse.sampling.actors import (
    ChallengerAgent,
    EzklInference,
    OperatorAgent,
    ValidatorAgent,
    quantized_input_commitment,
    spawn,
)
from dsperse.sampling.market import ETHER, Challenger, Requester, Status, mine, model_id_bytes
from dsperse.sampling.reexec import SliceCircuit

WINDOWS = dict(commit_window=20, audit_delay=2, proof_window=20, challenge_window=15, unstake_delay=4)


def test_operator_actors_serve_cheater_is_caught_by_watchtower(ray_cluster, chain, keys, deploy, registry, market_artifact, mlp_run, mlp_input, w3, books_balance):
    ray = ray_cluster
    m = deploy(audit_bps=0, **WINDOWS)
    abi = market_artifact[0]
    req = Requester(m, keys["requester"])
    model = registry.register(keys["requester"], model_id_bytes(mlp_run.receipt.model_id), list(range(len(mlp_run.circuits))))

    circuits = [SliceCircuit(c.compiled, c.vk, c.srs) for c in sorted(mlp_run.circuits, key=lambda c: c.slice_index)]
    scale = min(mlp_run.circuits, key=lambda c: c.slice_index).input_scale
    xs = [[float(v) + d for v in mlp_input.flatten()] for d in (0.0, 0.25, -0.5)]
    inputs = {quantized_input_commitment(x, scale): x for x in xs}
    infer = EzklInference(circuits, inputs)

    url = chain.url
    ops = [
        spawn(OperatorAgent, url, m.address, abi, keys["operator"], infer, "honest"),
        spawn(OperatorAgent, url, m.address, abi, keys["operator2"], infer, "honest"),
        spawn(OperatorAgent, url, m.address, abi, keys["spare"], infer, "cheat"),
    ]
    vals = [spawn(ValidatorAgent, url, m.address, abi, keys[k], infer) for k in ("v1", "v2")]
    tower = spawn(ChallengerAgent, url, m.address, abi, keys["challenger"], infer, ETHER // 10)
    ray.get([o.stake.remote(2 * ETHER) for o in ops])
    ray.get([o.offer.remote(model, ETHER // 100, 10) for o in ops])
    addrs = ray.get([o.get_address.remote() for o in ops])

    jobs = [req.post_job(model, h, a, ETHER // 100)[0] for h, a in zip(inputs, addrs)]
    reports = ray.get([o.step.remote() for o in ops])
    assert [r["served"] for r in reports] == [1, 1, 1] and [r["cheated"] for r in reports] == [0, 0, 1]
    assert [r["declined"] for r in reports] == [0, 0, 0]
    assert all(m.job(j).status == Status.COMMITTED for j in jobs)

    t = ray.get(tower.step.remote())
    assert t == {"challenger": Challenger(m, keys["challenger"]).address, "checked": 3, "challenged": 1}
    assert [m.job(j).status for j in jobs] == [Status.COMMITTED, Status.COMMITTED, Status.CHALLENGED]
    votes = ray.get([v.step.remote() for v in vals])
    assert [v["voted"] for v in votes] == [1, 1]
    assert m.job(jobs[2]).status == Status.CHALLENGED  # the quorum decides at the proof deadline

    mine(w3, WINDOWS["proof_window"] + 1)
    keeper = Challenger(m, keys["anyone"])
    for j in jobs:
        keeper.settle(j)
    assert [m.job(j).status for j in jobs] == [Status.SETTLED, Status.SETTLED, Status.SLASHED]
    assert [m.credit(a) for a in addrs] == [ETHER // 100, ETHER // 100, 0]
    assert m.operator(addrs[2]).stake == 2 * ETHER - m.config().slash_amount
    books_balance(m)
    for a in ops + vals + [tower]:
        ray.kill(a)
