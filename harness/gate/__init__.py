"""The gate: one run of one suite, the check kinds, their outcomes and the fragile rule, baselines.

The run computes the reference, model outputs, descriptors and surrogates once and caches them.
"""
