"""Plumbing: atomic writes, content hashes, progress bars."""
