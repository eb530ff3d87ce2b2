"""Proving: witnesses in slice order, slice proofs on a backend (in-process or Ray), resumable run directories."""
