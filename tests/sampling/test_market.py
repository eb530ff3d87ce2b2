"""PoSPMarket on a real anvil chain: payments, slashing, challenges, deadlines, unstaking, bad inputs.

Balances are checked to the wei: every transaction's gas (gasUsed * effectiveGasPrice) is accounted.
The validators here submit the hash of the true output; tests/sampling/test_reexec.py shows they get
it from a real, deterministic EZKL re-execution. Their quorum decides an audit only at its proof deadline
(a receipt may still overrule it: test_attacks.py). Models and receipts come from MockRegistry.sol.
"""
from __future__ import annotations

import pytest

from dsperse.errors import TransactionRevertedError
from dsperse.sampling.market import (
    BURN_ADDRESS as BURN,
    ETHER,
    Challenger,
    Operator,
    Requester,
    Status,
    Validator,
    gas_cost,
    input_commitment,
    mine,
    model_id_bytes,
    output_hash,
)

from .conftest import VALIDATOR_STAKE

FEE = ETHER // 100
BOND = ETHER // 10
TRUE_OUT = [5, -3, 12]
LIE_OUT = [5, -3, 13]
WINDOWS = dict(commit_window=5, audit_delay=2, proof_window=10, challenge_window=8, unstake_delay=4)


class Roles:
    """The actors of one market, by name; the model is in the (mock) registry, registered by the requester."""

    def __init__(self, market, keys, registry):
        self.m = market
        self.w3 = market.w3
        self.req = Requester(market, keys["requester"])
        self.op = Operator(market, keys["operator"])
        self.op2 = Operator(market, keys["operator2"])
        self.ch = Challenger(market, keys["challenger"])
        self.anyone = Challenger(market, keys["anyone"])
        self.v1, self.v2, self.v3 = (Validator(market, keys[k]) for k in ("v1", "v2", "v3"))
        self.model = registry.register(keys["requester"], model_id_bytes("tiny-mlp"), [1, 2, 3])
        for op in (self.op, self.op2):  # both operators opt in to serve the model (before any balance is read)
            op.offer(self.model, FEE // 2, 100)

    def bal(self, who) -> int:
        return self.w3.eth.get_balance(who if isinstance(who, str) else who.address)

    def post_and_commit(self, out, fee=FEE):
        jid, rc_post = self.req.post_job(self.model, input_commitment(b"input-1"), self.op.address, fee)
        rc_commit = self.op.commit(jid, output_hash(out))
        return jid, rc_post, rc_commit

    def vote_and_decide(self, jid, out, voters=("v1", "v2")):
        """Validators vote ``out``; the quorum decides at the proof deadline (settle, by anyone)."""
        for v in voters:
            getattr(self, v).submit_verdict(jid, output_hash(out))
        mine(self.w3, self.m.job(jid).proof_deadline - self.w3.eth.block_number + 1)
        return self.anyone.settle(jid)


def gas(*receipts) -> int:
    return sum(gas_cost(r) for r in receipts)


@pytest.fixture
def sampled(deploy, keys, books_balance, registry):
    """A market that audits every job (p = 100%); S = 1 ETH. Its books must balance after the test."""
    r = Roles(deploy(audit_bps=10_000, **WINDOWS), keys, registry)
    yield r
    books_balance(r.m)


@pytest.fixture
def unsampled(deploy, keys, books_balance, registry):
    """A market that never samples (p = 0): only challenges trigger audits."""
    r = Roles(deploy(audit_bps=0, **WINDOWS), keys, registry)
    yield r
    books_balance(r.m)


def test_honest_operator_sampled_proven_by_validators_and_paid_exactly(sampled):
    r = sampled
    op0, req0 = r.bal(r.op), r.bal(r.req)
    rc_stake = r.op.stake(2 * ETHER)
    jid, rc_post, rc_commit = r.post_and_commit(TRUE_OUT)
    mine(r.w3, WINDOWS["audit_delay"] + 1)
    is_sampled, _ = r.anyone.draw_audit(jid)
    assert is_sampled
    assert r.m.job(jid).status == Status.AUDITED
    assert r.op.state().open_audits == 1
    r.v1.submit_verdict(jid, output_hash(TRUE_OUT))
    rc_v2 = r.v2.submit_verdict(jid, output_hash(TRUE_OUT))
    assert r.m.events(rc_v2, "QuorumReached")[0]["outputHash"] == output_hash(TRUE_OUT)
    assert r.m.job(jid).status == Status.AUDITED  # a quorum decides only at the proof deadline
    with pytest.raises(TransactionRevertedError, match="proof window still open"):
        r.anyone.settle(jid)
    rc_reveal = r.op.reveal_output(jid, TRUE_OUT)
    mine(r.w3, WINDOWS["proof_window"])
    rc_settle = r.anyone.settle(jid)
    assert r.m.events(rc_settle, "JobSettled")[0]["fee"] == FEE
    assert r.m.job(jid).status == Status.SETTLED
    assert r.op.credit == FEE
    rc_wd = r.op.withdraw_credit()
    assert r.bal(r.op) == op0 - 2 * ETHER + FEE - gas(rc_stake, rc_commit, rc_reveal, rc_wd)
    assert r.bal(r.req) == req0 - FEE - gas(rc_post)
    # and the stake comes back after the two-step unstake
    rc_req = r.op.request_unstake()
    with pytest.raises(TransactionRevertedError, match="unstake delay not over"):
        r.op.withdraw_stake()
    mine(r.w3, WINDOWS["unstake_delay"])
    rc_out = r.op.withdraw_stake()
    assert r.bal(r.op) == op0 + FEE - gas(rc_stake, rc_commit, rc_reveal, rc_wd, rc_req, rc_out)
    assert r.m.totals()["balance"] == 3 * VALIDATOR_STAKE  # only the validators' stakes are left


def test_cheater_sampled_is_slashed_requester_refunded_and_burn_exact(sampled):
    r = sampled
    cfg = r.m.config()
    op0, req0, burn0 = r.bal(r.op), r.bal(r.req), r.bal(BURN)
    rc_stake = r.op.stake(2 * ETHER)
    jid, rc_post, rc_commit = r.post_and_commit(LIE_OUT)
    mine(r.w3, cfg.audit_delay + 1)
    assert r.anyone.draw_audit(jid)[0]
    rc = r.vote_and_decide(jid, TRUE_OUT)
    ev = r.m.events(rc, "Slashed")[0]
    share = cfg.slash_amount * cfg.reporter_share_bps // 10_000
    assert (ev["reason"], ev["amount"], ev["toReporter"], ev["burned"]) == (
        "proven wrong output", cfg.slash_amount, share, cfg.slash_amount - share,
    )
    assert ev["reporter"] == r.req.address  # sampled job: the requester reports
    assert r.m.job(jid).status == Status.SLASHED
    assert r.op.state().stake == 2 * ETHER - cfg.slash_amount
    assert r.bal(BURN) == burn0 + cfg.slash_amount - share
    rc_wd = r.req.withdraw_credit()
    assert r.bal(r.req) == req0 - gas(rc_post, rc_wd) + share  # fee refunded, share earned
    assert r.op.credit == 0
    assert r.bal(r.op) == op0 - 2 * ETHER - gas(rc_stake, rc_commit)


def test_unsampled_cheater_challenged_slashed_and_challenger_paid_exactly(unsampled):
    r = unsampled
    cfg = r.m.config()
    ch0, req0, burn0 = r.bal(r.ch), r.bal(r.req), r.bal(BURN)
    r.op.stake(2 * ETHER)
    jid, rc_post, _ = r.post_and_commit(LIE_OUT)
    mine(r.w3, cfg.audit_delay + 1)
    assert r.anyone.draw_audit(jid)[0] is False
    assert r.m.job(jid).status == Status.CLEARED
    rc_ch = r.ch.challenge(jid, BOND)
    assert r.m.job(jid).status == Status.CHALLENGED
    rc = r.vote_and_decide(jid, TRUE_OUT, ("v1", "v3"))
    ev = r.m.events(rc, "Slashed")[0]
    share = cfg.slash_amount * cfg.reporter_share_bps // 10_000
    assert ev["reporter"] == r.ch.address and ev["toReporter"] == share
    assert r.ch.credit == BOND + share
    assert r.req.credit == FEE
    rc_wd = r.ch.withdraw_credit()
    assert r.bal(r.ch) == ch0 - gas(rc_ch, rc_wd) + share
    rc_wd2 = r.req.withdraw_credit()
    assert r.bal(r.req) == req0 - gas(rc_post, rc_wd2)
    assert r.bal(BURN) == burn0 + cfg.slash_amount - share


def test_failed_challenge_forfeits_bond_to_operator(unsampled):
    r = unsampled
    ch0, op0 = r.bal(r.ch), r.bal(r.op)
    rc_stake = r.op.stake(2 * ETHER)
    jid, _, rc_commit = r.post_and_commit(TRUE_OUT)
    rc_ch = r.ch.challenge(jid, BOND)  # before the draw: a challenge forces the audit anyway
    rc_reveal = r.op.reveal_output(jid, TRUE_OUT)
    rc = r.vote_and_decide(jid, TRUE_OUT)
    assert r.m.events(rc, "ChallengeFailed")[0]["bondToOperator"] == BOND
    assert r.m.job(jid).status == Status.SETTLED
    assert r.op.credit == FEE + BOND
    assert r.ch.credit == 0
    rc_wd = r.op.withdraw_credit()
    assert r.bal(r.op) == op0 - 2 * ETHER + FEE + BOND - gas(rc_stake, rc_commit, rc_reveal, rc_wd)
    assert r.bal(r.ch) == ch0 - BOND - gas(rc_ch)


def test_unsampled_unchallenged_job_settles_after_window(unsampled):
    r = unsampled
    r.op.stake(ETHER)
    jid, _, _ = r.post_and_commit(TRUE_OUT)
    mine(r.w3, WINDOWS["audit_delay"] + 1)
    with pytest.raises(TransactionRevertedError, match="challenge window still open"):
        r.anyone.settle(jid)
    mine(r.w3, WINDOWS["challenge_window"])
    with pytest.raises(TransactionRevertedError, match="challenge window closed"):
        r.ch.challenge(jid, BOND)
    r.op.reveal_output(jid, TRUE_OUT)
    rc = r.anyone.settle(jid)
    assert r.m.events(rc, "AuditDrawn")[0]["sampled"] is False
    assert r.m.job(jid).status == Status.SETTLED and r.op.credit == FEE


def test_missed_commit_deadline_is_slashed(sampled):
    r = sampled
    r.op.stake(2 * ETHER)
    jid, _ = r.req.post_job(r.model, input_commitment(b"x"), r.op.address, FEE)
    with pytest.raises(TransactionRevertedError, match="commit window still open"):
        r.anyone.settle(jid)
    mine(r.w3, WINDOWS["commit_window"] + 1)
    with pytest.raises(TransactionRevertedError, match="commit deadline passed"):
        r.op.commit(jid, output_hash(TRUE_OUT))
    burned0 = r.bal(BURN)
    rc = r.anyone.settle(jid)
    ev = r.m.events(rc, "Slashed")[0]
    assert ev["reason"] == "missed commit deadline" and ev["amount"] == ETHER
    assert r.m.job(jid).status == Status.SLASHED
    assert ev["toReporter"] == 0 and ev["burned"] == ETHER and r.bal(BURN) - burned0 == ETHER
    assert r.req.credit == FEE  # the fee back, no reward for a job whose input the requester may have withheld


# -- griefing (issue 11, item 6): jobs only reach operators that opted in -----------------------------------


def test_grief_posting_to_an_operator_that_did_not_opt_in_reverts(sampled, registry, keys):
    r = sampled
    other = registry.register(keys["requester"], model_id_bytes("other-model"), [9])
    r.op.stake(2 * ETHER)
    with pytest.raises(TransactionRevertedError, match="does not serve this model"):
        r.req.post_job(other, input_commitment(b"x"), r.op.address, FEE)
    r.op.offer(other, FEE, 1)
    jid, _ = r.req.post_job(other, input_commitment(b"x"), r.op.address, FEE)
    r.op.decline(jid)
    r.op.offer(other, FEE, 0)  # stops serving it
    with pytest.raises(TransactionRevertedError, match="does not serve this model"):
        r.req.post_job(other, input_commitment(b"y"), r.op.address, FEE)


def test_grief_one_wei_job_below_the_price_reverts(sampled):
    r = sampled
    r.op.stake(2 * ETHER)
    with pytest.raises(TransactionRevertedError, match="fee below the operator's price"):
        r.req.post_job(r.model, input_commitment(b"x"), r.op.address, 1)
    assert r.m.offer(r.op.address, r.model) == (FEE // 2, 100, 0)


def test_grief_flooding_past_capacity_reverts_and_a_closed_job_frees_a_slot(sampled):
    r = sampled
    r.op.stake(3 * ETHER)
    r.op.offer(r.model, FEE // 2, 2)
    jobs = [r.req.post_job(r.model, input_commitment(bytes([i])), r.op.address, FEE)[0] for i in range(2)]
    with pytest.raises(TransactionRevertedError, match="at capacity"):
        r.req.post_job(r.model, input_commitment(b"3"), r.op.address, FEE)
    r.op.decline(jobs[0])
    assert r.m.offer(r.op.address, r.model)[2] == 1
    r.req.post_job(r.model, input_commitment(b"3"), r.op.address, FEE)
    assert r.m.offer(r.op.address, r.model)[2] == 2


def test_missed_proof_deadline_is_slashed(sampled):
    r = sampled
    r.op.stake(2 * ETHER)
    jid, _, _ = r.post_and_commit(TRUE_OUT)
    mine(r.w3, WINDOWS["audit_delay"] + 1)
    assert r.anyone.draw_audit(jid)[0]
    with pytest.raises(TransactionRevertedError, match="proof window still open"):
        r.anyone.settle(jid)
    mine(r.w3, WINDOWS["proof_window"] + 1)
    rc = r.anyone.settle(jid)
    assert r.m.events(rc, "Slashed")[0]["reason"] == "missed proof deadline"
    assert r.op.state().open_audits == 0 and r.op.state().open_jobs == 0
    with pytest.raises(TransactionRevertedError, match="job not under audit"):
        r.v1.submit_verdict(jid, output_hash(TRUE_OUT))


def test_unstake_refused_with_open_challenge_or_unfinished_jobs(unsampled):
    r = unsampled
    r.op.stake(2 * ETHER)
    jid, _ = r.req.post_job(r.model, input_commitment(b"x"), r.op.address, FEE)
    with pytest.raises(TransactionRevertedError, match="PoSP: unfinished jobs"):
        r.op.request_unstake()
    r.op.commit(jid, output_hash(LIE_OUT))
    r.ch.challenge(jid, BOND)
    with pytest.raises(TransactionRevertedError, match="PoSP: open audit or challenge"):
        r.op.request_unstake()
    r.vote_and_decide(jid, TRUE_OUT)
    assert r.m.job(jid).status == Status.SLASHED
    r.op.request_unstake()
    with pytest.raises(TransactionRevertedError, match="operator is unstaking"):
        r.req.post_job(r.model, input_commitment(b"y"), r.op.address, FEE)
    mine(r.w3, WINDOWS["unstake_delay"])
    rc = r.op.withdraw_stake()
    assert r.m.events(rc, "StakeWithdrawn")[0]["amount"] == ETHER  # 2 ETH minus the 1 ETH slash


def test_operator_declines_a_job_whose_input_never_came(unsampled):
    """Declining before the commit refunds the requester and costs no stake (requesters cannot grief by
    posting commitments to inputs they never send)."""
    r = unsampled
    r.op.stake(ETHER)
    jid, _ = r.req.post_job(r.model, input_commitment(b"never sent"), r.op.address, FEE)
    with pytest.raises(TransactionRevertedError, match="not the job's operator"):
        r.op2.decline(jid)
    rc = r.op.decline(jid)
    assert r.m.events(rc, "JobDeclined")[0]["operator"] == r.op.address
    assert r.m.job(jid).status == Status.DECLINED and r.req.credit == FEE
    assert r.op.state().open_jobs == 0 and r.op.state().stake == ETHER
    with pytest.raises(TransactionRevertedError, match="output already committed"):
        r.op.commit(jid, output_hash(TRUE_OUT))


def test_bad_inputs_revert_with_reasons(unsampled, keys):
    r = unsampled
    x = input_commitment(b"x")

    def reverts(reason, fn, *args, **kw):
        with pytest.raises(TransactionRevertedError) as e:
            fn(*args, **kw)
        assert reason in e.value.reason, e.value.reason

    reverts("PoSP: zero stake", r.op.stake, 0)
    reverts("PoSP: stake below minimum", r.op.stake, ETHER // 2)
    reverts("PoSP: unknown operator", r.req.post_job, r.model, x, r.op.address, FEE)
    r.op.stake(2 * ETHER)
    r.op2.stake(2 * ETHER)
    reverts("PoSP: model not provable (not in the registry)", r.req.post_job, model_id_bytes("nope"), x, r.op.address, FEE)
    reverts("PoSP: zero fee", r.req.post_job, r.model, x, r.op.address, 0)
    reverts("PoSP: sliceCount differs from the registry", r.req.register_model, r.model, 2)
    reverts("PoSP: mask must be a suffix of slices", r.req.register_model, r.model, 3, 0b010, model_id_bytes("p"))
    reverts("PoSP: mask needs provenPartModelId", r.req.register_model, r.model, 3, 0b100)
    reverts("PoSP: part model not in the registry", r.req.register_model, r.model, 3, 0b110, model_id_bytes("p"))
    r.req.register_model(r.model, 3)
    reverts("PoSP: model already registered", r.req.register_model, r.model, 3)
    missing = model_id_bytes("no-such-job")
    reverts("PoSP: unknown job", r.op.commit, missing, output_hash(TRUE_OUT))
    reverts("PoSP: unknown job", r.anyone.settle, missing)
    jid, _ = r.req.post_job(r.model, x, r.op.address, FEE)
    reverts("PoSP: not the job's operator", r.op2.commit, jid, output_hash(TRUE_OUT))
    reverts("PoSP: audit not drawable in this state", r.anyone.draw_audit, jid)  # not committed yet
    r.op.commit(jid, output_hash(TRUE_OUT))
    reverts("PoSP: output already committed", r.op.commit, jid, output_hash(LIE_OUT))
    reverts("PoSP: seed block not mined yet", r.anyone.draw_audit, jid)
    reverts("PoSP: outputs do not match the commitment", r.op.reveal_output, jid, LIE_OUT)
    reverts("PoSP: job not under audit", r.v1.submit_verdict, jid, output_hash(TRUE_OUT))
    reverts("PoSP: bond below minimum", r.ch.challenge, jid, BOND // 2)
    r.ch.challenge(jid, BOND)
    reverts("PoSP: job not challengeable", r.anyone.challenge, jid, BOND)
    reverts("PoSP: not a validator", Validator(r.m, keys["anyone"]).submit_verdict, jid, output_hash(TRUE_OUT))
    reverts("PoSP: zero output hash", r.v1.submit_verdict, jid, b"\0" * 32)
    r.v1.submit_verdict(jid, output_hash(TRUE_OUT))
    reverts("PoSP: double submit", r.v1.submit_verdict, jid, output_hash(TRUE_OUT))
    reverts("PoSP: no receipt for job", r.anyone.prove_with_receipt, jid)  # no ProofOfInference attached
    reverts("PoSP: nothing to withdraw", r.anyone.withdraw_credit)
    # collateral: stake 2 ETH backs at most two open jobs at S = 1 ETH each
    r.req.post_job(r.model, x, r.op.address, FEE)
    reverts("PoSP: stake does not cover another job", r.req.post_job, r.model, x, r.op.address, FEE)
    reverts("PoSP: only owner", r.m.transact, keys["anyone"], "addValidator", r.anyone.address)


def test_grief_agent_declines_an_unknown_input_and_serves_the_jobs_behind_it(sampled, chain, keys, market_artifact):
    """A job whose input never reached the operator comes first; the agent declines it (no slash, fee back to
    the requester) and still commits the honest job posted after it."""
    from dsperse.sampling.actors import OperatorAgent

    r = sampled
    known = input_commitment(b"known input")

    def infer(model: bytes, input_hash: bytes) -> list[int]:
        return {known: TRUE_OUT}[bytes(input_hash)]  # KeyError for anything else, as EzklInference does

    agent = OperatorAgent(chain.url, r.m.address, market_artifact[0], keys["operator"], infer)
    agent.stake(2 * ETHER)
    agent.offer(r.model, FEE // 2, 10)
    lost, _ = r.req.post_job(r.model, input_commitment(b"never sent"), r.op.address, FEE)
    good, _ = r.req.post_job(r.model, known, r.op.address, FEE)
    report = agent.step()
    assert (report["served"], report["declined"]) == (1, 1)
    assert r.m.job(lost).status == Status.DECLINED and r.m.job(good).status == Status.COMMITTED
    assert r.m.job(good).output_hash == output_hash(TRUE_OUT)
    assert r.req.credit == FEE and r.op.state().stake == 2 * ETHER
