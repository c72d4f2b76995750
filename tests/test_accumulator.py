from hailwhale.accumulator import Accumulator
from hailwhale.events import Event


def event(pk="p", at=120.5, **metrics):
    return Event((pk,), frozenset(), {"hits": 1, **metrics}, at)


def test_events_in_one_bucket_add_up():
    """Events of one pk, dimensions and minute share one aggregation key."""
    accumulator = Accumulator(60, 100)
    accumulator.add(event(x=1.5))
    accumulator.add(event(at=179.0, x=-0.25))

    batch = accumulator.swap()

    assert ({(("p",), frozenset(), 120): {"hits": 2, "x": 1.25}}, 2) == (batch.entries, batch.events)


def test_swap_starts_afresh_and_numbers_batches():
    """A swap hands over everything and the next batch gets the next number; an empty swap is None."""
    accumulator = Accumulator(60, 100)
    accumulator.add(event())
    first = accumulator.swap()
    empty = accumulator.swap()
    accumulator.add(event())

    assert (1, None, 2, 0) == (first.seq, empty, accumulator.swap().seq, accumulator.pending_keys)


def test_key_bound():
    """Past the bound on distinct keys a new key is refused, while existing keys still add up."""
    accumulator = Accumulator(60, 1)
    accumulator.add(event("a"))

    assert (False, True, 1) == (accumulator.add(event("b")), accumulator.add(event("a")), accumulator.pending_keys)
