"""
The store's read protocol: the requests a query plan yields, as plain values.

A query is a generator: it yields requests (:class:`SumsRequest`, :class:`Group`,
:class:`Children`, :class:`Names`), is sent each reply, and returns the answer.  Whoever holds a store
drives it (:func:`run`: in a thread for the daemon, directly for ``Whale``).  Every
request touches one pk, so one hash tag.
"""

from collections.abc import Generator

import attrs

from hailwhale.model import kinds
from hailwhale.model.paths import Path
from hailwhale.query.periods import Piece


class StoreUnavailable(Exception):
    """The store did not answer a request (it is away, hung, or refused it)."""


@attrs.frozen
class SumPart:
    """The total of ``metric`` over ``pieces`` for each of ``members`` (siblings under ``parent``)."""

    parent: str
    members: tuple[str, ...]
    metric: str
    pieces: tuple[Piece, ...]

    @property
    def kind(self) -> str:
        """A sum adds the pieces; a gauge takes the latest piece with a value; a unique count unites them."""
        return kinds.metric_kind(self.metric)


@attrs.frozen
class SumsRequest:
    """Reply: one list of floats per part, one float per member."""

    pk: Path
    parts: tuple[SumPart, ...]


@attrs.frozen
class Group:
    """
    The children of ``parent`` that have data over ``pieces``, sorted by the window total
    of ``numerator`` (over ``denominator``, if any), the first ``limit`` of them (0: all).
    Reply: (number of children ``parent`` has, the chosen children in order, {metric: totals}).
    """

    pk: Path
    parent: str
    metrics: tuple[str, ...]
    pieces: tuple[Piece, ...]
    numerator: str
    denominator: str | None
    descending: bool
    limit: int
    presence: str = "hits"  # a child with this metric in the window is found even if its sort value is 0


@attrs.frozen
class Children:
    """Reply: the sorted child encodings of each node."""

    pk: Path
    nodes: tuple[str, ...]


@attrs.frozen
class Names:
    """
    Reply: (how many names the pk's ``index`` holds, up to ``most`` of them, sorted).
    ``index`` is ``pks`` (the last names of the pk's child pks; of the top-level pks for
    the root ``()``) or ``metrics`` (the metric names counted under the pk).
    """

    pk: Path
    index: str
    most: int


Request = SumsRequest | Group | Children | Names
Plan = Generator[Request, object, object]


def run(plan: Plan, store) -> object:
    """Drive ``plan`` against a blocking store (anything with ``run(request)``)."""
    try:
        request = next(plan)
        while True:
            request = plan.send(store.run(request))
    except StopIteration as done:
        return done.value
