"""The widget's pure JavaScript (series building, stacking, formats, options, URL state) under `node --test`."""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_the_javascript_unit_tests_pass():
    """Every test in tests/js passes under Node's own test runner (Node 18 or newer; ./test installs it)."""
    node = shutil.which("node")
    assert node is not None, "node is not installed: ./test installs Debian's nodejs"

    run = subprocess.run(
        [node, "--test", *sorted(str(path) for path in (ROOT / "tests" / "js").glob("*.test.js"))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )

    failing = [line for line in run.stdout.splitlines() if line.startswith("not ok")]
    assert (0, []) == (run.returncode, failing), run.stdout[-4000:] + run.stderr[-2000:]
