from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from hailwhale.aggregate import rollup
from hailwhale.model import events, keys
from hailwhale.model.fields import Limits
from hailwhale.model.schema import parse_schema
from hailwhale.testing.strategies import dimension_values, names

NOW = 1_795_830_000


@given(st.lists(names, min_size=1, max_size=4), dimension_values)
def test_every_key_of_a_write_is_in_the_pk_slot(pk, dims):
    """
    All keys one tag's writes touch (its buckets of every size, its index sets, its
    notes, fold marker and tokens) hash to one Redis Cluster slot, whatever the pk's characters.
    """
    event = events.from_fields({"pk": pk, "dimensions": dims}, NOW, Limits())
    entries = {(event.pk, event.dimensions, NOW // 60 * 60): dict(event.metrics)}
    schema = parse_schema("1m:2d,1h:35d,1d:3y")

    for write in rollup.plan(entries, schema, NOW).writes:
        tag = write.tag
        all_keys = [keys.applied_key(tag, "writer"), keys.dirty_key(tag), keys.folded_key(tag)]
        all_keys += [
            keys.data_key(tag, size.interval, bucket, metric, parent)
            for bucket, metric, parent in write.sums
            for size in schema.stored
        ]
        all_keys += [f"hw:{tag}:{suffix}" for suffix in write.sets]
        assert {key_slot(tag.encode())} == {key_slot(k.encode()) for k in all_keys}


def test_tags_escape_braces():
    """A pk with braces still makes one well-formed hash tag."""
    assert "{%7Ba%7D%25}" == keys.tag(("{a}%",))
