"""Ray job entrypoints. ``python -m pipelines.prove --help``; specs for them live in ``pipelines/specs/``."""
