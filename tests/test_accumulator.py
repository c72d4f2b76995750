from hailwhale.aggregate.accumulator import Accumulator
from hailwhale.model.events import Event


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


def test_repeats_add_up_as_events_do():
    """Noted lines that come again add to their totals by the swap, as if each had been added as an event."""
    accumulator = Accumulator(60, 100)
    accumulator.add_sums(("p",), frozenset(), {"hits": 1, "count": 2.0}, 120.5)
    accumulator.note_repeatable(b"p:2|c", ("p",), frozenset(), {"hits": 1, "count": 2.0}, 120.5)

    taken = (
        accumulator.add_repeats([b"p:2|c", b"p:2|c"], 130.0),
        accumulator.add_repeats([b"p:2|c", b"q:1|c"], 130.0),
        accumulator.add_repeats([b"p:2|c"], 180.0),
        accumulator.pending_events,
    )

    assert ((True, False, False, 3), {(("p",), frozenset(), 120): {"hits": 3, "count": 6.0}}) == (
        taken,
        accumulator.swap().entries,
    )


def test_repeats_are_settled_when_the_bucket_changes():
    """A new bucket settles the tally of the last one; a swap settles the tally too, and the notes stay."""
    accumulator = Accumulator(60, 100)
    accumulator.add_sums(("p",), frozenset(), {"hits": 1}, 120.5)
    accumulator.note_repeatable(b"p", ("p",), frozenset(), {"hits": 1}, 120.5)
    accumulator.add_repeats([b"p"], 121.0)
    accumulator.add_sums(("p",), frozenset(), {"hits": 1}, 180.5)
    accumulator.note_repeatable(b"p", ("p",), frozenset(), {"hits": 1}, 180.5)
    accumulator.add_repeats([b"p", b"p"], 181.0)

    entries = accumulator.swap().entries

    assert ({(("p",), frozenset(), 120): {"hits": 2}, (("p",), frozenset(), 180): {"hits": 3}}, True) == (
        entries,
        accumulator.add_repeats([b"p"], 181.0),
    )


def test_a_batch_read_after_the_notes_moved_on_still_holds_its_repeats():
    """
    A swap hands the tally over unsettled (it is added when the batch is first read, in the
    flush's thread); lines and buckets that come after the swap change nothing in it.
    """
    accumulator = Accumulator(60, 100)
    accumulator.add_sums(("p",), frozenset(), {"hits": 1}, 120.5)
    accumulator.note_repeatable(b"p", ("p",), frozenset(), {"hits": 1}, 120.5)
    accumulator.add_repeats([b"p", b"p"], 121.0)
    batch = accumulator.swap()
    accumulator.add_repeats([b"p"], 122.0)
    accumulator.add_sums(("q",), frozenset(), {"hits": 1}, 180.5)
    accumulator.note_repeatable(b"q", ("q",), frozenset(), {"hits": 1}, 180.5)  # a new bucket: new notes

    assert ({(("p",), frozenset(), 120): {"hits": 3}}, 1) == (dict(batch.entries.items()), len(batch.entries))
    assert {(("p",), frozenset(), 120): {"hits": 1}, (("q",), frozenset(), 180): {"hits": 1}} == (
        accumulator.swap().entries
    )


def test_a_noted_line_after_a_swap_makes_its_key_again():
    """A line sent once per flush is tallied after the first: the next batch holds its key as if it had been added."""
    accumulator = Accumulator(60, 100)
    accumulator.add_sums(("p",), frozenset(), {"hits": 1, "count": 2.0}, 120.5)
    accumulator.note_repeatable(b"p:2|c", ("p",), frozenset(), {"hits": 1, "count": 2.0}, 120.5)
    accumulator.swap()

    taken = accumulator.add_repeats([b"p:2|c"], 121.0)

    assert (True, 1, {(("p",), frozenset(), 120): {"hits": 1, "count": 2.0}}) == (
        taken,
        accumulator.pending_keys,
        accumulator.swap().entries,
    )


def test_keys_made_again_by_repeats_respect_the_bound():
    """After a swap, repeats that would make more keys than the bound allows are refused whole (read the long way)."""
    accumulator = Accumulator(60, 2)
    for name in (b"a", b"b"):
        accumulator.add_sums((name.decode(),), frozenset(), {"hits": 1}, 120.5)
        accumulator.note_repeatable(name, (name.decode(),), frozenset(), {"hits": 1}, 120.5)
    accumulator.swap()
    accumulator.add(event("c"))

    assert (False, True, 2) == (
        accumulator.add_repeats([b"a", b"b"], 121.0),
        accumulator.add_repeats([b"a"], 121.0),
        accumulator.pending_keys,
    )


def test_a_key_made_again_with_other_metrics_first_is_not_tallied():
    """After a swap, if another event made a noted line's key first with other metrics, the line is read again."""
    accumulator = Accumulator(60, 100)
    accumulator.add_sums(("p",), frozenset(), {"hits": 1, "count": 2.0}, 120.5)
    accumulator.note_repeatable(b"p:2|c", ("p",), frozenset(), {"hits": 1, "count": 2.0}, 120.5)
    accumulator.swap()
    accumulator.add_sums(("p",), frozenset(), {"hits": 1, "x": 5.0}, 121.0)

    assert (False, {(("p",), frozenset(), 120): {"hits": 1, "x": 5.0}}) == (
        accumulator.add_repeats([b"p:2|c"], 121.0),
        accumulator.swap().entries,
    )


def test_only_small_whole_numbers_are_noted():
    """A line of fractional or huge values is never taken as a repeat (its sums would depend on the order)."""
    accumulator = Accumulator(60, 100)
    for line, value in [(b"a", 0.5), (b"b", 1e17)]:
        accumulator.add_sums(("p",), frozenset(), {"x": value}, 120.0)
        accumulator.note_repeatable(line, ("p",), frozenset(), {"x": value}, 120.0)

    assert (False, False) == (accumulator.add_repeats([b"a"], 120.0), accumulator.add_repeats([b"b"], 120.0))


def test_events_of_other_metrics_join_a_key():
    """Events with other metrics under one key add up metric by metric, repeats of a noted line included."""
    accumulator = Accumulator(60, 100)
    accumulator.add_sums(("p",), frozenset(), {"hits": 1, "count": 2.0}, 120.0)
    accumulator.note_repeatable(b"p:2|c", ("p",), frozenset(), {"hits": 1, "count": 2.0}, 120.0)
    accumulator.add(event(x=0.5))
    accumulator.add(event(count=1.0, hits=2))
    accumulator.add_repeats([b"p:2|c"], 121.0)

    assert {(("p",), frozenset(), 120): {"hits": 5, "count": 5.0, "x": 0.5}} == accumulator.swap().entries


def test_sketch_buckets_count_towards_the_pending_bound():
    """A distribution's sketch buckets are held like keys: past the bound, an event is refused whole."""
    accumulator = Accumulator(60, max_keys=5)
    spread = Event(("p",), frozenset(), {"hits": 1}, 0, samples={"t.dist": {f"p{i}": 1 for i in range(3)}})
    same = Event(("p",), frozenset(), {"hits": 1}, 0, samples={"t.dist": {"p0": 1}})
    more = Event(("p",), frozenset(), {"hits": 1}, 0, samples={"t.dist": {"p9": 1, "p10": 1}})

    taken = (accumulator.add(spread), accumulator.add(same), accumulator.add(more))

    assert ((True, True, False), 4) == (taken, accumulator.pending_keys)
