"""Fixit 2 rules used by benchmarks/compare.py as the LibCST-based baseline (not part of elbolint)."""
