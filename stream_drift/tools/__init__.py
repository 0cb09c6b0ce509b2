"""Tools around the product: demo, report, embedded broker, supervisor, dataset readers.

Nothing in the product imports this package; only ``stream_drift.cli`` does.
"""
