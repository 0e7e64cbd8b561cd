"""`mlff-harness sweep`: gate many checkpoints with one suite on Dask (plan, task, run)."""
