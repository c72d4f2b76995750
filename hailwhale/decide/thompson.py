"""
Choosing an option from counted history: Thompson sampling with per-dimension shrinkage.

Pure: sums in, a choice (and its explanation) out; randomness comes from the
``random.Random`` passed in.  The method is the one recommended in the decide research
note (reference/decide.md, sections 0-4):

- Each option's objective is a ratio of sums ``R = Σnum/Σden`` (a single metric ``m``
  is ``Σm/Σhits``, its mean per report).
- Evidence is counted in *units* of the denominator, not in reports: a report of
  ``visitors=100`` is 100 units, one of ``spent=0.5`` half a unit, and for a metric per
  report (``m/hits``) a report is a unit.  The spread is per unit: the per-report
  variance of the linearised residual ``num − R·den`` (delta method, from the sums,
  sums of squares and the cross product) over the mean units per report, so that
  ``Var(R) ≈ spread / units``.  Where the reports cannot say (one aggregate per cell),
  a Poisson-style floor stands in: the numerator's variance per unit at least ``|R|``.
  Spreads are blended by how many reports they rest on; estimates by their units.
- A weak prior of ``k0`` pseudo-units at the decision's pooled ratio keeps early
  ratios sane; a variance floor blends in the per-unit spread pooled within options.
- For each dimension the visitor is known to have (``country=US``), the option's cell
  is shrunk toward "option global x common lift of US" with ``m_d`` pseudo-units,
  where ``m_d = CV² / τ_d²`` is estimated from the counters (empirical Bayes,
  DerSimonian-Laird over the dimension's values, leave-one-out).  A cell's spread is
  judged within cells (reports of the same option and value), so that options that
  differ by country do not read as noise.
- Dimensions combine additively in log space (multiplicatively on the ratio); each
  option gets ``log R ~ N(μ, σ²)``; one draw per option, the best draw wins.
- A small exploration floor picks uniformly at random now and then; with (almost) no
  data the choice is uniform.
- :func:`pick_window` chooses how far back to read: the shortest window that holds
  enough decisions (decide.md §4's rule of thumb).

When the pooled ratio is not positive (negative metrics, say), the same computation
runs on the ratio itself instead of its log, and lifts add instead of multiplying.
"""

import math
import random
import statistics
from collections.abc import Mapping, Sequence

import attrs

Z90 = 1.6448536269514722  # the 95th percentile of N(0, 1): a 90% central interval


@attrs.frozen
class Sums:
    """The counters of one (option, dimension value) over a window."""

    n: float = 0.0  # reports (hits)
    y: float = 0.0  # Σ numerator
    y2: float = 0.0  # Σ numerator²
    x: float = 0.0  # Σ denominator
    x2: float = 0.0  # Σ denominator²
    xy: float = 0.0  # Σ numerator·denominator

    def __add__(self, other: "Sums") -> "Sums":
        return Sums(
            self.n + other.n,
            self.y + other.y,
            self.y2 + other.y2,
            self.x + other.x,
            self.x2 + other.x2,
            self.xy + other.xy,
        )

    def __sub__(self, other: "Sums") -> "Sums":
        return Sums(
            self.n - other.n,
            self.y - other.y,
            self.y2 - other.y2,
            self.x - other.x,
            self.x2 - other.x2,
            self.xy - other.xy,
        )

    @property
    def ratio(self) -> float:
        return self.y / self.x if self.x else 0.0


ZERO = Sums()


def total(sums: Sequence[Sums]) -> Sums:
    found = ZERO
    for item in sums:
        found = found + item
    return found


@attrs.frozen
class Known:
    """One dimension the visitor is known to have: ``dimension`` (a name, or an encoded path) = ``value``."""

    dimension: str
    value: str


@attrs.frozen
class OptionData:
    """
    What the counters say about one option: over the recent window, overall and in the
    visitor's cell of each known dimension; over the longer window, every value of each
    known dimension (to estimate how much the dimension matters).
    """

    name: str
    overall: Sums
    cells: Mapping[Known, Sums] = attrs.field(factory=dict)
    values: Mapping[str, Mapping[str, Sums]] = attrs.field(factory=dict)  # long window: dimension -> value -> sums
    overall_long: Sums | None = None  # long window, overall (None: the sum of ``values``)


@attrs.frozen
class Settings:
    prior_reports: float = 20.0  # k0: the prior's weight in units, at most the mean option's units
    lift_prior_reports: float = 200.0  # k1: shrinks the common lift of a dimension value (reports' worth of units)
    floor_reports: float = 2.0  # the Poisson floor's weight against a spread measured on reports
    tau_min: float = 0.05  # the least relative spread assumed between cells (the floor of τ_d)
    floor: float = 0.01  # exploration floor: this share of choices is uniform, whatever the data
    draws: int = 2000  # Monte-Carlo draws for P(best)
    min_reports: int = 2  # below this many reports in the window, choose uniformly
    resolution: float = 0.1  # the relative difference each option's window should hold enough decisions to see


@attrs.frozen
class Choice:
    index: int
    policy: str  # "thompson", "explore" (the floor), "uniform" (no data yet) or "greedy" (explore=False)
    explanation: dict | None = None


class _Scale:
    """Log scale: ratios multiply, variances are relative."""

    name = "log"

    @staticmethod
    def g(r: float) -> float:
        return math.log(r)

    @staticmethod
    def inverse(u: float) -> float:
        return math.exp(min(u, 700.0))

    @staticmethod
    def slope(r: float) -> float:
        return 1.0 / r


class _Linear:
    """Linear scale, when ratios can be zero or negative: lifts add, variances are absolute."""

    name = "linear"

    @staticmethod
    def g(r: float) -> float:
        return r

    @staticmethod
    def inverse(u: float) -> float:
        return u

    @staticmethod
    def slope(r: float) -> float:
        return 1.0


class _NotPositive(Exception):
    pass


def unit_variance(s: Sums, r: float) -> float | None:
    """The per-report variance of the linearised ratio residual ``num − r·den``; None below 2 reports."""
    if s.n < 2:
        return None
    var_y = s.y2 - s.y * s.y / s.n
    var_x = s.x2 - s.x * s.x / s.n
    cov = s.xy - s.x * s.y / s.n
    return max(0.0, (var_y - 2 * r * cov + r * r * var_x) / (s.n - 1))


def units(s: Sums) -> float:
    """The evidence ``s`` carries: its denominator's sum (reports, for a metric per report)."""
    return s.x


def unit_spread(s: Sums, r: float) -> float | None:
    """
    The residual's variance per unit of the denominator: the per-report variance over the
    mean units per report, so that ``Var(Σnum/Σden) ≈ spread / Σden``; None below 2
    reports or without units.
    """
    per_report = unit_variance(s, r)
    if per_report is None or s.x <= 0:
        return None
    return per_report * s.n / s.x


def poisson_floor(r: float) -> float:
    """The least spread per unit assumed where reports cannot tell: a count's, its variance its mean."""
    return max(abs(r), 1e-12)


def _blend(n: float, own: float | None, weight: float, prior: float) -> float:
    if own is None or n <= 0:
        return prior
    return (n * own + weight * prior) / (n + weight)


def within_spread(cells: Sequence[Sums], r: float, settings: "Settings") -> float:
    """
    The spread per unit within ``cells`` (each (option, value) of a dimension): their
    residuals around each cell's own ratio, pooled by degrees of freedom, and at least
    the Poisson floor at ``r`` (the floor alone when no cell has two reports).
    """
    top = dof = 0.0
    for c in cells:
        if c.n < 2 or c.x <= 0:
            continue
        spread = unit_spread(c, c.ratio)
        if spread is None:
            continue
        top += spread * (c.n - 1)
        dof += c.n - 1
    own = top / dof if dof > 0 else None
    return max(_blend(dof, own, settings.floor_reports, poisson_floor(r)), poisson_floor(r))


@attrs.frozen
class _Model:
    scale: type[_Scale] | type[_Linear]
    r0: float
    k0: float
    mean_den: float
    m: Mapping[str, float]  # m_d per dimension, in units
    globals_: tuple[float, ...]  # R̃_k
    cells: tuple[Mapping[Known, tuple[float, float, float]], ...]  # R̃_kv, weight, n
    mu: tuple[float, ...]
    sigma: tuple[float, ...]
    effective: tuple[float, ...]  # the estimate's worth in units at its main evidence's spread (at most all its units)


def typical_spread(options: Sequence[OptionData], r0: float) -> float:
    """
    The spread per unit an option without its own is assumed to have: the median of the
    options' own (the Poisson floor for those with fewer than two reports), at least the
    floor.  A median, as one option's reports split by a dimension that matters (a
    country that earns twice the rest) say more about that split than about noise.
    """
    found = []
    for o in options:
        own = unit_spread(o.overall, o.overall.ratio)
        found.append(poisson_floor(r0) if own is None or o.overall.ratio == 0 else own * (r0 / o.overall.ratio) ** 2)
    return max(statistics.median(found), poisson_floor(r0))


def _moved(scale, r_from: float, r_to: float) -> float:
    """How a spread measured at ``r_from`` is carried to ``r_to``: alike in relative terms on the log scale."""
    if scale is _Scale and r_from:
        return (r_to / r_from) ** 2
    return 1.0


def _reports_per_unit(s: Sums, fallback: float) -> float:
    return s.n / s.x if s.x > 0 and s.n > 0 else fallback


def _fit(options: Sequence[OptionData], known: Sequence[Known], settings: Settings, scale) -> _Model:
    pool = total([o.overall for o in options])
    r0 = pool.ratio
    mean_den = pool.x / pool.n
    per_unit = _reports_per_unit(pool, 1.0)
    s0 = typical_spread(options, r0)
    if scale is _Scale and r0 <= 0:
        raise _NotPositive
    # at most prior_reports units, or reports when a report carries less than a unit; at most the mean option's units
    k0 = max(min(1.0, mean_den), min(settings.prior_reports * min(1.0, mean_den), pool.x / len(options)))
    tiny = 1e-9 * max(pool.x, 1e-300)

    globals_, variances, option_s2, references, evidence = [], [], [], [], []
    prior_variance = s0 * scale.slope(r0) ** 2 / k0
    for option in options:
        s = option.overall
        r = (s.y + k0 * r0) / (s.x + k0)
        if scale is _Scale and r <= 0:
            raise _NotPositive
        s2 = max(_blend(s.n, unit_spread(s, r), k0 * per_unit, s0 * _moved(scale, r0, r)), poisson_floor(r))
        globals_.append(r)
        option_s2.append(s2)
        references.append(s2 * scale.slope(r) ** 2)
        # never wider than the prior alone: near a zero ratio the log's slope would say otherwise
        variances.append(min(s2 * scale.slope(r) ** 2 / max(s.x + k0, tiny), prior_variance))
        evidence.append(max(s.x, 0.0) + k0)

    within = {
        d: within_spread(
            [c for o in options for c in o.values.get(d, {}).values()],
            r0,
            settings,
        )
        for d in dict.fromkeys(k.dimension for k in known)
    }
    m = {d: _pseudo_reports(options, d, settings, scale) for d in within}

    mu = [scale.g(r) for r in globals_]
    var_cells = [0.0] * len(options)
    trust = [0.0] * len(options)
    main = [0.0] * len(options)  # the largest weight a cell got, per option
    cells: list[dict] = [{} for _ in options]
    for item in known:
        common = total([o.cells.get(item, ZERO) for o in options])
        lift_prior = settings.lift_prior_reports * min(1.0, mean_den)
        lifted = (common.y + lift_prior * r0) / (common.x + lift_prior)
        if scale is _Scale and lifted <= 0:
            raise _NotPositive
        lift = scale.g(lifted) - scale.g(r0)
        m_d = m[item.dimension]
        for k, option in enumerate(options):
            c = option.cells.get(item, ZERO)
            target = scale.inverse(scale.g(globals_[k]) + lift)
            if not math.isfinite(m_d):  # the dimension cannot be told apart from noise: the target alone
                mu[k] += lift
                cells[k][item] = (target, 0.0, c.n)
                continue
            r = (c.y + m_d * target) / (c.x + m_d)
            if scale is _Scale and r <= 0:
                raise _NotPositive
            prior_spread = min(
                option_s2[k] * _moved(scale, globals_[k], r), within[item.dimension] * _moved(scale, r0, r)
            )
            s2 = max(
                _blend(c.n, unit_spread(c, r), m_d * _reports_per_unit(c, per_unit), prior_spread), poisson_floor(r)
            )
            weight = max(c.x, 0.0) / (max(c.x, 0.0) + m_d)
            mu[k] += scale.g(r) - scale.g(globals_[k])
            cap = within[item.dimension] * scale.slope(r0) ** 2 / max(m_d, tiny)  # the cell's prior alone
            var_cells[k] += min(s2 * scale.slope(r) ** 2 / max(c.x + m_d, tiny), cap)
            evidence[k] += max(c.x, 0.0) + m_d
            trust[k] += weight
            if weight > main[k]:
                main[k] = weight
                references[k] = s2 * scale.slope(r) ** 2
            cells[k][item] = (r, weight, c.n)
    # the global estimate enters the context's through every cell's target: with weight 1 - Σ w_d
    var = [v * (1.0 - t) ** 2 + vc for v, t, vc in zip(variances, trust, var_cells)]
    sigma = tuple(math.sqrt(max(v, 0.0)) for v in var)
    if not all(map(math.isfinite, (*mu, *sigma))):  # a ratio so near zero that its log's slope overflows
        raise FloatingPointError("the model's estimates are not finite")
    effective = tuple(min(ref / (s * s), most) if s > 0 else most for ref, s, most in zip(references, sigma, evidence))
    return _Model(scale, r0, k0, mean_den, m, tuple(globals_), tuple(cells), tuple(mu), sigma, effective)


def _pseudo_reports(options: Sequence[OptionData], dimension: str, settings: Settings, scale) -> float:
    """
    ``m_d = CV² / τ_d²``: how many units a cell of ``dimension`` needs before its own
    data counts half.  CV² is the spread per unit within cells; τ_d² the spread of
    options' cells around "option x common lift" beyond sampling noise
    (DerSimonian-Laird), each cell against the rest of the option's units (leave-one-out:
    the other values, and reports without the dimension), over the longer window.
    """
    by_value: dict[str, list[Sums]] = {}
    for k, option in enumerate(options):
        for value, sums in option.values.get(dimension, {}).items():
            by_value.setdefault(value, [ZERO] * len(options))[k] = sums
    wholes = [
        o.overall_long if o.overall_long is not None else total(list(o.values.get(dimension, {}).values()))
        for o in options
    ]
    per_value = {value: total(cells) for value, cells in by_value.items()}
    pool = total(wholes)
    if not by_value or pool.n < 2 or pool.x <= 0:
        return math.inf
    r0 = pool.ratio
    per_unit = _reports_per_unit(pool, 1.0)
    within = within_spread([c for cells in by_value.values() for c in cells], r0, settings)
    cv2 = within * scale.slope(r0) ** 2 if r0 else 0.0
    tau_min = settings.tau_min if scale is _Scale else settings.tau_min * max(abs(r0), 1e-12)
    if cv2 <= 0:
        return math.inf
    top = bottom = 0.0
    for k, whole in enumerate(wholes):
        if whole.n < 2 or whole.x <= 0:
            continue
        r_k = whole.ratio
        for value, cells in by_value.items():
            a = cells[k]
            b = whole - a
            common_a = per_value[value]
            common_b = pool - common_a
            if a.n < 1 or b.n < 1 or a.x <= 0 or b.x <= 0 or common_a.x <= 0 or common_b.x <= 0:
                continue
            weight = settings.prior_reports * per_unit
            var_a = _blend(a.n, unit_spread(a, a.ratio), weight, within) / a.x
            var_b = _blend(b.n, unit_spread(b, b.ratio), weight, within) / b.x
            if scale is _Scale:
                if r_k <= 0 or common_a.ratio <= 0 or common_b.ratio <= 0:
                    continue
                lift_a, lift_b = common_a.ratio / r0, common_b.ratio / r0
                delta = (a.ratio / lift_a - b.ratio / lift_b) / r_k
                v = (var_a / lift_a**2 + var_b / lift_b**2) / r_k**2
            else:
                delta = (a.ratio - (common_a.ratio - r0)) - (b.ratio - (common_b.ratio - r0))
                v = var_a + var_b
            if v <= 0:
                continue
            rest = [cells_u[k].x for value_u, cells_u in by_value.items() if value_u != value]
            rest.append(max(0.0, b.x - sum(rest)))  # units without the dimension, as one more group
            f = 1.0 + sum((x_u / b.x) ** 2 for x_u in rest)
            top += delta * delta / v - 1.0
            bottom += f / v
    tau2 = max(tau_min**2, top / bottom if bottom > 0 else 0.0)
    return cv2 / tau2


def pick_window(
    candidates: Sequence[Sequence[OptionData]], known: Sequence[Known], settings: Settings = Settings()
) -> int:
    """
    Which of the ``candidates`` (the same options read over windows from the shortest to
    the longest, the longest also holding every value of each known dimension) to decide
    from: the shortest that holds enough units, or the longest.  Enough is, per option,
    ``CV² / resolution²`` units (about one standard error at a 10% difference), and per
    option and value of each known dimension, its ``m_d`` (decide.md §4's rule of thumb:
    a cell should hold about as many units as it takes to count).
    """
    longest = candidates[-1]
    pool = total([o.overall for o in longest])
    if pool.n < settings.min_reports or not pool.x > 1e-9 * pool.n or pool.ratio == 0:
        return 0
    r0 = pool.ratio
    try:
        cv2 = within_spread([o.overall for o in longest], r0, settings) / (r0 * r0)
    except ArithmeticError:
        return len(candidates) - 1
    used = [k for k in known if any(o.cells.get(k, ZERO).n > 0 for o in longest)]
    scale = _Scale if r0 > 0 else _Linear
    needs: list[tuple[float, Known | None]] = [(cv2 / settings.resolution**2, None)]
    for item in used:
        try:
            m_d = _pseudo_reports(longest, item.dimension, settings, scale)
        except ArithmeticError:
            continue
        if math.isfinite(m_d):
            needs.append((m_d, item))
    for index, options in enumerate(candidates):
        if all(
            statistics.median(units(o.overall if item is None else o.cells.get(item, ZERO)) for o in options) >= need
            for need, item in needs
        ):
            return index
    return len(candidates) - 1


def fit(options: Sequence[OptionData], known: Sequence[Known], settings: Settings = Settings()) -> _Model | None:
    """The model, or None when the window holds too little to say anything (choose uniformly)."""
    pool = total([o.overall for o in options])
    if pool.n < settings.min_reports or not pool.x > 1e-9 * pool.n or (pool.y == 0 and pool.y2 == 0):
        return None
    try:
        return _fit(options, known, settings, _Scale)
    except (_NotPositive, ArithmeticError):  # a ratio at or near zero: its log is useless
        pass
    try:
        return _fit(options, known, settings, _Linear)
    except ArithmeticError:  # sums beyond what floats can square: nothing sensible to say
        return None


def choose(
    options: Sequence[OptionData],
    known: Sequence[Known],
    rng: random.Random,
    goal: str = "max",
    explain: bool = False,
    explore: bool = True,
    settings: Settings = Settings(),
) -> Choice:
    """
    Pick one of ``options`` (at least one) for a visitor with the ``known`` dimensions;
    ``goal`` is "max" or "min".  The draw uses ``rng`` only, in a fixed order, so a seeded
    ``rng`` gives a reproducible choice; the explanation's Monte-Carlo draws come after it
    and never change the choice.
    """
    if not options:
        raise ValueError("no options to choose from")
    sign = -1.0 if goal == "min" else 1.0
    count = len(options)
    used = [k for k in known if any(o.cells.get(k, ZERO).n > 0 for o in options)]
    model = fit(options, used, settings)
    epsilon = settings.floor
    if model is None:
        index, policy = rng.randrange(count), "uniform"
    elif not explore:
        index, policy = max(range(count), key=lambda k: (sign * model.mu[k], -k)), "greedy"
    elif rng.random() < epsilon:
        index, policy = rng.randrange(count), "explore"
    else:
        draws = [sign * (mu + sigma * rng.gauss(0.0, 1.0)) for mu, sigma in zip(model.mu, model.sigma)]
        index, policy = max(range(count), key=lambda k: draws[k]), "thompson"
    if not explain:
        return Choice(index, policy)
    return Choice(index, policy, _explain(options, known, model, index, policy, sign, epsilon, rng, settings))


def p_best(model: _Model, sign: float, rng: random.Random, draws: int) -> list[float]:
    """P(option is best), by ``draws`` joint Monte-Carlo draws from the posterior."""
    wins = [0] * len(model.mu)
    pairs = list(zip(model.mu, model.sigma))
    for _ in range(draws):
        best, best_k = -math.inf, 0
        for k, (mu, sigma) in enumerate(pairs):
            value = sign * (mu + sigma * rng.gauss(0.0, 1.0))
            if value > best:
                best, best_k = value, k
        wins[best_k] += 1
    return [w / draws for w in wins]


def _explain(options, known, model, index, policy, sign, epsilon, rng, settings) -> dict:
    count = len(options)
    used = [k for k in known if any(o.cells.get(k, ZERO).n > 0 for o in options)]
    ignored = [k for k in known if k not in used]
    answer: dict = {
        "option": options[index].name,
        "policy": policy,
        "goal": "min" if sign < 0 else "max",
        "known": {k.dimension: k.value for k in known},
        "ignored_dimensions": [
            {"dimension": k.dimension, "value": k.value, "reason": "no data in the window"} for k in ignored
        ],
    }
    if model is None:
        answer.update(
            p_choose=1.0 / count,
            driver=None,
            model=None,
            options=[
                {
                    "option": o.name,
                    "estimate": None,
                    "interval_90": None,
                    "n": o.overall.n,
                    "units": units(o.overall),
                    "effective_n": None,
                    "p_best": 1.0 / count,
                    "global_estimate": None,
                    "dimensions": [],
                }
                for o in options
            ],
        )
        return answer
    scale = model.scale
    best = p_best(model, sign, random.Random(rng.getrandbits(64)), settings.draws)
    if policy == "greedy":
        p_choose = 1.0
    else:
        p_choose = epsilon / count + (1 - epsilon) * best[index]
    rows = []
    for k, option in enumerate(options):
        mu, sigma = model.mu[k], model.sigma[k]
        rows.append(
            {
                "option": option.name,
                "estimate": scale.inverse(mu),
                "interval_90": [scale.inverse(mu - Z90 * sigma), scale.inverse(mu + Z90 * sigma)],
                "n": option.overall.n,
                "units": units(option.overall),
                "effective_n": model.effective[k] if math.isfinite(model.effective[k]) else None,
                "p_best": best[k],
                "global_estimate": model.globals_[k],
                "dimensions": [
                    {
                        "dimension": item.dimension,
                        "value": item.value,
                        "n": model.cells[k][item][2],
                        "units": units(option.cells.get(item, ZERO)),
                        "estimate": model.cells[k][item][0],
                        "weight": model.cells[k][item][1],
                    }
                    for item in used
                ],
            }
        )
    answer.update(
        p_choose=p_choose,
        driver=_driver(model, index, options[index].name, used),
        model={
            "scale": scale.name,
            "pseudo_counts": {
                d: (m if math.isfinite(m) else None) for d, m in model.m.items() if any(k.dimension == d for k in used)
            },
            "prior": {"ratio": model.r0, "pseudo_reports": model.k0},
        },
        options=rows,
    )
    return answer


def _driver(model: _Model, index: int, name: str, used: Sequence[Known]) -> dict | None:
    """The known dimension that moved the chosen option's score most from its global estimate."""
    scale = model.scale
    best = None
    for item in used:
        r, weight, _ = model.cells[index][item]
        shift = scale.g(r) - scale.g(model.globals_[index])
        if best is None or abs(shift) > abs(best[1]):
            best = (item, shift, weight)
    if best is None or abs(best[1]) < 1e-12:
        return None
    item, shift, weight = best
    if scale is _Scale:
        change = math.exp(shift) - 1
        text = (
            f"{name} does {abs(change):.0%} {'better' if change >= 0 else 'worse'} for {item.dimension}="
            f"{item.value} than overall ({item.value} data weight {weight:.2f})"
        )
    else:
        text = (
            f"{name} is {abs(shift):.4g} {'higher' if shift >= 0 else 'lower'} for {item.dimension}="
            f"{item.value} than overall ({item.value} data weight {weight:.2f})"
        )
    return {"dimension": item.dimension, "value": item.value, "shift": shift, "text": text}
