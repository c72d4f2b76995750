"""
Capture real collectd packets as test fixtures: runs the installed collectd for a few
seconds with `load`, `memory`, `cpu` and `interface`, sending the same values plain,
signed and encrypted (user alice, password secret) to three local ports, and keeps the
first two datagrams of each as collectd_<level>_<n>.bin next to this file.

    python tests/data/capture_collectd.py
"""

import socket
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
LEVELS = ("none", "sign", "encrypt")


def main() -> None:
    sockets = {}
    for level in LEVELS:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        sockets[level] = sock
    servers = "\n".join(
        f'  <Server "127.0.0.1" "{sock.getsockname()[1]}">\n'
        + (
            ""
            if level == "none"
            else f'    SecurityLevel {level.title()}\n    Username "alice"\n    Password "secret"\n'
        )
        + "  </Server>"
        for level, sock in sockets.items()
    )
    with tempfile.TemporaryDirectory() as base:
        config = Path(base) / "collectd.conf"
        config.write_text(f'''Hostname "hw-capture"
FQDNLookup false
Interval 1
BaseDir "{base}"
PIDFile "{base}/collectd.pid"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin load
LoadPlugin memory
LoadPlugin cpu
LoadPlugin interface
<LoadPlugin network>
  FlushInterval 1
</LoadPlugin>
<Plugin network>
{servers}
</Plugin>
''')
        collectd = subprocess.Popen(["/usr/sbin/collectd", "-f", "-C", str(config)])
        try:
            for level, sock in sockets.items():
                for n in (1, 2):
                    (HERE / f"collectd_{level}_{n}.bin").write_bytes(sock.recv(65535))
        finally:
            collectd.terminate()
            collectd.wait()


if __name__ == "__main__":
    main()
