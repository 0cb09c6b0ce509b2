"""Regenerate the sample data sets in this folder (seeded, so the output never changes).

    python examples/make_sample_data.py

- ``train.csv``: 5,000 rows of a toy fraud model's training set.
- ``current_ok.csv``: 2,000 new rows from the same distribution (no drift).
- ``current_drift.csv``: 2,000 rows where ``amount`` shifted upwards (≈ +0.5σ on the log
  scale); ``score`` (the model's prediction) moves with it, since it is computed from
  ``amount``; every other column is unchanged.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
COUNTRIES = ["DE", "FR", "US", "GB", "ES", "IT"]
COUNTRY_P = [0.3, 0.2, 0.2, 0.15, 0.1, 0.05]


def rows(n: int, seed: int, amount_shift: float = 0.0) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(mean=3.0 + amount_shift, sigma=0.8, size=n)
    age = np.clip(rng.normal(40, 12, size=n), 18, 90).round()
    country = rng.choice(COUNTRIES, p=COUNTRY_P, size=n)
    device = rng.choice(["ios", "android", "web"], p=[0.4, 0.4, 0.2], size=n)
    score = 1 / (1 + np.exp(-(np.log(amount) - 3.0) * 1.5 + rng.normal(0, 1, size=n)))
    return [
        {
            "event_id": f"e{seed}-{i}",
            "amount": round(float(amount[i]), 2),
            "age": int(age[i]) if rng.random() > 0.02 else "",
            "country": country[i],
            "device": device[i],
            "score": round(float(score[i]), 4),
        }
        for i in range(n)
    ]


def write(path: Path, data: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)


if __name__ == "__main__":
    write(HERE / "train.csv", rows(5000, seed=1))
    write(HERE / "current_ok.csv", rows(2000, seed=2))
    write(HERE / "current_drift.csv", rows(2000, seed=3, amount_shift=0.4))
