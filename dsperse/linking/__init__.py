"""Linking: where each committed tensor sits in a proof, the links between slices, receipts and verification."""
