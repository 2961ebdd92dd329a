"""Offline worlds for prompt-cache sessions and provider commitments (experiments/sessions.py,
experiments/commitments.py): the service's Engine and ArmBook, unchanged, fed each call's
facts as the service would be, with the providers' caches and bills simulated."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from bandit_router.core.learner import ArmBook
from bandit_router.core.route_id import RouteIds
from bandit_router.core.settings import CommitmentConfig, Config, Model
from bandit_router.core.spend import Prices
from bandit_router.core.types import FeedbackEvent, Message, RouteRequest, RouteTicket
from bandit_router.engine.router import Engine
from bandit_router.engine.simulate import Clock

OUTPUT_TOKENS = 300
PROMPT = "Continue our conversation about the design of the service."


def catalog(config: Config, names: tuple[str, ...], cache: bool = True) -> Config:
    """`config` over `names` only, with or without their cached-input discounts."""
    models = tuple(m if cache else replace(m, cached_input_per_mtok=None,
                                           cache_write_per_mtok=None)
                   for m in config.models if m.name in names)
    return replace(config, models=models, commitments=())


@dataclass
class Tally:
    spend: float = 0.0
    quality: list[float] = field(default_factory=list)
    turns: int = 0
    switches: int = 0
    late_turns: int = 0  # turns after a session's first, in the second half of the sessions
    late_switches: int = 0  # ... that switched model: once the router has learned
    input_tokens: float = 0.0
    cached_tokens: float = 0.0
    used: dict[str, int] = field(default_factory=dict)


class Router:
    """The engine and its learning, as in the service; `sessions`: send session_id."""

    def __init__(self, config: Config, seed: int, clock: Clock, sessions: bool) -> None:
        self.engine = Engine(config, RouteIds(b"simulation-key-00"),
                             np.random.default_rng(seed), clock)
        self.book = ArmBook(config.policies, weights=config.source_weights)
        self.sessions = sessions

    def choose(self, session: str, input_tokens: int) -> tuple[str, object]:
        request = RouteRequest(messages=(Message("user", PROMPT),), input_tokens=input_tokens,
                               task="chat", session_id=session if self.sessions else None)
        d = self.engine.decide(request)
        return d.model, d

    def learn(self, d, quality: float, input_tokens: int, cached: int, now: float,
              usd: float) -> None:
        ticket = RouteTicket(d.policy, d.bucket, d.model, d.created_at, d.input_tokens, "",
                             d.tenant)
        facts = (("quality", quality), ("input_tokens", float(input_tokens)),
                 ("output_tokens", float(OUTPUT_TOKENS)),
                 ("cached_input_tokens", float(cached)))
        self.engine.absorb(self.book.apply(FeedbackEvent(d.route_id, ticket, facts, now)))
        self.engine.sessions.observe(d.route_id, cached)
        self.engine.spent(d.tenant, d.policy, usd, d.created_at, d.model)


def session_lengths(rng: np.random.Generator, n: int) -> list[list[int]]:
    """`n` sessions of 5-30 turns; each turn's prompt 1-5k tokens longer than the last."""
    out = []
    for _ in range(n):
        turns = int(rng.integers(5, 31))
        prompt = int(rng.integers(1000, 4000))
        sizes = []
        for _ in range(turns):
            sizes.append(prompt)
            prompt += int(rng.integers(1000, 5001))
        out.append(sizes)
    return out


def run_sessions(config: Config, quality: dict[str, float], sessions: list[list[int]],
                 seed: int, strategy: str) -> Tally:
    """One strategy over the sessions: "aware" (session_id sent), "blind" (not sent), or a
    model's name (always that model). The provider caches each turn's prompt for the next
    turn to the same model (automatic prefix caching, within its lifetime)."""
    rng = np.random.default_rng(seed + 1000)
    clock = Clock()
    router = Router(config, seed, clock, strategy == "aware")
    models = {m.name: m for m in config.models}
    out = Tally()
    for k, sizes in enumerate(sessions):
        last, cache = None, 0
        for prompt in sizes:
            clock.t += 5.0
            if strategy in models:
                name, d = strategy, None
            else:
                name, d = router.choose(f"s{k}", prompt)
            cached = cache if name == last else 0
            usd = Prices.of(models[name]).cost(prompt, OUTPUT_TOKENS, cached)
            q = float(rng.random() < quality[name])
            if d is not None:
                router.learn(d, q, prompt, cached, clock.t, usd)
            out.spend += usd
            out.quality.append(q)
            out.turns += 1
            out.switches += last is not None and name != last
            if last is not None and 2 * k >= len(sessions):
                out.late_turns += 1
                out.late_switches += name != last
            out.input_tokens += prompt
            out.cached_tokens += cached
            out.used[name] = out.used.get(name, 0) + 1
            last, cache = name, prompt
        clock.t += 3600.0  # sessions apart: every cache has expired
    return out


# --- commitments ----------------------------------------------------------------------------

MONTH_START = 1_798_761_600.0  # 2027-01-01 UTC: a 31-day window
DAY = 86_400.0


def daily_traffic(rng: np.random.Generator, mean: int) -> list[int]:
    """Requests per day over the month: weekdays busy, weekends quiet, a launch week at 2x,
    and ±30% noise."""
    out = []
    for day in range(31):
        weekday = (day + 4) % 7 < 5  # 2027-01-01 is a Friday
        level = (1.0 if weekday else 0.35) * (2.0 if 10 <= day < 17 else 1.0)
        out.append(max(1, int(mean * level * rng.uniform(0.7, 1.3))))
    return out


@dataclass
class CommitmentRun:
    used: float  # list-price usage of the committed provider in the window
    capacity: float
    spend_other: float  # list-price spend elsewhere
    quality: float
    daily_used: list[float]


def run_commitment(config: Config, commitment: CommitmentConfig | None, capacity: float,
                   quality: dict[str, float], traffic: list[int], seed: int,
                   prompt_tokens: int = 6000) -> CommitmentRun:
    """A month of single-turn requests; `commitment` None routes at list prices."""
    rng = np.random.default_rng(seed + 2000)
    clock = Clock(MONTH_START)
    cfg = replace(config, commitments=(commitment,) if commitment else ())
    router = Router(cfg, seed, clock, sessions=False)
    covered = {m.name for m in cfg.models
               if commitment is not None and commitment.provider == m.provider}
    if commitment is None:  # still measure the provider a commitment would cover
        covered = {m.name for m in cfg.models if m.provider == "anthropic"}
    models = {m.name: m for m in cfg.models}
    used = other = 0.0
    scores, daily = [], []
    for day, n in enumerate(traffic):
        gap = DAY / n
        for i in range(n):
            clock.t = MONTH_START + day * DAY + (i + 0.5) * gap
            name, d = router.choose("", prompt_tokens)
            usd = Prices.of(models[name]).cost(prompt_tokens, OUTPUT_TOKENS)
            q = float(rng.random() < quality[name])
            router.learn(d, q, prompt_tokens, 0, clock.t, usd)
            if name in covered:
                used += usd
            else:
                other += usd
            scores.append(q)
        daily.append(used)
    return CommitmentRun(used, capacity, other, float(np.mean(scores)), daily)


def effective_cost(run: CommitmentRun, discount: float) -> float:
    """What the month costs under the commitment: the amount, paid in any case, plus list
    price past the capacity, plus everything else."""
    amount = run.capacity * (1.0 - discount)
    return amount + max(0.0, run.used - run.capacity) + run.spend_other


def list_models(config: Config, names: tuple[str, ...]) -> tuple[Model, ...]:
    return tuple(m for m in config.models if m.name in names)
