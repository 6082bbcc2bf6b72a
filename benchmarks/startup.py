"""What start-up costs: ``import aistudios_chromakey`` and the CLI's
``--version`` against ``import requests`` and an empty interpreter.

Each a fresh process from the repository root, the commands interleaved,
after a warm-up round that fills a bytecode cache kept in a temporary folder
(PYTHONPYCACHEPREFIX), so no run compiles source. "Process" is start to exit;
"import alone" is perf_counter() around the import inside the process.
Median and best of 7 (``--quick``: 5); ratios use the best run (other load
can only add time). Target: import alone < 2x ``import requests``.

    python benchmarks/startup.py [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as common

COMMANDS = {
    "`python -c pass`": ["-c", "pass"],
    "`import requests`": ["-c", "import requests"],
    "`import aistudios_chromakey`": ["-c", "import aistudios_chromakey"],
    "`aistudios-chromakey --version`": ["-m", "aistudios_chromakey", "--version"],
}
TIMED = "import time; t = time.perf_counter(); import {0}; print(time.perf_counter() - t)"
IMPORTS = {"`import requests`": "requests", "`import aistudios_chromakey`": "aistudios_chromakey"}
TARGET = 2.0


def measure(runs: int) -> Dict[str, List[List[float]]]:
    """Per command: [process seconds..., import-alone seconds...]."""
    results: Dict[str, List[List[float]]] = {name: [[], []] for name in COMMANDS}
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for repetition in range(runs + 1):  # round 0 fills the cache
            for name, arguments in COMMANDS.items():
                seconds, _ = common.python(arguments, env)
                if repetition:
                    results[name][0].append(seconds)
                if name in IMPORTS:
                    _, printed = common.python(["-c", TIMED.format(IMPORTS[name])], env)
                    if repetition:
                        results[name][1].append(float(printed))
    return results


def beyond_requests() -> str:
    """What ``import aistudios_chromakey`` imports that ``import requests``
    does not, by each module's own time (``-X importtime``, the best of 3 runs
    on a warm bytecode cache), largest first."""
    own: Dict[str, Dict[str, float]] = {"requests": {}, "aistudios_chromakey": {}}
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for module in ["requests", "aistudios_chromakey"] * 4:  # the first round fills the cache
            command = [sys.executable, "-X", "importtime", "-c", f"import {module}"]
            done = subprocess.run(command, capture_output=True, text=True, cwd=common.REPO, env=env)
            lines = [line.split("|") for line in done.stderr.splitlines() if line.startswith("import time:")]
            for us, _, name in lines[1:]:
                ms = int(us.split(":")[1]) / 1000
                own[module][name.strip()] = min(ms, own[module].get(name.strip(), ms))
    extra = {name: ms for name, ms in own["aistudios_chromakey"].items() if name not in own["requests"]}
    top = ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(extra.items(), key=lambda item: -item[1])[:6])
    return f"{len(extra)} modules, {sum(extra.values()):.1f} ms in all ({top} ms)"


def main() -> int:
    flags = common.options(__doc__)
    runs = 5 if flags.quick else 7
    results = measure(runs)
    _, version = common.python(COMMANDS["`aistudios-chromakey --version`"])
    base_process = min(results["`import requests`"][0])
    base_import = min(results["`import requests`"][1])
    rows = []
    for name, (process, alone) in results.items():
        row = [name, f"{1000 * common.spread(process)[1]:.1f}", f"{1000 * min(process):.1f}"]
        row.append(f"{min(process) / base_process:.2f}x")
        if alone:
            row += [
                f"{1000 * common.spread(alone)[1]:.1f}",
                f"{1000 * min(alone):.1f}",
                f"{min(alone) / base_import:.2f}x",
            ]
        else:
            row += ["-", "-", "-"]
        rows.append(row)
    print("### Import and start-up\n")
    headers = ["what", "process, median ms", "best ms", "best vs `import requests`"]
    print(common.table([*headers, "import alone, median ms", "best ms", "best vs `import requests`"], rows))
    ratio = min(results["`import aistudios_chromakey`"][1]) / base_import
    target = f"target < {TARGET:g}x: {common.verdict(ratio < TARGET)}"
    print(f"\nimport aistudios_chromakey / import requests, import alone: **{ratio:.2f}x** ({target}).", end="")
    print(f" Best and median of {runs}. `--version` printed `{version.strip()}` (run as `python -m`).")
    print(f"What `import aistudios_chromakey` imports beyond `import requests`: {beyond_requests()}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
