"""Coding text answers against a codebook (contract §6): codings, consensus, outcomes."""
