"""Reproducible benchmarks of :mod:`stream_drift.stats`, printed as Markdown tables.

- ``python -m bench.stats``: what ingest and evaluation cost (ns per event, µs per
  evaluation, binned KS against ``scipy.stats.ks_2samp`` on raw values).
- ``python -m bench.detection``: how well the decision rules work (false alarms per 1,000
  windows with no drift, detection delay after a change), seeded, with targets marked
  PASS/FAIL.

Both take ``--quick`` (a few seconds, used by the smoke test) and ``--json``.
"""
