"""Figures computed from runs: quality, cost, regret, traffic, settling, AIQ, APGR."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Trace:
    """One run: per step, the item, the chosen model's index and its outcome."""

    items: np.ndarray
    models: np.ndarray
    quality: np.ndarray
    cost: np.ndarray

    def tail(self, fraction: float) -> Trace:
        start = len(self.items) - round(len(self.items) * fraction)
        return Trace(self.items[start:], self.models[start:], self.quality[start:],
                     self.cost[start:])


def interval95(values: np.ndarray) -> tuple[float, float]:
    """Student-t 95% interval of the mean (a point when there is one value)."""
    values = np.asarray(values, float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean - half, mean + half


def utility(quality: np.ndarray, cost: np.ndarray, cost_ref: np.ndarray,
            weight: float) -> np.ndarray:
    return quality - weight * cost / cost_ref


def cumulative_regret(trace: Trace, best_utility: np.ndarray, cost_ref: np.ndarray,
                      weight: float) -> np.ndarray:
    """Running sum of (hindsight map's utility - the policy's) on the same prompts."""
    realised = utility(trace.quality, trace.cost, cost_ref[trace.items], weight)
    return np.cumsum(best_utility[trace.items] - realised)


def traffic_share(models: np.ndarray, n_models: int, window: int) -> np.ndarray:
    """Share of each model in consecutive windows: (windows x models)."""
    windows = len(models) // window
    if windows == 0:
        return np.zeros((0, n_models))
    counts = np.zeros((windows, n_models))
    chunks = models[: windows * window].reshape(windows, window)
    for j in range(n_models):
        counts[:, j] = (chunks == j).sum(axis=1)
    return counts / window


def settle_step(models: np.ndarray, n_models: int, window: int, tolerance: float = 0.1) -> int:
    """Requests until traffic settles: the end of the first window after which every window's
    traffic shares stay within `tolerance` (total variation) of the final third's shares."""
    shares = traffic_share(models, n_models, window)
    if len(shares) == 0:
        return len(models)
    final = np.bincount(models[-max(window, len(models) // 3):], minlength=n_models)
    final = final / final.sum()
    distance = 0.5 * np.abs(shares - final).sum(axis=1)
    outside = np.flatnonzero(distance > tolerance)
    return 0 if outside.size == 0 else int(min(len(shares), outside[-1] + 1) * window)


def upper_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-decreasing upper convex hull of (cost, quality) points."""
    pts = sorted(set(points))
    hull: list[tuple[float, float]] = []
    for p in pts:
        if hull and p[1] <= hull[-1][1]:
            continue  # never worth paying more for less (or equal) quality
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()  # hull[-1] lies on or below the chord: not on a concave hull
            else:
                break
        hull.append(p)
    return hull


def hull_value(hull: list[tuple[float, float]], x: float) -> float:
    """Quality the hull reaches at cost `x` (0 below its cheapest point, flat after)."""
    if not hull or x < hull[0][0]:
        return 0.0
    if x >= hull[-1][0]:
        return hull[-1][1]
    xs, ys = zip(*hull, strict=True)
    return float(np.interp(x, xs, ys))


def aiq(points: list[tuple[float, float]], lo: float, hi: float, samples: int = 2001) -> float:
    """RouterBench's AIQ: the area under the non-decreasing cost-quality hull, over the cost
    range [lo, hi], divided by its width."""
    hull = upper_hull(points)
    xs = np.linspace(lo, hi, samples)
    return float(np.trapezoid([hull_value(hull, x) for x in xs], xs) / (hi - lo))


def apgr(points: list[tuple[float, float]], q_weak: float, q_strong: float) -> tuple[float, float]:
    """RouteLLM's APGR and CPT(50%) from (share of strong-model calls, quality) points:
    PGR = (q - q_weak) / (q_strong - q_weak) on the hull through (0, weak) and (1, strong)."""
    gap = q_strong - q_weak
    if gap <= 0:
        return float("nan"), float("nan")
    pgr = [(s, (q - q_weak) / gap) for s, q in points] + [(0.0, 0.0), (1.0, 1.0)]
    hull = upper_hull(pgr)
    xs = np.linspace(0.0, 1.0, 2001)
    ys = np.array([hull_value(hull, x) for x in xs])
    reached = np.flatnonzero(ys >= 0.5)
    cpt = float(xs[reached[0]]) if reached.size else float("nan")
    return float(np.trapezoid(ys, xs)), cpt
