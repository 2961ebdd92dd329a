"""The savings report as text for a terminal: the JSON of `GET /v1/stats`, as tables."""

from __future__ import annotations

import datetime as dt


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]], text: tuple[int, ...] = ()) -> list[str]:
    """Columns padded to their widest cell: numbers right-aligned, `text` columns left."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in text else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _figures(f: dict) -> list[str]:
    return [f"{f['decisions']:,}", _pct(f["feedback_rate"]), f"{f['spend_usd']:.4f}",
            f"{f['reference_usd']:.4f}", f"{f['savings_usd']:.4f}",
            _pct(None if f["savings_pct"] is None else f["savings_pct"] / 100),
            _num(f["mean_quality"])]


FIGURES = ["decisions", "feedback", "spend USD", "on reference USD", "saved USD", "saved",
           "quality"]


def _share(share: dict[str, float]) -> str:
    top = sorted(share.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{m} {s:.0%}" for m, s in top if s >= 0.005) or "-"


def _judge_lines(judge: dict | None) -> list[str]:
    """The quality sources' line: judge calls and their spend (never routed traffic), the
    implicit signals, and how well the judge agrees with clients where both scored."""
    if not judge or not (judge["calls"] or judge["implicit_facts"]):
        return []
    share = "" if judge["spend_share"] is None else f" ({judge['spend_share']:.1%} of routed)"
    line = (f"judge: {judge['calls']:,} calls ({judge['failed']:,} failed), "
            f"{judge['scores']:,} scores, mean {_num(judge['mean_score'])}, "
            f"spend {judge['spend_usd']:.4f} USD{share}; "
            f"implicit facts: {judge['implicit_facts']:,}")
    agree = judge["agreement"]
    if agree["routes"]:
        line += (f"; agreement with clients over {agree['routes']:,} routes: mean |diff| "
                 f"{_num(agree['mean_abs_diff'])}, correlation {_num(agree['correlation'])}"
                 + (" (FLAGGED: past judge.disagreement)" if agree["flagged"] else ""))
    return ["", line]


def render(stats: dict, tenant: str) -> str:
    out = [f"bandit-router report: tenant {tenant}, window {stats['window']} "
           f"({_when(stats['since'])} to {_when(stats['until'])} UTC)",
           f"savings against: {stats['reference_model']} (the same tokens at its prices)", ""]
    out += _table(FIGURES, [_figures(stats["totals"])])
    out += _effective_lines(stats)
    if stats["groups"]:
        out += [""]
        out += _table(["policy", "bucket", *FIGURES, "traffic share"],
                      [[g["policy"], g["bucket"], *_figures(g), _share(g["share"])]
                       for g in stats["groups"]], text=(0, 1, len(FIGURES) + 2))
    out += _judge_lines(stats["totals"].get("judge"))
    if stats.get("budgets"):
        out += ["", "budgets" + (" (effective prices)" if stats.get("commitments") else "")]
        out += _table(
            ["name", "window", "limit USD", "spent USD", "remaining USD", "pace", "when spent",
             "renews (UTC)"],
            [[b["name"], b["window"], f"{b['limit_usd']:.2f}", f"{b['spent_usd']:.4f}",
              f"{b['remaining_usd']:.4f}", "-" if b["pace"] is None else f"{b['pace']:.2f}x",
              b["when_spent"], _when(b["end"])] for b in stats["budgets"]], text=(0, 1, 6))
    out += _cache_lines(stats["totals"])
    out += _commitment_lines(stats.get("commitments") or [])
    return "\n".join(out) + "\n"


def _effective_lines(stats: dict) -> list[str]:
    """With commitments, the figures above are at list prices; these at what was paid."""
    t = stats["totals"]
    if not stats.get("commitments") or t["effective_spend_usd"] == t["spend_usd"]:
        return []
    pct = None if t["effective_savings_pct"] is None else t["effective_savings_pct"] / 100
    return [f"at effective prices (the commitments' discounts; budgets count these): spend "
            f"{t['effective_spend_usd']:.4f} USD, on reference "
            f"{t['effective_reference_usd']:.4f}, saved {t['effective_savings_usd']:.4f} "
            f"({_pct(pct)})"]


def _cache_lines(totals: dict) -> list[str]:
    """Prompt caching: spend above prices cached input at the models' cached prices."""
    if not totals.get("cached_input_tokens"):
        return []
    return ["", f"prompt cache: {_pct(totals['cache_hit_rate'])} of input tokens read from "
                f"cache, saving {totals['cache_savings_usd']:.4f} USD against full input "
                "price (included in spend)"]


def _commitment_lines(commitments: list[dict]) -> list[str]:
    """Commitments at list prices: what was used of what was paid for."""
    if not commitments:
        return []

    def usd(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    return ["", "commitments (usage at list prices)", *_table(
        ["name", "covers", "window", "capacity USD", "used USD", "forecast USD",
         "left on table USD", "price factor"],
        [[c["name"], c["provider"] or c["model"], c["window"], usd(c["capacity_usd"]),
          usd(c["used_usd"]), usd(c["forecast_usd"]), usd(c["left_on_table_usd"]),
          f"{c['price_factor']:.2f}x"] for c in commitments], text=(0, 1, 2))]
