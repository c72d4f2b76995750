from hypothesis import assume, given
from hypothesis import strategies as st

from hailwhale import encoding
from hailwhale.testing import names


def test_encodings_are_the_originals():
    """The root is _, one name is itself, a longer path is a JSON list with ', ' separators."""
    assert ["_", "country", '["country", "US"]'] == [
        encoding.encode(()),
        encoding.encode(("country",)),
        encoding.encode(("country", "US")),
    ]


@given(st.lists(names, max_size=5).map(tuple))
def test_decode_inverts_encode(path):
    """Decoding an encoding gives the path back (for paths not starting with a bracketed name)."""
    assume(not (len(path) == 1 and path[0].startswith("[")))
    assert path == encoding.decode(encoding.encode(path))
