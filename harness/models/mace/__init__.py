"""MACE, the model family the harness ships an adapter for; the only package that imports mace."""
