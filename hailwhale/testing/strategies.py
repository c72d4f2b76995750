"""Hypothesis strategies for event fields (needs Hypothesis: a test dependency, not the package's)."""

from hypothesis import strategies as st

from hailwhale.model import kinds

# Names a user would send; a top-level string that starts like a literal ([ { " ') is decoded first.
names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12).filter(
    lambda s: s != "_" and s.strip()[:1] not in ("[", "{", '"', "'")
)
metric_names = st.text(
    st.characters(whitelist_categories=("L", "N"), whitelist_characters="_.-"), min_size=1, max_size=10
).filter(lambda s: not s.startswith("-") and kinds.metric_kind(s) == kinds.SUM)
scalars = st.one_of(names, st.integers(-1000, 1000), st.booleans())
dimension_dicts = st.recursive(
    st.dictionaries(names, scalars, min_size=1, max_size=3),
    lambda children: st.dictionaries(names, st.one_of(scalars, children), min_size=1, max_size=3),
    max_leaves=6,
)
dimension_values = st.one_of(st.none(), names, st.lists(names, min_size=1, max_size=4), dimension_dicts)
metric_amounts = st.one_of(st.integers(-(10**6), 10**6), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
metric_dicts = st.dictionaries(metric_names, metric_amounts, max_size=5)
