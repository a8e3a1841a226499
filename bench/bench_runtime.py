"""Runtime-signal baselines: precision and recall of the Monitor's anomaly alerts on generated
daily series with known anomalies.

``python -m bench.bench_runtime [--series 300] [--seed 5]``

Three kinds of series, as ``runtime_series`` hands them to the detector (60–120 days each):

- **errors**: failures per day — Poisson counts with a low rate (0.2–30 a day);
- **api**: API requests per day — 2,000–60,000 with a weekly rhythm (weekends at 30–60%) and
  5% noise, proportional to the day's level;
- **async**: async Apex jobs per day — Poisson around 50–2,000 with a milder weekly rhythm
  (weekends at 60–85%).

Anomalies (0–3 per series, ≥ 20 days apart, ~15% of series have none): a one-day spike or
drop, or a level shift (a trigger that starts failing every day, an integration that doubles
its calls), 6–12 σ of the day-to-day noise (scaled by the weekly rhythm for volumes) and, for
failures, at least +5. A detection within
one day of an injected anomaly is a true positive. The detector is causal (each day is judged
against the days before it), so the first detection of an anomaly is when the Monitor, running
daily, alerts on it. Reported with and without the day-of-week adjustment.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date, timedelta

import numpy as np

from aicolleague_pipelines.lib.agents.anomaly import evaluate_detector
from aicolleague_pipelines.lib.agents.runtime import weekly_adjusted

KINDS = ("errors", "api", "async")


def make_runtime_batch(n: int = 300, seed: int = 5) -> list[tuple[list[tuple[str, float]], list[int], str]]:
    """``n`` (series, anomaly indexes, kind) triples (see the module docstring)."""
    rng = np.random.default_rng(seed)
    start = date(2026, 1, 5)
    out = []
    for i in range(n):
        kind = KINDS[i % 3]
        length = int(rng.integers(60, 121))
        days = [start + timedelta(days=k) for k in range(length)]
        weekday = np.array([d.weekday() for d in days])
        if kind == "errors":
            lam = float(rng.choice([rng.uniform(0.2, 3), rng.uniform(3, 30)]))
            base = np.full(length, lam)
            sigma = max(1.0, float(np.sqrt(lam)))
        elif kind == "api":
            level = float(rng.uniform(2000, 60000))
            weekend = float(rng.uniform(0.3, 0.6))
            base = level * np.where(weekday >= 5, weekend, 1.0)
            sigma = 0.05 * level
        else:
            level = float(rng.uniform(50, 2000))
            base = level * np.where(weekday >= 5, float(rng.uniform(0.6, 0.85)), 1.0)
            sigma = float(np.sqrt(level))
        truth: list[int] = []
        effect = np.zeros(length)
        if rng.random() >= 0.15:
            t = int(rng.integers(30, 40))
            while t < length - 3 and len(truth) < 3:
                mag = float(rng.uniform(6, 12)) * sigma
                if kind == "errors":
                    mag = max(mag, 5.0)  # failures only go up; a handful more is the least that matters
                elif rng.random() < 0.4:
                    mag = -min(mag, 0.8 * level)
                if rng.random() < 0.5:
                    effect[t] += mag
                else:
                    effect[t:] += mag
                truth.append(t)
                t += int(rng.integers(20, 30))
        if kind == "errors":
            x = rng.poisson(base) + np.round(effect)
        else:
            # Volumes move with the weekly rhythm: noise and anomalies scale with the day's level.
            rhythm = base / level
            noise = rng.normal(0, sigma, length) * rhythm if kind == "api" else rng.poisson(base) - base
            x = np.round(base + noise + effect * rhythm)
        x = np.maximum(x, 0)
        out.append(([(d.isoformat(), float(v)) for d, v in zip(days, x)], truth, kind))
    return out


def evaluate(batch, *, adjust: bool = True) -> dict:
    """Precision / recall (overall and per kind) of the detector on the batch, with or without
    the day-of-week adjustment the Monitor applies."""
    cases = {k: [((weekly_adjusted(s) if adjust else s), t) for s, t, kind in batch if kind == k] for k in KINDS}
    out = {"all": evaluate_detector([c for k in KINDS for c in cases[k]])}
    out.update({k: evaluate_detector(cases[k]) for k in KINDS})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=300)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    started = time.perf_counter()
    batch = make_runtime_batch(args.series, args.seed)
    with_adj = evaluate(batch, adjust=True)
    without = evaluate(batch, adjust=False)
    if args.json:
        print(json.dumps({"adjusted": with_adj, "raw": without}))
        return
    print(f"runtime anomaly alerts: {args.series} generated series (seed {args.seed}), "
          f"{time.perf_counter() - started:.1f}s")
    print(f"{'series':<10} {'day-of-week adjusted':>26} {'raw':>26}")
    for k in ("all", *KINDS):
        a, r = with_adj[k], without[k]
        print(f"{k:<10} precision {a['precision']:.3f} recall {a['recall']:.3f}   "
              f"precision {r['precision']:.3f} recall {r['recall']:.3f}   "
              f"({a['injected']} injected, {a['false_positives']} false alarms adjusted, "
              f"{r['false_positives']} raw)")


if __name__ == "__main__":
    main()
