"""``dsperse market ...``: run a Proof-of-Sampling market from the shell, and its economics and simulation.

Added to the ``dsperse`` command by :func:`add_subcommands`; also runnable as
``python -m dsperse.sampling.cli``. Each subcommand is one contract call (or one computation).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from decimal import Decimal, InvalidOperation
from pathlib import Path

from dsperse.errors import DsperseError, MarketUsageError  # noqa: F401  (MarketUsageError: re-exported)
from dsperse.options import chain_options, prover_options, require_rpc, settings
from dsperse.util.argtypes import address, hex32, non_negative, non_negative_int, positive_int, probability

MARKET_EPILOG = """\
how a job goes (every step is one command; anyone may run draw and settle):
  dsperse market deploy --poi 0xREGISTRY --audit-bps 500            # p = 5%; prints the market address
  export DSPERSE_MARKET=0x...  DSPERSE_RPC=http://127.0.0.1:8545
  DSPERSE_PRIVATE_KEY=$OPERATOR  dsperse market stake 2ether
  DSPERSE_PRIVATE_KEY=$OPERATOR  dsperse market offer MODEL_ID --min-fee 0.01ether --capacity 10
  DSPERSE_PRIVATE_KEY=$REQUESTER dsperse market post-job MODEL_ID --input-hash 0x.. --operator 0xOP --fee 0.01ether
                                        # prints the job id and the audit SECRET: keep it
  DSPERSE_PRIVATE_KEY=$OPERATOR  dsperse market commit JOB_ID --outputs 240,-578,517
  DSPERSE_PRIVATE_KEY=$OPERATOR  dsperse market reveal-output JOB_ID --outputs 240,-578,517   # no pay without it
  DSPERSE_PRIVATE_KEY=$REQUESTER dsperse market reveal JOB_ID --secret SECRET   # after audit-delay blocks: the draw
  (p = 0 or 100%: dsperse market draw JOB_ID; unrevealed by the end of the challenge window: draw audits for sure)
  sampled   -> the operator proves:      dsperse submit RUN_DIR ; dsperse market prove JOB_ID --receipt-id RID
               (or staked validators:    dsperse market verdict JOB_ID --outputs ...; decides at the proof deadline)
  unsampled -> anyone may challenge:     dsperse market challenge JOB_ID --bond 0.1ether
  dsperse market settle JOB_ID          # pays, applies the validators' quorum, or slashes a missed deadline
  dsperse market withdraw               # pull fees, refunds, bonds and rewards credited to you

amounts: plain wei, or with a unit: 2ether, 0.5eth, 30gwei. Keys: --private-key or $DSPERSE_PRIVATE_KEY.
The economics (how large p must be for honesty to pay) are in `dsperse market economics --help` and docs/posp.md.
"""

_UNITS = {"wei": 1, "gwei": 10**9, "eth": 10**18, "ether": 10**18}


def parse_amount(text: str) -> int:
    """'2ether' / '0.5eth' / '30gwei' / '1000' (wei) -> wei."""
    t = text.strip().lower().replace("_", "")
    for unit in sorted(_UNITS, key=len, reverse=True):
        if t.endswith(unit):
            num, mult = t[: -len(unit)].strip(), _UNITS[unit]
            break
    else:
        num, mult = t, 1
    try:
        value = Decimal(num) * mult
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r} (use e.g. 1000, 30gwei, 0.5ether)") from None
    if value != value.to_integral_value() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole, non-negative number of wei")
    return int(value)


def _bytes32(text: str) -> bytes:
    from dsperse.sampling.market import model_id_bytes

    return model_id_bytes(text)


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers (quantized outputs), got {text!r}") from None


def _w3(a):
    from web3 import Web3

    from dsperse.errors import ChainUnavailableError

    rpc = require_rpc(settings(a).chain)  # --rpc, else $DSPERSE_RPC
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 60}))
    if not w3.is_connected():
        raise ChainUnavailableError(f"EVM node at {rpc} is unreachable")
    return w3


def _key(a) -> str:
    from dsperse.errors import ChainError

    key = settings(a).chain.private_key  # --private-key, else $DSPERSE_PRIVATE_KEY
    if not key:
        raise ChainError("this command sends a transaction: pass --private-key HEX or set $DSPERSE_PRIVATE_KEY")
    return key


def _market(a):
    from dsperse.errors import ChainError
    from dsperse.sampling.market import Market

    market = settings(a).sampling.market  # --market, else $DSPERSE_MARKET
    if not market:
        raise ChainError("which market? pass --market ADDRESS or set $DSPERSE_MARKET (see `dsperse market deploy`)")
    return Market(_w3(a), market)


def _out(a, obj: dict, text: str) -> int:
    print(json.dumps(obj, default=lambda o: "0x" + o.hex() if isinstance(o, bytes) else str(o)) if a.json else text)
    return 0


def _tx_summary(rc: dict) -> str:
    return f"block {rc['blockNumber']}, gas {rc['gasUsed']:,}"


# -- commands -----------------------------------------------------------------------------


def cmd_deploy(a) -> int:
    from dsperse.sampling.market import Market, MarketConfig

    cfg = MarketConfig(**{f.name: getattr(a, f.name) for f in fields(MarketConfig)})
    m = Market.deploy(_w3(a), _key(a), a.poi, cfg, validators=a.validator or ())
    return _out(a, {"market": m.address, "config": cfg.__dict__},
                f"PoSPMarket deployed at {m.address} (p = {cfg.p:.2%}, S = {cfg.slash_amount} wei); "
                f"export DSPERSE_MARKET={m.address}")  # fmt: skip


def cmd_register_model(a) -> int:
    from dsperse.sampling.market import Requester, suffix_mask

    mask, part = 0, b"\0" * 32
    if a.always_proven_from is not None:
        if not a.part_model:
            raise MarketUsageError("--always-proven-from needs --part-model (the sub-model's registry id)")
        mask, part = suffix_mask(a.slices, a.always_proven_from), _bytes32(a.part_model)
    rc = Requester(_market(a), _key(a)).register_model(_bytes32(a.model_id), a.slices, mask, part)
    return _out(a, {"model_id": _bytes32(a.model_id), "mask": mask}, f"model 0x{_bytes32(a.model_id).hex()} registered ({_tx_summary(rc)})")


def cmd_stake(a) -> int:
    from dsperse.sampling.market import Operator

    op = Operator(_market(a), _key(a))
    rc = op.stake(a.amount)
    st = op.state()
    return _out(a, {"operator": op.address, "stake": st.stake}, f"{op.address} now stakes {st.stake} wei ({_tx_summary(rc)})")


def cmd_offer(a) -> int:
    from dsperse.sampling.market import Operator

    op = Operator(_market(a), _key(a))
    model = _bytes32(a.model_id)
    rc = op.offer(model, a.min_fee, a.capacity)
    fee, cap, open_ = op.market.offer(op.address, model)
    what = f"serves model 0x{model.hex()} from {fee} wei, {cap} open jobs at most" if cap else f"no longer serves model 0x{model.hex()}"
    return _out(a, {"operator": op.address, "min_fee": fee, "capacity": cap, "open": open_}, f"{op.address} {what} ({_tx_summary(rc)})")


def cmd_post_job(a) -> int:
    from dsperse.sampling.market import Requester, input_commitment

    ih = _bytes32(a.input_hash) if a.input_hash else input_commitment(Path(a.input_file).read_bytes())
    secret = _bytes32(a.secret) if a.secret else None
    req = Requester(_market(a), _key(a))
    jid, rc = req.post_job(_bytes32(a.model_id), ih, a.operator, a.fee, secret)
    secret = req.secrets[jid]
    return _out(a, {"job_id": jid, "input_hash": ih, "secret": secret},
                f"job 0x{jid.hex()} posted to {a.operator} ({_tx_summary(rc)})\n"
                f"audit secret 0x{secret.hex()}: keep it, then `dsperse market reveal` after the commitment")  # fmt: skip


def cmd_reveal(a) -> int:
    from dsperse.sampling.market import Requester

    sampled, rc = Requester(_market(a), _key(a)).reveal_seed(_bytes32(a.job_id), _bytes32(a.secret))
    return _out(a, {"sampled": sampled}, ("AUDITED: a proof is due" if sampled else "not sampled") + f" ({_tx_summary(rc)})")


def cmd_reveal_output(a) -> int:
    from dsperse.sampling.market import Operator

    rc = Operator(_market(a), _key(a)).reveal_output(_bytes32(a.job_id), a.outputs)
    return _out(a, {"revealed": True}, f"outputs revealed ({_tx_summary(rc)})")


def cmd_validator(a) -> int:
    from dsperse.sampling.market import Validator

    v = Validator(_market(a), _key(a))
    if a.action == "stake":
        if a.amount is None:
            raise MarketUsageError("validator stake needs an AMOUNT, e.g. 2ether")
        rc = v.stake(a.amount)
    elif a.action == "leave":
        rc = v.leave()
    elif a.action == "remove":
        if not a.address:
            raise MarketUsageError("validator remove needs --address (the owner removes a validator)")
        rc = v.market.remove_validator(v.key, a.address)
    else:
        rc = v.withdraw_stake()
    st = v.market.validator(a.address or v.address)
    return _out(a, {"validator": a.address or v.address, "stake": st.stake, "active": st.active, "open_verdicts": st.open_verdicts},
                f"validator {a.action}: stake {st.stake} wei, active {st.active} ({_tx_summary(rc)})")  # fmt: skip


def _out_hash(a) -> bytes:
    from dsperse.sampling.market import output_hash

    if a.outputs is not None:
        return output_hash(a.outputs)
    if a.output_hash:
        return _bytes32(a.output_hash)
    raise MarketUsageError("give --outputs 1,2,3 (quantized outputs) or --output-hash 0x...")


def cmd_commit(a) -> int:
    from dsperse.sampling.market import Operator

    h = _out_hash(a)
    rc = Operator(_market(a), _key(a)).commit(_bytes32(a.job_id), h)
    return _out(a, {"output_hash": h}, f"output 0x{h.hex()} committed ({_tx_summary(rc)})")


def cmd_decline(a) -> int:
    from dsperse.sampling.market import Operator

    rc = Operator(_market(a), _key(a)).decline(_bytes32(a.job_id))
    return _out(a, {"declined": True}, f"job declined, fee credited back to the requester ({_tx_summary(rc)})")


def cmd_draw(a) -> int:
    from dsperse.sampling.market import Role

    sampled, rc = Role(_market(a), _key(a)).draw_audit(_bytes32(a.job_id))
    return _out(a, {"sampled": sampled}, ("AUDITED: a proof is due" if sampled else "not sampled") + f" ({_tx_summary(rc)})")


def cmd_challenge(a) -> int:
    from dsperse.sampling.market import Challenger

    rc = Challenger(_market(a), _key(a)).challenge(_bytes32(a.job_id), a.bond)
    return _out(a, {"challenged": True}, f"challenged with a {a.bond} wei bond ({_tx_summary(rc)})")


def cmd_prove(a) -> int:
    from dsperse.sampling.market import Role

    m = _market(a)
    jid = _bytes32(a.job_id)
    rid = _bytes32(a.receipt_id) if a.receipt_id else jid
    rc = Role(m, _key(a)).prove_with_receipt(jid, rid)
    status = m.job(jid).status.name
    return _out(a, {"status": status}, f"receipt 0x{rid.hex()} decided the audit: job {status} ({_tx_summary(rc)})")


def cmd_prove_part(a) -> int:
    from dsperse.sampling.market import Role

    rc = Role(_market(a), _key(a)).prove_part(_bytes32(a.job_id), _bytes32(a.receipt_id))
    return _out(a, {"part_proven": True}, f"always-proven part shown ({_tx_summary(rc)})")


def cmd_verdict(a) -> int:
    from dsperse.sampling.market import Validator

    m = _market(a)
    rc = Validator(m, _key(a)).submit_verdict(_bytes32(a.job_id), _out_hash(a))
    return _out(a, {"status": m.job(_bytes32(a.job_id)).status.name}, f"verdict submitted ({_tx_summary(rc)})")


def cmd_settle(a) -> int:
    from dsperse.sampling.market import Role

    m = _market(a)
    jid = _bytes32(a.job_id)
    rc = Role(m, _key(a)).settle(jid)
    slashed = m.events(rc, "Slashed")
    text = f"job {m.job(jid).status.name}" + (f": {slashed[0]['reason']}" if slashed else "")
    return _out(a, {"status": m.job(jid).status.name, "slashed": [dict(s) for s in slashed]}, f"{text} ({_tx_summary(rc)})")


def cmd_unstake(a) -> int:
    from dsperse.sampling.market import Operator

    op = Operator(_market(a), _key(a))
    rc = op.request_unstake()
    return _out(a, {"withdrawable_at": op.state().unstake_at}, f"unstake requested; withdraw-stake from block {op.state().unstake_at} ({_tx_summary(rc)})")


def cmd_withdraw_stake(a) -> int:
    from dsperse.sampling.market import Operator

    rc = Operator(_market(a), _key(a)).withdraw_stake()
    return _out(a, {"withdrawn": True}, f"stake withdrawn ({_tx_summary(rc)})")


def cmd_withdraw(a) -> int:
    from dsperse.sampling.market import Role

    r = Role(_market(a), _key(a))
    amount = r.credit
    rc = r.withdraw_credit()
    return _out(a, {"amount": amount}, f"withdrew {amount} wei ({_tx_summary(rc)})")


def cmd_show(a) -> int:
    import dataclasses

    m = _market(a)
    if a.job_id:
        d = dataclasses.asdict(m.job(_bytes32(a.job_id)))
        d["status"] = d["status"].name
    elif a.operator:
        d = dataclasses.asdict(m.operator(a.operator)) | {"credit": m.credit(a.operator)}
    else:
        d = dataclasses.asdict(m.config()) | m.totals()
    fmt = {k: ("0x" + v.hex() if isinstance(v, bytes) else v) for k, v in d.items()}
    return _out(a, fmt, "\n".join(f"{k}: {v}" for k, v in fmt.items()))


def cmd_economics(a) -> int:
    from dsperse.sampling.economics import Economics, expected_profit, min_audit_probability, min_slash

    p = a.audit_probability
    p_star = min_audit_probability(a.fee, a.slash, a.cheat_gain, a.collusion, a.proof_cost)
    e = Economics(a.fee, a.slash, a.cheat_gain, a.collusion, proof_cost=a.proof_cost)
    rows = {s: expected_profit(s, p, e, q=a.mixed_cheat_rate) for s in ("honest", "cheat", "mixed", "collude")} if p is not None else {}
    text = [f"p* = C / ((1 - r)(R + S) - proof_cost) = {p_star:.6g}" + ("  (unreachable: raise S)" if p_star > 1 else "")]
    if p is not None:
        text.append(f"at p = {p}: expected profit per job " + ", ".join(f"{k} {v:.6g}" for k, v in rows.items()))
        text.append(f"smallest S that deters at this p: {min_slash(p, a.fee, a.cheat_gain, a.collusion, a.proof_cost):.6g}")
    return _out(a, {"p_star": p_star, "profit": rows}, "\n".join(text))


def cmd_simulate(a) -> int:
    import ray

    from dsperse.sampling.economics import Economics
    from dsperse.sampling.simulation import SimConfig, plot_profit_vs_p, sweep

    e = Economics(a.fee, a.slash, a.cheat_gain, a.collusion, a.compute_cost, a.proof_cost)
    base = SimConfig(e, 0.0, n_operators=a.operators, jobs_per_operator=a.jobs, q=a.mixed_cheat_rate, seed=a.seed,
                     mix={"honest": a.honest, "cheat": a.cheat, "mixed": a.mixed, "collude": a.collude})  # fmt: skip
    started = not ray.is_initialized()
    if started:
        cluster = settings(a).prover.cluster  # --cluster: None or "local" starts a local one
        init = {"include_dashboard": False, "log_to_driver": False}
        if cluster == "auto":
            try:
                ray.init(address="auto", **init)
            except ConnectionError:
                ray.init(**init)
        else:
            ray.init(address=None if cluster in (None, "local") else cluster, **init)
    try:
        results = sweep(base, a.audit_probability)
    finally:
        if started:
            ray.shutdown()
    print(f"p* = {results[0].p_star:.4f}   ({a.operators} operators x {a.jobs} jobs per p)")
    print(f"{'p':>6} {'strategy':>8} {'detect':>8} {'caught':>7} {'profit/job':>11} {'expected':>9}")
    for r in results:
        for row in r.rows():
            print(f"{r.config.p:6.3f} {row['strategy']:>8} {row['detection_rate']:8.4f} {row['caught_share']:7.3f} "
                  f"{row['profit_per_job']:11.4f} {row['expected_profit_per_job']:9.4f}")  # fmt: skip
    if a.out:
        print(f"plot: {plot_profit_vs_p(results, a.out)}")
    return 0


# -- parser -------------------------------------------------------------------------------


def _chain_flags(q: argparse.ArgumentParser, market: bool = True) -> None:
    chain_options(q, deployments=False, market=market)  # --rpc, --private-key, --market: the same flags as submit's
    q.add_argument("--json", action="store_true", help="print one JSON object")


def _deploy_flags(q: argparse.ArgumentParser) -> None:
    """One flag per MarketConfig field: its name (or ``metadata["flag"]``), default and docstring."""
    from dsperse.config import field_docs
    from dsperse.sampling.market import ETHER, MarketConfig

    docs = field_docs(MarketConfig)
    for f in fields(MarketConfig):
        wei = f.metadata.get("wei", False)
        kind = parse_amount if wei else positive_int if f.metadata.get("min") == 1 else non_negative_int
        shown = f"{Decimal(f.default) / ETHER:f}".rstrip("0").rstrip(".") + "ether" if wei else f.default
        q.add_argument(f.metadata.get("flag", "--" + f.name.replace("_", "-")), dest=f.name, type=kind, default=f.default,
                       metavar="AMOUNT" if wei else "N", help=f"{docs[f.name]} (default {shown})")  # fmt: skip


def _job(q: argparse.ArgumentParser) -> None:
    q.add_argument("job_id", type=hex32, metavar="JOB_ID", help="0x + 64 hex digits, as printed by post-job")


def _outputs(q: argparse.ArgumentParser) -> None:
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--outputs", type=_ints, metavar="INTS", help="quantized outputs (e.g. the last slice's public outputs) 1,-2,3; hashed as ProofOfInference does")
    g.add_argument("--output-hash", metavar="HEX", help="keccak256(abi.encodePacked(int256[] outputs)), if already computed")


def add_subcommands(subparsers) -> None:
    """Add ``market`` (with deploy, stake, offer, post-job, commit, draw, challenge, prove, verdict, settle, ...)."""
    fmt = argparse.RawDescriptionHelpFormatter
    mk = subparsers.add_parser(
        "market", help="Proof-of-Sampling market: stake, post jobs, sampled audits, challenges, slashing",
        formatter_class=fmt, epilog=MARKET_EPILOG,
        description="Operators stake and serve inference jobs, committing output hashes. Each job is audited with "
        "probability p, drawn from a block hash that did not exist at commit time; anyone may challenge an unaudited job "
        "with a bond. An audited job must be proven (a ProofOfInference receipt, or a validator quorum re-executing it) "
        "before a deadline; a proven lie or a missed deadline slashes the operator's stake.",
    )  # fmt: skip
    sub = mk.add_subparsers(dest="market_command", metavar="STEP", required=True)

    def step(name, fn, help, *, model=False, job=False, outputs=False, market=True, **kw) -> argparse.ArgumentParser:  # noqa: A002
        """One market step: MODEL_ID (``model``) or JOB_ID (``job``) first, the output flags (``outputs``), the chain
        flags (--market unless ``market=False``) and --json."""
        q = sub.add_parser(name, help=help, **kw)
        if model:
            q.add_argument("model_id", metavar="MODEL_ID", help="64 hex digits (dsperse model id) or a name (keccak-hashed)")
        if job:
            _job(q)
        if outputs:
            _outputs(q)
        _chain_flags(q, market=market)
        q.set_defaults(fn=fn)
        return q

    d = step("deploy", cmd_deploy, "deploy a market", market=False, formatter_class=fmt, description="Deploy PoSPMarket. "
             "Pick p with `dsperse market economics`: honesty pays when p > C / ((1 - r)(R + S)).")
    d.add_argument("--poi", type=address, metavar="ADDRESS", required=True, help="ProofOfInference registry: only its models take jobs")
    _deploy_flags(d)
    d.add_argument("--validator", action="append", type=address, metavar="ADDRESS", help="admit a validator (repeatable); it must then stake")

    r = step("register-model", cmd_register_model, "registry registrant: give a model an always-proven suffix", model=True,
             description=
             "Models registered in ProofOfInference take jobs as they are. Their registry registrant may mark "
             "slices FROM..last as always proven (targeted verification): the part model must run exactly "
             "those slices' verifier code; every unsampled job then needs its receipt, with the committed output.")
    r.add_argument("--slices", type=positive_int, required=True, help="number of slices of the model")
    r.add_argument("--always-proven-from", type=non_negative_int, metavar="I", help="slices I..last are proven for every job")
    r.add_argument("--part-model", metavar="ID", help="registry model id of the sub-model made of those slices")

    step("stake", cmd_stake, "stake (or top up) as an operator").add_argument("amount", type=parse_amount, help="e.g. 2ether")

    o = step("offer", cmd_offer, "opt in to serve a model: price and capacity", model=True, description=
             "Requesters can only post a model's jobs to operators that offer it, at or above MIN_FEE, while "
             "fewer than CAPACITY of them are open. --capacity 0 stops new jobs.")
    o.add_argument("--min-fee", type=parse_amount, required=True, help="lowest fee accepted per job, e.g. 0.01ether")
    o.add_argument("--capacity", type=non_negative_int, default=10, help="most open jobs of this model at once (default 10; 0 stops)")

    pj = step("post-job", cmd_post_job, "post a job to an operator, paying its fee", model=True, description=
              "The requester picks the operator. The input itself goes to the operator off chain; "
              "the chain only holds its commitment.")
    g = pj.add_mutually_exclusive_group(required=True)
    g.add_argument("--input-hash", metavar="HEX", help="input commitment (for receipts: keccak of slice 0's input felts)")
    g.add_argument("--input-file", type=Path, help="hash this file's bytes as the commitment")
    pj.add_argument("--operator", required=True, type=address, metavar="ADDRESS", help="the operator that serves the job (it must offer the model)")
    pj.add_argument("--fee", type=parse_amount, required=True, help="paid to the operator when the job settles")
    pj.add_argument("--secret", type=hex32, metavar="HEX", help="32-byte audit secret to commit to (default: a fresh random one, printed)")

    step("reveal", cmd_reveal, "requester: reveal the audit secret (draws the audit)", job=True, description=
         "From audit-delay blocks after the commitment until the challenge window closes. The draw mixes "
         "the secret with the hash of the commitment's block: neither side alone can steer it.",
         ).add_argument("--secret", required=True, type=hex32, metavar="HEX", help="as printed by post-job")
    step("reveal-output", cmd_reveal_output, "operator: publish the committed outputs (hash-checked); needed to be paid",
         job=True).add_argument("--outputs", type=_ints, required=True, metavar="INTS",
                                help="the quantized outputs committed to, e.g. 240,-578,517")
    step("commit", cmd_commit, "operator: commit the job's output hash before the commit deadline", job=True, outputs=True)
    step("decline", cmd_decline, "operator: refuse a job before committing (input never arrived); no slash", job=True)
    step("draw", cmd_draw, "draw without the secret: p = 0 or 100%%, or after the reveal window (audits); anyone may", job=True)
    step("challenge", cmd_challenge, "force an audit of an unsampled job by posting a bond", job=True,
         description="Won: bond back plus the reporter share of the slash. Lost: the bond goes to the operator.",
         ).add_argument("--bond", type=parse_amount, required=True, help="challenge bond, at least the market's minimum, e.g. 0.1ether")
    step("prove", cmd_prove, "decide an audit with a ProofOfInference receipt", job=True, description=
         "Any receipt for the job's model and input decides it (the model is deterministic), "
         "so a receipt stored under another id may be named with --receipt-id.",
         ).add_argument("--receipt-id", metavar="HEX", help="the registry's receipt id (dsperse submit prints it; default: JOB_ID)")
    step("prove-part", cmd_prove_part, "targeted verification: show the always-proven part's receipt", job=True,
         ).add_argument("--receipt-id", required=True, metavar="HEX", help="the registry's receipt id of the always-proven part")
    step("verdict", cmd_verdict, "validator: submit the output hash of your re-execution", job=True, outputs=True)

    va = step("validator", cmd_validator, "validator stake, leave, withdraw; the owner's remove", description=
              "An admitted validator stakes S per verdict it may have open; a verdict a receipt contradicts "
              "is slashed. After leaving (or removal) the stake comes back once its verdicts' jobs closed.")
    va.add_argument("action", choices=["stake", "leave", "withdraw", "remove"], help="stake AMOUNT, leave, withdraw "
                    "(the stake, once its verdicts' jobs closed), or remove --address (the owner)")
    va.add_argument("amount", nargs="?", type=parse_amount, help="for stake, e.g. 2ether")
    va.add_argument("--address", type=address, metavar="ADDRESS", help="for remove: the validator the owner removes")

    step("settle", cmd_settle, "pay a finished job or slash a missed deadline; anyone may", job=True)
    step("unstake", cmd_unstake, "operator: step 1 of leaving (refused while jobs or audits are open)")
    step("withdraw-stake", cmd_withdraw_stake, "operator: step 2, after the unstake delay")
    step("withdraw", cmd_withdraw, "pull the wei credited to you (fees, refunds, bonds, rewards)")

    sh = step("show", cmd_show, "a job, an operator, or the market's config and books")
    sh.add_argument("job_id", nargs="?", type=hex32, metavar="JOB_ID", help="show this job (0x + 64 hex)")
    sh.add_argument("--operator", type=address, metavar="ADDRESS", help="show this operator's stake, jobs and credit")


    def econ_flags(q):  # the model's letters (R, S, C, r, q) are named in each help; units are any one currency
        q.add_argument("--fee", type=non_negative, required=True, metavar="R", help="R: fee paid per honest job")
        q.add_argument("--slash", type=non_negative, required=True, metavar="S", help="S: stake slashed per proven lie "
                       "(in --fee's unit; `deploy --slash` is the same S in wei)")
        q.add_argument("--cheat-gain", type=non_negative, required=True, metavar="C", help="C: cost a cheater saves per job")
        q.add_argument("--collusion", type=probability("colluding share r"), default=0.0, metavar="r",
                       help="r: colluding share, the chance an audit is judged by accomplices, in [0, 1] (default 0)")
        q.add_argument("--proof-cost", type=non_negative, default=0.0, help="what an honest operator spends proving an "
                       "audited job (default 0)")
        q.add_argument("--mixed-cheat-rate", type=probability("cheat probability q"), default=0.3, metavar="q",
                       help="q: how often the 'mixed' strategy cheats, in [0, 1] (default 0.3)")

    e = sub.add_parser("economics", help="the audit probability that makes honesty pay", formatter_class=fmt,
                       description="A cheat saves C and is caught with probability p (1 - r), losing the fee R and the "
                       "slash S. Honesty strictly dominates when p > p* = C / ((1 - r)(R + S) - proof_cost).",
                       epilog="example: dsperse market economics --fee 0.01 --slash 1 --cheat-gain 0.008 --audit-probability 0.01")
    econ_flags(e)
    e.add_argument("--audit-probability", type=probability("audit probability p"), metavar="p",
                   help="p: also show expected profits at this audit probability")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(fn=cmd_economics)

    sm = sub.add_parser("simulate", help="Ray simulation: many operators, a share of cheaters, profit vs p plot",
                        description="Simulate OPERATORS operators x JOBS jobs at each p (Ray tasks, vectorised numpy, seeded) "
                        "and print detection rate and profit per strategy; --out writes posp_profit_vs_p.png.")
    econ_flags(sm)
    sm.add_argument("--compute-cost", type=non_negative, default=0.0, metavar="K", help="K: honest compute cost per job (default 0)")
    sm.add_argument("--audit-probability", type=probability("audit probability p"), nargs="+", metavar="p",
                    default=[0.0, 0.01, 0.02, 0.05, 0.1, 0.2], help="p: the audit probabilities swept (default 0 .01 .02 .05 .1 .2)")
    sm.add_argument("--operators", type=positive_int, default=1000, help="operators simulated per p (default 1000)")
    sm.add_argument("--jobs", type=positive_int, default=200, help="jobs per operator (default 200)")
    sm.add_argument("--honest", type=probability("share of honest operators"), default=0.7, help="share of honest operators")
    sm.add_argument("--cheat", type=probability("share of cheaters"), default=0.1, help="share of operators that always cheat (default 0.1)")
    sm.add_argument("--mixed", type=probability("share of mixed operators"), default=0.1, help="share that cheats with "
                    "probability --mixed-cheat-rate (default 0.1)")
    sm.add_argument("--collude", type=probability("share of colluders"), default=0.1, help="share that cheats and "
                    "colludes with validators (default 0.1)")
    sm.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    sm.add_argument("--out", type=Path, help="directory for the PNG plot")
    prover_options(sm, ("cluster",))  # the Ray cluster the simulation tasks run on (default: a new local one)
    sm.set_defaults(fn=cmd_simulate)


def main(argv: list[str] | None = None) -> int:
    from dsperse.cli import Parser, parse, run_command

    p = Parser(prog="python -m dsperse.sampling.cli")
    add_subcommands(p.add_subparsers(dest="command", required=True))
    a = parse(p, argv)
    return a if isinstance(a, int) else run_command(a)


if __name__ == "__main__":
    sys.exit(main())
