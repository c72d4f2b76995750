from hypothesis import given
from hypothesis import strategies as st

from hailwhale import encoding



def test_encodings_are_the_originals():
    """The root is _, one name is itself, a longer path is a JSON list with ', ' separators."""
    assert ["_", "country", '["country", "US"]'] == [
        encoding.encode(()),
        encoding.encode(("country",)),
        encoding.encode(("country", "US")),
    ]


@given(st.lists(st.text(min_size=1, max_size=8).filter(lambda s: s != '_'), max_size=5).map(tuple))
def test_decode_inverts_encode(path):
    """Decoding an encoding gives the path back, whatever the names."""
    assert path == encoding.decode(encoding.encode(path))


def test_a_name_that_looks_like_a_path_is_not_one():
    """A lone name like '["a", "b"]' encodes differently from the path a, b."""
    assert encoding.encode(('["a", "b"]',)) != encoding.encode(("a", "b"))
