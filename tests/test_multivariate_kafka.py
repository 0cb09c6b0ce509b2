"""End to end on the embedded broker: a joint shift that no single feature shows (the
correlation of two features flips, their distributions stay) is caught by the domain
classifier of a worker; the same stream without the flip is not flagged."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from test_worker_kafka import (
    TUMBLING_60,
    deployed,
    make_settings,
    sample,
    scrape,
)

from stream_drift.pipeline.reference import build_reference
from stream_drift.tools.embedded import EmbeddedBroker
from stream_drift.tools.supervisor import WorkerProcess

pytestmark = pytest.mark.kafka

FLIP, STEADY = "mv-flip", "mv-steady"
RHO = 0.8


def _rows(rng: np.random.Generator, n: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
    x1 = rng.normal(0, 1, n)
    x2 = rho * x1 + np.sqrt(1 - rho**2) * rng.normal(0, 1, n)
    return x1, x2


def test_a_correlation_flip_is_flagged_and_a_steady_stream_is_not(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    app_id = f"sd-mv-{uuid.uuid4().hex[:8]}"
    settings = make_settings(kafka_broker.bootstrap_servers, tmp_path, app_id, TUMBLING_60)
    rng = np.random.default_rng(21)
    references = {}
    for model in (FLIP, STEADY):
        x1, x2 = _rows(rng, 20_000, RHO)
        references[model] = build_reference(
            {"x1": x1, "x2": x2}, model=model, model_version="3", sample_rows=1000
        )
    worker = WorkerProcess(settings, tmp_path, name="mv-worker")
    with deployed(settings, references, [worker]) as d:
        base = (time.time() // 60) * 60 - 600
        for model, rho in ((FLIP, -RHO), (STEADY, RHO)):
            x1, x2 = _rows(rng, 2000, rho)
            values = [
                json.dumps(
                    {
                        "model": model,
                        "model_version": "3",
                        "ts": base + 59.0 * i / len(x1),
                        "features": {"x1": float(a), "x2": float(b)},
                    }
                ).encode()
                for i, (a, b) in enumerate(zip(x1, x2, strict=True))
            ]
            d.send(model, values, prime=True)
        results = {m: d.wait_window_end(m, base + 60, timeout=120) for m in (FLIP, STEADY)}
        domain = {m: next(r["domain"] for r in rs if "domain" in r) for m, rs in results.items()}
        assert domain[FLIP]["auc"] > domain[FLIP]["threshold"], domain
        assert domain[STEADY]["auc"] <= domain[STEADY]["threshold"], domain
        assert set(domain[FLIP]["top_features"]) <= {"x1", "x2"}
        assert domain[FLIP]["n_rows"] >= 200
        # No single feature moved: the per-feature PSI verdicts stay quiet.
        flip = next(r for r in results[FLIP] if "domain" in r)
        assert flip["drifted"] == [], flip["drifted"]

        alerts = [v for _, v in d.alerts(FLIP)]
        multivariate = [a for a in alerts if a["category"] == "multivariate"]
        assert multivariate and multivariate[0]["status"] == "firing", alerts
        assert multivariate[0]["feature"] == "(all features)"
        assert "multivariate drift" in multivariate[0]["summary"]
        assert not [v for _, v in d.alerts(STEADY)]

        samples = scrape(worker)
        auc = sample(samples, "stream_drift_domain_auc", model=FLIP, model_version="3")
        threshold = sample(
            samples, "stream_drift_domain_auc_threshold", model=FLIP, model_version="3"
        )
        assert auc == pytest.approx(domain[FLIP]["auc"], abs=1e-6)
        assert threshold == pytest.approx(domain[FLIP]["threshold"], abs=1e-6)
