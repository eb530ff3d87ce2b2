"""Pure logic: split links, accumulator declaration, instance layout of the receipt, Ray options."""
from __future__ import annotations

import dataclasses

import pytest

from dsperse.aggregation import proofs as P, receipt as R, ray_task as RT
from dsperse.aggregation.planning import estimate
from dsperse.artifacts import AggregateProof, AggregationKeys, AggregationStep, Run, RunAggregate
from dsperse.errors import AggregationError
from dsperse.util import storage


def _proof(split=None, n_inst=3, acc=()):
    return {"protocol": {"num_instance": [n_inst], "accumulator_indices": list(acc)}, "instances": [["00" * 32] * n_inst],
            "transcript_type": "Poseidon", "split": split}


def test_link_splits_points_each_proof_at_the_previous_output():
    # slice 0: public input, output commitment is witness 0; slice 1: input 0, output 1; slice 2: public output
    chain = [_proof({"start": 0, "end": 1}), _proof({"start": 1, "end": 2}), _proof(None)]
    linked = P.link_splits(chain)
    assert [c["split"] for c in linked] == [{"start": 0, "end": 1}, {"start": 0, "end": 1}, {"start": 1, "end": 2}]
    assert chain[2]["split"] is None  # inputs untouched
    assert P.link_splits([_proof(None)])[0]["split"] == {"start": 0, "end": 0}


def test_link_splits_refuses_a_boundary_without_commitment():
    with pytest.raises(AggregationError, match="no polycommit output"):
        P.link_splits([_proof(None), _proof(None)])


def test_declare_accumulator_marks_sixteen_limbs():
    d = P.declare_accumulator(_proof(n_inst=20))
    assert d["protocol"]["accumulator_indices"] == [[[0, j] for j in range(16)]]
    with pytest.raises(AggregationError):
        P.declare_accumulator(_proof(n_inst=3))


def test_structure_digest_ignores_values_but_not_shape():
    a, b = _proof({"start": 0, "end": 1}), _proof({"start": 0, "end": 1})
    b["instances"] = [["01" + "00" * 31] * 3]
    assert P.structure_digest([a], split_proofs=True) == P.structure_digest([b], split_proofs=True)
    assert P.structure_digest([a], split_proofs=True) != P.structure_digest([_proof(n_inst=4)], split_proofs=True)


def test_check_inner_wants_poseidon_transcripts(tmp_path):
    with pytest.raises(AggregationError, match="Poseidon"):
        P.check_inner([P.ProofInfo(tmp_path / "p.json", "EVM", 3, None, False)])


def test_leaf_offsets_single_level_and_tree():
    offs, total = R.leaf_offsets([5, 0, 4], [[[0, 1, 2]]])
    assert offs == [16, 21, 21] and total == 25
    # two groups (0,1) and (2,), then a root over both
    offs, total = R.leaf_offsets([5, 1, 4], [[[0, 1], [2]], [[0, 1]]])
    assert offs == [32, 37, 16 + 22 + 16] and total == 16 + 22 + 20


def test_layout_binds_input_output_and_hashed_links():
    slices = [R.SliceIO(5, "public", "hashed", 4, 0), R.SliceIO(4, "hashed", "public", 0, 3)]
    sample = [[1, 2, 3, 4, 99], [99, 7, 8, 9]]
    lay = R.layout(slices, [[[0], [1]], [[0, 1]]], sample)
    # root: 16 | agg0: 16 | slice0 (5) | agg1: 16 | slice1 (4)
    assert lay.num_instances == 16 + 21 + 20
    assert (lay.input_start, lay.num_inputs) == (32, 4)
    assert (lay.output_start, lay.num_outputs) == (16 + 21 + 16 + 1, 3)
    assert lay.links == ((32 + 4, 16 + 21 + 16),)
    with pytest.raises(AggregationError, match="hashes differ"):
        R.layout(slices, [[[0], [1]], [[0, 1]]], [[1, 2, 3, 4, 98], [99, 7, 8, 9]])


def test_layout_needs_public_model_io():
    with pytest.raises(AggregationError, match="public"):
        R.layout([R.SliceIO(1, "hashed", "public", 0, 1)], [[[0]]])


def test_ray_options_reserve_memory_and_the_aggregator_resource():
    est = estimate(1)
    nodes = [RT.NodeMemory("a", 10e9, False), RT.NodeMemory("b", 30e9, True)]
    opts = RT.task_options(est, nodes)
    assert opts["memory"] == int(est.peak_bytes) and opts["resources"] == {"aggregator": 1}
    assert RT.task_options(est, [RT.NodeMemory("a", 30e9, False)]).get("resources") is None
    with pytest.raises(AggregationError, match="largest aggregator node offers 10.0 GB"):
        RT.task_options(est, [RT.NodeMemory("a", 50e9, False), RT.NodeMemory("b", 10e9, True)])


def test_nodes_from_ray_reads_alive_nodes():
    raw = [{"NodeID": "x", "Alive": True, "Resources": {"memory": 5e9, "aggregator": 1.0}},
           {"NodeID": "y", "Alive": False, "Resources": {"memory": 9e9}}]
    assert RT.nodes_from_ray(raw) == [RT.NodeMemory("x", 5e9, True)]


def test_a_run_without_aggregate_is_refused(mlp_run):
    with pytest.raises(AggregationError, match="no aggregate"):
        R.run_layout(mlp_run)
    with pytest.raises(AggregationError, match="no aggregate"):
        R.run_keys(mlp_run)


def _stand_in_aggregate(run: Run, work) -> RunAggregate:
    """A one-step aggregate record over ``run``'s slices whose proof file is a stand-in EVM-transcript proof
    (a real aggregate needs ~20 GB): its instances are 16 limbs, then every slice proof's instances."""
    proofs = [p.path for p in sorted(run.proofs, key=lambda p: p.slice_index)]
    inner = [f for p in proofs for col in P.load(p)["instances"] for f in col]
    path = storage.write_json(work / "aggregate" / "aggr_l0_0.json",
                              {"transcript_type": "EVM", "hex_proof": "0x" + "ab" * 64, "instances": [["00" * 32] * 16 + inner]})  # fmt: skip
    keys = AggregationKeys("a1" * 32, work / "vk.key", work / "pk.key", work / "srs", 22, True, len(proofs), 16 + len(inner),
                           seconds=300.0)  # fmt: skip
    proof = AggregateProof(path, storage.sha256_file(path), keys.key_id, 22, "evm", len(proofs), keys.n_instances, 400.5)
    return RunAggregate(AggregationStep(proof, keys, 0, 0, tuple(proofs)), [[list(range(len(proofs)))]], "the plan")


def test_an_aggregate_record_round_trips_through_run_json_and_feeds_the_receipt(mlp_run, tmp_path):
    agg = _stand_in_aggregate(mlp_run, tmp_path)
    dataclasses.replace(mlp_run, workdir=tmp_path, aggregate=agg).save()
    run = Run.load(tmp_path)
    assert run.aggregate == agg and run.aggregate.levels == (((0, 1, 2),),) and run.aggregate.path == agg.proof.path
    # run.json keeps the dict older dsperse wrote and read, plus the step's place in the tree
    d = storage.read_json(tmp_path / Run.FILE)["aggregate"]
    assert d["proof"] == str(agg.path) and d["levels"] == [[[0, 1, 2]]] and d["plan"] == "the plan"
    assert d["root"]["logrows"] == 22 and d["root"]["keys"]["vk"] == str(tmp_path / "vk.key") and d["root"]["level"] == 0
    # the receipt readers take the typed record
    assert R.run_keys(run) == agg.keys
    lay = R.run_layout(run)
    assert lay.num_instances == agg.keys.n_instances and lay.links == ()
    sub = R.submission_for_run(run, "0x" + "11" * 32, job_id="agg-job")
    assert sub.proof == "0x" + "ab" * 64 and len(sub.instances) == lay.num_instances


def test_a_run_json_written_before_typed_aggregates_still_loads(mlp_run, tmp_path):
    agg = _stand_in_aggregate(mlp_run, tmp_path)
    dataclasses.replace(mlp_run, workdir=tmp_path, aggregate=agg).save()
    data = storage.read_json(tmp_path / Run.FILE)
    root = {**dataclasses.asdict(agg.proof), "path": str(agg.path),  # what ray_task.run_step returned as a dict
            "keys": {k: str(v) if isinstance(v, type(tmp_path)) else v for k, v in dataclasses.asdict(agg.keys).items()}}
    data["aggregate"] = {"proof": str(agg.path), "root": root, "levels": [[[0, 1, 2]]], "plan": "the plan"}
    storage.write_json(tmp_path / Run.FILE, data)
    old = Run.load(tmp_path).aggregate
    assert old == dataclasses.replace(agg, root=dataclasses.replace(agg.root, inputs=()))  # inputs were not recorded
    assert R.run_keys(Run.load(tmp_path)).vk == tmp_path / "vk.key"
    data["aggregate"] = None
    storage.write_json(tmp_path / Run.FILE, data)
    assert Run.load(tmp_path).aggregate is None


def test_felts_hash_matches_the_contracts_input_hash():
    # the requester pins keccak(abi.encodePacked(uint256[] x)); x as EZKL little-endian hex felts
    felts = [(5).to_bytes(32, "little").hex(), (7).to_bytes(32, "little").hex()]
    lay = R.ReceiptLayout(20, 16, 2, 18, 2, ())
    assert R.felts_hash(felts) == R.input_hash([0] * 16 + [5, 7, 1, 1], lay)
