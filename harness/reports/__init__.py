"""Reports from results documents.

The summary table and JSON, its schema, HTML and plots, per-atom exports, training history, comparisons of runs,
measure tables, paper tables, spread.
"""
