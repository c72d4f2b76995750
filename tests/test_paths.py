from hypothesis import given
from hypothesis import strategies as st

from hailwhale.model import paths


def test_encodings_are_the_originals():
    """The root is _, one name is itself, a longer path is a JSON list with ', ' separators."""
    assert ["_", "country", '["country", "US"]'] == [
        paths.encode(()),
        paths.encode(("country",)),
        paths.encode(("country", "US")),
    ]


@given(st.lists(st.text(min_size=1, max_size=8).filter(lambda s: s != "_"), max_size=5).map(tuple))
def test_decode_inverts_encode(path):
    """Decoding an encoding gives the path back, whatever the names."""
    assert path == paths.decode(paths.encode(path))


def test_a_name_that_looks_like_a_path_is_not_one():
    """A lone name like '["a", "b"]' encodes differently from the path a, b."""
    assert paths.encode(('["a", "b"]',)) != paths.encode(("a", "b"))
