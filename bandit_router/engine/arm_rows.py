"""What a bucket's arms have learned, as the rows `/v1/arms` shows."""

from __future__ import annotations

import numpy as np

from bandit_router.core import posterior
from bandit_router.core.catalog import Catalog
from bandit_router.core.types import ArmKey, ArmReport
from bandit_router.engine.arms import BucketArms, F, Reading, quality_counts


def arm_reports(tenant: str, policy: str, bucket: str, table: BucketArms, reading: Reading,
                catalog: Catalog, judge_accuracy: float = 1.0) -> list[ArmReport]:
    ev = reading.evidence
    # the quality evidence as the posterior counts it (a noisy judge's scores at their worth)
    evidence = sum(quality_counts(ev, judge_accuracy))
    lo, hi = posterior.quality_interval(reading.alpha, reading.beta)
    in_n, out_n = ev[F["in_n"]], ev[F["out_n"]]
    # a damaged or extreme snapshot may overflow here; such a cost is reported as unknown
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        cost = catalog.cost(ev[F["in_sum"]] / in_n, ev[F["out_sum"]] / out_n)
    quality, latency = reading.quality_mean, reading.typical_latency_ms
    seen = len(table.recent)
    return [
        ArmReport(
            key=ArmKey(policy, bucket, name, tenant), quality_mean=float(quality[i]),
            quality_interval=(float(lo[i]), float(hi[i])),
            evidence=float(evidence[i]),
            latency_observations=float(ev[F["lat_n"], i]),
            mean_latency_ms=float(latency[i]),
            mean_cost_usd=float(cost[i]) if in_n[i] > 0 and out_n[i] > 0
            and np.isfinite(cost[i]) else None,
            share=float(table.counts[i] / seen) if seen else 0.0,
            recent_decisions=int(table.counts[i]))
        for i, name in enumerate(catalog.names)]
