"""The proof system behind every circuit, witness and proof (EZKL today)."""
