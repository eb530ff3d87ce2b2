"""Tools around the stages: the proof ledger, the model zoo, the demo."""
