"""Quality sources: what each feedback message adds to the hourly tallies of the judge and
the implicit signals, and how well a judge agrees with the clients on routes both scored.

Every quality fact records its source (`quality` is the client's, `judge_quality` a judge
model's, `implicit_quality` what the answer's form told). A route holds at most one fact
per source, and each counts in the posterior with its source's weight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def source_tally(known: Mapping[str, tuple[float, bool]], applied: Mapping[str, float],
                 derived_quality: bool) -> dict[str, float]:
    """The quality part of a message's tally (stats.Tally fields). `known`: the route's
    earlier facts as (value, derived); `applied`: this message's. A client's quality
    derived from success=false is no score, so it never pairs with a judge's."""
    tally: dict[str, float] = {}
    quality = applied.get("quality")
    if quality is not None:
        tally["quality_sum"], tally["quality_n"] = quality, 1
    judged = applied.get("judge_quality")
    if judged is not None:
        tally["judge_n"], tally["judge_sum"] = 1, judged
    if "implicit_quality" in applied:
        tally["implicit_n"] = 1
    # the pair is complete once this message brings its second half
    client_new = None if derived_quality else quality
    client_old = known["quality"][0] if "quality" in known and not known["quality"][1] \
        else None
    judge_old = known["judge_quality"][0] if "judge_quality" in known else None
    client, judged = (client_new, judge_old if judged is None else judged) \
        if client_new is not None else (client_old, judged)
    if client is not None and judged is not None:
        tally.update(pair_n=1, pair_absdiff=abs(client - judged), pair_client=client,
                     pair_judge=judged, pair_cc=client**2, pair_jj=judged**2,
                     pair_cj=client * judged)
    return tally


def agreement(t, disagreement: float) -> dict:
    """A judge's agreement with clients over the routes both scored (`t`, a stats.Tally):
    mean absolute
    difference, Pearson correlation (None while either side is constant), and whether the
    difference passes `disagreement` (judge.disagreement)."""
    if not t.pair_n:
        return {"routes": 0, "mean_abs_diff": None, "correlation": None, "flagged": False}
    n = t.pair_n
    mad = t.pair_absdiff / n
    cov = t.pair_cj / n - (t.pair_client / n) * (t.pair_judge / n)
    var_c = t.pair_cc / n - (t.pair_client / n) ** 2
    var_j = t.pair_jj / n - (t.pair_judge / n) ** 2
    corr = cov / math.sqrt(var_c * var_j) if var_c > 1e-12 and var_j > 1e-12 else None
    return {"routes": n, "mean_abs_diff": mad,
            "correlation": None if corr is None else max(-1.0, min(1.0, corr)),
            "flagged": mad > disagreement}


def judge_figures(t, disagreement: float) -> dict:
    """The judge's line of a stats group: calls, their spend (never routed traffic), its
    share of the routed spend, its mean score, and its agreement with clients."""
    return {"calls": t.judge_calls, "failed": t.judge_failed, "scores": t.judge_n,
            "spend_usd": t.judge_spend_usd,
            "spend_share": t.judge_spend_usd / t.spend_usd if t.spend_usd > 0 else None,
            "mean_score": t.judge_sum / t.judge_n if t.judge_n else None,
            "implicit_facts": t.implicit_n,
            "agreement": agreement(t, disagreement)}
