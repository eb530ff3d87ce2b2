"""`dsperse market ...` end to end on anvil: deploy, stake, post, commit, draw, verdicts, settle, withdraw."""
from __future__ import annotations

import json

import pytest

from dsperse.sampling.cli import main, parse_amount
from dsperse.sampling.market import ETHER, mine, model_id_bytes


def run(capsys, *argv) -> dict:
    assert main(["market", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_runs_a_sampled_job_to_payment(chain, w3, keys, registry, capsys, monkeypatch):
    monkeypatch.setenv("DSPERSE_RPC", chain.url)
    addr = {n: a for n, (a, _) in zip(keys, chain.accounts)}
    owner = ["--private-key", keys["owner"]]
    vals = sum((["--validator", addr[v]] for v in ("v1", "v2")), [])
    registry.register(keys["requester"], model_id_bytes("my-model"), [1, 2])
    out = run(capsys, "deploy", "--poi", registry.address, "--audit-bps", "10000", "--audit-delay", "1", "--challenge-window", "5",
              "--proof-window", "4", *vals, "--rpc", chain.url, *owner)  # fmt: skip
    market = out["market"]
    monkeypatch.setenv("DSPERSE_MARKET", market)

    def as_(who, *argv):
        monkeypatch.setenv("DSPERSE_PRIVATE_KEY", keys[who])
        return run(capsys, *argv)

    as_("requester", "register-model", "my-model", "--slices", "2")
    assert as_("operator", "stake", "1.5ether")["stake"] == 3 * ETHER // 2
    assert as_("operator", "offer", "my-model", "--min-fee", "0.01ether", "--capacity", "4")["capacity"] == 4
    job = as_("requester", "post-job", "my-model", "--input-hash", "0x" + "11" * 32, "--operator", addr["operator"], "--fee", "0.01ether")["job_id"]
    as_("operator", "commit", job, "--outputs", "240,-578,517")
    as_("operator", "reveal-output", job, "--outputs", "240,-578,517")
    mine(w3, 2)
    assert as_("anyone", "draw", job)["sampled"] is True
    for v in ("v1", "v2"):
        assert as_(v, "validator", "stake", "2ether")["stake"] == 2 * ETHER
    as_("v1", "verdict", job, "--outputs", "240,-578,517")
    assert as_("v2", "verdict", job, "--outputs", "240,-578,517")["status"] == "AUDITED"  # decides at the deadline
    mine(w3, 4)
    assert as_("anyone", "settle", job)["status"] == "SETTLED"
    assert as_("operator", "withdraw")["amount"] == 10**16
    shown = as_("anyone", "show", job)
    assert shown["status"] == "SETTLED" and shown["operator"] == addr["operator"]
    assert as_("anyone", "show", "--operator", addr["operator"])["credit"] == 0


def test_cli_reports_reverts_and_usage_errors(chain, keys, registry, capsys):
    m = ["--rpc", chain.url, "--private-key", keys["owner"]]
    assert main(["market", "stake", "1ether", *m]) == 2  # no market given
    assert "pass --market ADDRESS" in capsys.readouterr().err
    assert main(["market", "deploy", "--poi", registry.address, "--audit-bps", "20000", *m]) == 2
    assert "auditBps > 10000" in capsys.readouterr().err
    assert main(["market", "deploy", "--poi", registry.address, "--reporter-share-bps", "10000", *m]) == 2
    assert "reporterShareBps > 5000" in capsys.readouterr().err
    assert parse_amount("0.5ether") == ETHER // 2 and parse_amount("30gwei") == 30 * 10**9 and parse_amount("7") == 7


def test_cli_economics_prints_threshold(capsys):
    out = run(capsys, "economics", "--fee", "1", "--slash", "10", "--cheat-gain", "0.5")
    assert abs(out["p_star"] - 0.5 / 11) < 1e-12


@pytest.mark.parametrize(
    ("flags", "says"), [(["--collusion", "2"], "colluding share r must be in [0, 1]"), (["--audit-probability", "1.5"], "audit probability p must be in [0, 1]")]
)
def test_cli_economics_bad_parameters_get_a_message_not_a_traceback(capsys, flags, says):
    assert main(["market", "economics", "--fee", "1", "--slash", "10", "--cheat-gain", "0.5", *flags]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_deploy_flags_are_market_config_fields():
    """`market deploy`'s flags are MarketConfig's fields: no flag means the dataclass default, amounts parse."""
    from dataclasses import fields

    from dsperse.cli import build_parser
    from dsperse.sampling.market import MarketConfig

    base = ["market", "deploy", "--poi", "0x" + "11" * 20]
    a = build_parser().parse_args(base)
    assert MarketConfig(**{f.name: getattr(a, f.name) for f in fields(MarketConfig)}) == MarketConfig()
    a = build_parser().parse_args([*base, "--slash", "0.5ether", "--bond", "30gwei", "--quorum", "0", "--audit-bps", "250"])
    assert (a.slash_amount, a.min_challenge_bond, a.validator_quorum, a.audit_bps) == (ETHER // 2, 30 * 10**9, 0, 250)
    for bad in (["--audit-delay", "0"], ["--commit-window", "0"], ["--min-stake", "lots"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args([*base, *bad])
