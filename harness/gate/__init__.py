"""The gate: one run of one suite (reference, model outputs, descriptors, surrogates computed once and cached), the check kinds, their outcomes and the fragile rule, baselines."""
