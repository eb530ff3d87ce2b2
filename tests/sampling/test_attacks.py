"""The four attacks of the security review (issue 7-9), each shown failing on anvil against PoSPMarket.

- grind: a block builder re-rolls the audit seed (`pytest -k grind`)
- override: a colluding validator quorum against a receipt (`-k override`)
- self_challenge: a cheater challenges itself to keep the reporter share (`-k self_challenge`)
- squat: configuring someone else's model, or a model no receipt can prove (`-k squat`); an operator that
  withholds its output (`-k withheld`)

Models and receipts come from MockRegistry.sol (the same views as ProofOfInference); test_receipts.py runs
the receipt path with real EZKL proofs.
"""
from __future__ import annotations

import pytest
from eth_utils import keccak

from dsperse.errors import TransactionRevertedError
from dsperse.sampling.economics import Economics, self_report_penalty
from dsperse.sampling.market import ETHER, Challenger, Operator, Requester, Status, Validator, input_commitment, mine, model_id_bytes, output_hash
from dsperse.sampling.simulation import SimConfig, simulate_serial

from .conftest import VALIDATOR_STAKE

FEE = ETHER // 100
BOND = ETHER // 10
TRUE_OUT = [5, -3, 12]
LIE_OUT = [5, -3, 13]
WINDOWS = dict(commit_window=5, audit_delay=2, proof_window=10, challenge_window=8, unstake_delay=4)
IN = input_commitment(b"input-1")


class Parties:
    def __init__(self, market, keys, registry):
        self.m, self.w3, self.reg, self.keys = market, market.w3, registry, keys
        self.req = Requester(market, keys["requester"])
        self.op = Operator(market, keys["operator"])
        self.ch = Challenger(market, keys["challenger"])
        self.puppet = Challenger(market, keys["spare"])
        self.anyone = Challenger(market, keys["anyone"])
        self.v1, self.v2, self.v3 = (Validator(market, keys[k]) for k in ("v1", "v2", "v3"))
        self.model = registry.register(keys["requester"], model_id_bytes("attacked-model"), [1, 2, 3])
        self.op.offer(self.model, FEE, 100)
        self.op.stake(3 * ETHER)

    def job(self, out):
        jid, _ = self.req.post_job(self.model, IN, self.op.address, FEE)
        self.op.commit(jid, output_hash(out))
        return jid

    def receipt(self, who: str, name: str, outputs) -> bytes:
        """A registry receipt of this job's model and input, proven by ``who``, under its receipt id."""
        return self.reg.store_receipt(self.keys[who], model_id_bytes(name), self.model, IN, outputs)


@pytest.fixture
def parties(deploy, keys, registry, books_balance):
    made = []

    def make(**cfg):
        made.append(Parties(deploy(**(WINDOWS | cfg)), keys, registry))
        return made[-1]

    yield make
    for p in made:
        books_balance(p.m)


# -- 7. grinding the audit seed --------------------------------------------------------------------------


def _old_scheme_sampled(w3, seed_block: int, jid: bytes, bps: int) -> bool:
    """The pre-issue-7 draw, keccak256(abi.encode(blockhash(commitBlock + k), jobId)): what a builder can compute."""
    bh = bytes(w3.eth.get_block(seed_block)["hash"])
    return int.from_bytes(keccak(bh + jid), "big") % 10_000 < bps


def test_grind_builder_cannot_steer_the_audit(parties):
    """The operator builds the blocks (anvil snapshots): for each job it re-makes the commitment's block and the
    k blocks after it up to 6 times until the public draw says "not sampled". The market draws from the
    requester's secret as well, so the kept branches are still audited about half the time at p = 50%.
    (With the old blockhash seed every job would have escaped but 1 in 64.)"""
    r = parties(audit_bps=5_000)
    k, n, sampled, fooled = WINDOWS["audit_delay"], 40, 0, 0
    for i in range(n):
        jid, _ = r.req.post_job(r.model, IN, r.op.address, FEE)
        for t in range(6):
            snap = r.w3.provider.make_request("evm_snapshot", [])["result"]
            ts = r.w3.eth.get_block("latest")["timestamp"] + 1 + t  # a builder's free choice: another block hash
            r.w3.provider.make_request("evm_setNextBlockTimestamp", [ts])
            r.op.commit(jid, output_hash(TRUE_OUT))  # honest here, so the stake lasts; an audit costs it a proof
            mine(r.w3, k)
            if not _old_scheme_sampled(r.w3, r.m.job(jid).commit_block + k, jid, 5_000):
                fooled += 1
                break
            if t < 5:
                r.w3.provider.make_request("evm_revert", [snap])
        mine(r.w3, 1)
        sampled += r.req.reveal_seed(jid)[0]
        if r.m.job(jid).status == Status.AUDITED:
            r.op.prove_with_receipt(jid, r.receipt("operator", f"grind {i}", TRUE_OUT))
        else:
            mine(r.w3, WINDOWS["challenge_window"])
            r.op.reveal_output(jid, TRUE_OUT)
            r.anyone.settle(jid)
    assert fooled >= n - 2  # the grinder did find "unsampled" branches of the public draw
    assert 10 <= sampled <= 30, sampled  # Binomial(40, 0.5): outside [10, 30] with probability < 0.2%


def test_grind_withheld_or_wrong_secret_never_helps_the_operator(parties):
    r = parties(audit_bps=5_000)
    jid = r.job(LIE_OUT)
    with pytest.raises(TransactionRevertedError, match="seed block not mined yet"):
        r.req.reveal_seed(jid)
    mine(r.w3, WINDOWS["audit_delay"] + 1)
    with pytest.raises(TransactionRevertedError, match="secret does not match the commitment"):
        r.req.reveal_seed(jid, b"\1" * 32)
    with pytest.raises(TransactionRevertedError, match="seed reveal window still open"):
        r.op.draw_audit(jid)  # the operator cannot skip the secret while it may still come
    mine(r.w3, WINDOWS["challenge_window"])
    with pytest.raises(TransactionRevertedError, match="reveal window closed"):
        r.req.reveal_seed(jid)  # too late: a requester cannot wait for a block it likes either
    is_sampled, rc = r.op.draw_audit(jid)
    assert is_sampled and r.m.events(rc, "AuditDrawn")[0]["seed"] == b"\0" * 32
    r.ch.prove_with_receipt(jid, r.receipt("challenger", "withheld", TRUE_OUT))
    assert r.m.job(jid).status == Status.SLASHED


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_grind_simulated_audited_share_stays_p(p):
    """Ray simulation's draw, serial: a cheater grinding 16 candidate blocks per job is audited on a share p of
    its jobs under commit-reveal (tolerance: 5 standard errors), and almost never under the old blockhash seed."""
    e = Economics(R=1.0, S=20.0, C=0.8)
    base = dict(n_operators=100, jobs_per_operator=200, mix={"cheat": 1.0}, grind_tries=16)
    cr = simulate_serial(SimConfig(e, p, seed_scheme="commit-reveal", **base)).stats["cheat"]
    bh = simulate_serial(SimConfig(e, p, seed_scheme="blockhash", **base)).stats["cheat"]
    tol = 5 * (p * (1 - p) / cr.cheats) ** 0.5
    assert abs(cr.audited_cheat_share - p) < tol, (cr.audited_cheat_share, p, tol)
    assert bh.audited_cheat_share < p**16 + 1e-3
    if p > 0.8 / 21:  # above p* = C / (R + S) honesty (profit R per job) pays more, unless the seed is ground
        assert cr.profit_per_job < e.R < bh.profit_per_job


# -- 8. validators overriding proofs ---------------------------------------------------------------------


def test_override_receipt_beats_a_colluding_quorum_and_slashes_it(parties):
    """Two validators vote a lie against an honest operator: their quorum waits for the proof deadline, the
    operator's receipt decides first, it is paid, and both voters lose S (half to the receipt's shower)."""
    r = parties(audit_bps=10_000)
    cfg = r.m.config()
    jid = r.job(TRUE_OUT)
    mine(r.w3, WINDOWS["audit_delay"] + 1)
    assert r.anyone.draw_audit(jid)[0]
    r.v1.submit_verdict(jid, output_hash(LIE_OUT))
    rc = r.v2.submit_verdict(jid, output_hash(LIE_OUT))
    assert r.m.events(rc, "QuorumReached")[0]["outputHash"] == output_hash(LIE_OUT)
    r.v3.submit_verdict(jid, output_hash(TRUE_OUT))
    assert r.m.job(jid).status == Status.AUDITED and r.op.state().stake == 3 * ETHER
    rc = r.op.prove_with_receipt(jid, r.receipt("operator", "honest run", TRUE_OUT))
    assert r.m.job(jid).status == Status.SETTLED
    slashed = {e["validator"]: e for e in r.m.events(rc, "ValidatorSlashed")}
    assert set(slashed) == {r.v1.address, r.v2.address}
    share = cfg.slash_amount * cfg.reporter_share_bps // 10_000
    assert all(e["amount"] == cfg.slash_amount and e["toReporter"] == share for e in slashed.values())
    assert r.op.credit == FEE + 2 * share
    assert [r.m.validator(v.address).stake for v in (r.v1, r.v2, r.v3)] == [VALIDATOR_STAKE - cfg.slash_amount] * 2 + [VALIDATOR_STAKE]
    assert all(r.m.validator(v.address).open_verdicts == 0 for v in (r.v1, r.v2, r.v3))
    with pytest.raises(TransactionRevertedError, match="job already closed"):
        r.anyone.settle(jid)


def test_override_receipt_proves_the_lie_a_quorum_covered(parties):
    r = parties(audit_bps=0)
    jid = r.job(LIE_OUT)
    r.ch.challenge(jid, BOND)
    r.v1.submit_verdict(jid, output_hash(LIE_OUT))
    r.v2.submit_verdict(jid, output_hash(LIE_OUT))  # the accomplices' quorum says "honest"
    rc = r.ch.prove_with_receipt(jid, r.receipt("challenger", "watchtower's run", TRUE_OUT))
    assert r.m.events(rc, "Slashed")[0]["reason"] == "proven wrong output"
    assert len(r.m.events(rc, "ValidatorSlashed")) == 2
    assert r.m.job(jid).status == Status.SLASHED


def test_override_validators_must_stake_and_can_be_removed(parties, keys):
    r = parties(audit_bps=0)
    cfg = r.m.config()
    newcomer = Validator(r.m, keys["anyone"])
    jid, jid2 = r.job(TRUE_OUT), r.job(TRUE_OUT)
    for j in (jid, jid2):
        r.ch.challenge(j, BOND)
    with pytest.raises(TransactionRevertedError, match="not a validator"):
        newcomer.stake(cfg.slash_amount)
    r.m.add_validator(keys["owner"], newcomer.address)
    with pytest.raises(TransactionRevertedError, match="validator stake does not cover another verdict"):
        newcomer.submit_verdict(jid, output_hash(TRUE_OUT))
    newcomer.stake(cfg.slash_amount)  # S covers one open verdict
    newcomer.submit_verdict(jid, output_hash(TRUE_OUT))
    with pytest.raises(TransactionRevertedError, match="validator stake does not cover another verdict"):
        newcomer.submit_verdict(jid2, output_hash(TRUE_OUT))
    with pytest.raises(TransactionRevertedError, match="only owner or the validator"):
        r.m.remove_validator(keys["requester"], r.v3.address)
    r.m.remove_validator(keys["owner"], r.v3.address)
    with pytest.raises(TransactionRevertedError, match="not a validator"):
        r.v3.submit_verdict(jid, output_hash(TRUE_OUT))
    r.v3.withdraw_stake()  # no open verdicts
    newcomer.leave()
    with pytest.raises(TransactionRevertedError, match="verdicts still open"):
        newcomer.withdraw_stake()
    r.op.prove_with_receipt(jid, r.receipt("operator", "run a", TRUE_OUT))
    newcomer.withdraw_stake()
    assert r.m.validator(newcomer.address).stake == 0
    r.op.prove_with_receipt(jid2, r.receipt("operator", "run b", TRUE_OUT))


# -- 9. self-challenge, config squatting, withheld outputs ------------------------------------------------


def test_self_challenge_always_loses_money(parties, deploy):
    """A cheater front-runs the watchtower with a sock puppet: it gets the bond and the reporter share back,
    but the share is at most half the slash, so cheater + puppet lose exactly (1 - share) S >= S / 2."""
    for bps in (10_000, 5_001):
        with pytest.raises(TransactionRevertedError, match="reporterShareBps > 5000"):
            deploy(reporter_share_bps=bps, **WINDOWS)
    r = parties(audit_bps=0, reporter_share_bps=5_000)
    cfg = r.m.config()
    jid = r.job(LIE_OUT)
    r.puppet.challenge(jid, BOND)
    rc = r.puppet.prove_with_receipt(jid, r.receipt("spare", "puppet's run", TRUE_OUT))
    ev = r.m.events(rc, "Slashed")[0]
    assert ev["reporter"] == r.puppet.address
    gained = r.puppet.credit - BOND  # the bond comes back; the rest is the reporter share
    lost = 3 * ETHER - r.op.state().stake
    assert lost - gained == self_report_penalty(cfg.slash_amount, cfg.reporter_share_bps / 10_000) == cfg.slash_amount // 2
    assert r.op.credit == 0 and r.req.credit == FEE  # no fee for the cheater, the requester is refunded


def test_squat_only_the_registrant_configures_a_model(parties, keys, registry):
    """Held before issue 9: a registry model is configured in the market by its registry registrant only."""
    r = parties()
    part = registry.register(keys["anyone"], model_id_bytes("squatter's part"), [3])
    with pytest.raises(TransactionRevertedError, match="only the model's registry registrant"):
        Requester(r.m, keys["anyone"]).register_model(r.model, 3, 0b100, part)


def test_squat_a_model_outside_the_registry_gets_no_config_and_no_jobs(parties, keys):
    """A model no receipt can prove cannot be configured, offered or posted: a squatter cannot take the market
    slot of a model before its owner registers it in ProofOfInference."""
    r = parties()
    ghost = model_id_bytes("not registered yet")
    with pytest.raises(TransactionRevertedError, match="model not in the registry"):
        Requester(r.m, keys["anyone"]).register_model(ghost, 3)
    with pytest.raises(TransactionRevertedError, match="model not provable"):
        r.op.offer(ghost, FEE, 1)
    with pytest.raises(TransactionRevertedError, match="model not provable"):
        r.req.post_job(ghost, IN, r.op.address, FEE)


def test_squat_a_part_configured_after_a_job_is_not_asked_of_it(parties, keys, registry):
    """Review finding: the registrant posts jobs, then configures an always-proven part (one nobody may be able
    to prove) before the operator settles; the part was not asked when the job was posted, so the job settles
    and the operator is paid. Jobs posted after the configuration need the part."""
    r = parties(audit_bps=0)
    before = r.job(TRUE_OUT)
    r.op.reveal_output(before, TRUE_OUT)
    part = registry.register(keys["anyone"], model_id_bytes("late part: slice 3"), [3], num_inputs=0)
    r.req.register_model(r.model, 3, 0b100, part)
    after = r.job(TRUE_OUT)
    r.op.reveal_output(after, TRUE_OUT)
    with pytest.raises(TransactionRevertedError, match="part already proven \\(or not asked of this job\\)"):
        r.op.prove_part(before, part)
    mine(r.w3, WINDOWS["challenge_window"] + 1)
    r.anyone.settle(before)
    assert r.m.job(before).status == Status.SETTLED and r.op.credit == FEE
    with pytest.raises(TransactionRevertedError, match="part not proven yet"):
        r.anyone.settle(after)


def test_squat_a_suffix_part_takes_no_jobs(parties, keys, registry):
    """A part's receipts bind no input (it starts at a committed tensor): it cannot be offered or posted, so no
    job can be 'proven' by a receipt of any input."""
    r = parties()
    part = registry.register(keys["anyone"], model_id_bytes("a suffix"), [3], num_inputs=0)
    with pytest.raises(TransactionRevertedError, match="model not provable"):
        r.op.offer(part, FEE, 1)
    with pytest.raises(TransactionRevertedError, match="model not provable"):
        r.req.post_job(part, IN, r.op.address, FEE)


def test_squat_part_must_be_the_models_suffix(parties, keys, registry):
    """The always-proven part must run the model's last slices' verifier code (a fresh deployment of the same
    code passes) with the same outputs; a part made of other circuits is refused."""
    r = parties()
    anyone = keys["anyone"]
    wrong_code = registry.register(anyone, model_id_bytes("part: slice 2's code"), [2], num_inputs=0)
    too_long = registry.register(anyone, model_id_bytes("part: slices 2-3"), [2, 3], num_inputs=0)
    other_out = registry.register(anyone, model_id_bytes("part: slice 3, 4 outputs"), [3], num_outputs=4, num_inputs=0)
    not_a_part = registry.register(anyone, model_id_bytes("slice 3 as a whole model"), [3])  # states an input
    good = registry.register(anyone, model_id_bytes("part: slice 3"), [3], num_inputs=0)
    for part, why in ((wrong_code, "part is not the model's suffix"), (too_long, "part slice count differs from the mask"),
                      (other_out, "part outputs differ from the model's"),
                      (not_a_part, "part's inputs do not fit a suffix")):  # fmt: skip
        with pytest.raises(TransactionRevertedError, match=why):
            r.req.register_model(r.model, 3, 0b100, part)
    r.req.register_model(r.model, 3, 0b100, good)
    assert r.m.contract.functions.getModel(r.model).call()[4] == good


def test_withheld_output_is_slashed_not_paid(parties):
    """The operator is paid only once its outputs are public: hash-checked on chain, or in a matching receipt."""
    r = parties(audit_bps=0)
    kept, shown = r.job(TRUE_OUT), r.job(TRUE_OUT)
    r.op.reveal_output(shown, TRUE_OUT)
    with pytest.raises(TransactionRevertedError, match="output already revealed"):
        r.op.reveal_output(shown, TRUE_OUT)
    mine(r.w3, WINDOWS["challenge_window"] + 1)
    rc = r.anyone.settle(kept)
    ev = r.m.events(rc, "Slashed")[0]
    assert (ev["reason"], ev["reporter"]) == ("output not revealed", r.req.address)
    r.anyone.settle(shown)
    assert r.m.job(shown).status == Status.SETTLED and r.op.credit == FEE
    # an honest quorum does not pay a withheld output either
    r2 = parties(audit_bps=10_000)
    jid = r2.job(TRUE_OUT)
    mine(r2.w3, WINDOWS["audit_delay"] + 1)
    r2.anyone.draw_audit(jid)
    r2.v1.submit_verdict(jid, output_hash(TRUE_OUT))
    r2.v2.submit_verdict(jid, output_hash(TRUE_OUT))
    mine(r2.w3, WINDOWS["proof_window"] + 1)
    assert r2.m.events(r2.anyone.settle(jid), "Slashed")[0]["reason"] == "output not revealed"
