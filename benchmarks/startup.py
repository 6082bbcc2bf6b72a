"""What start-up costs: ``aistudios-chromakey --version`` against an empty
interpreter, and ``import aistudios_chromakey`` against ``import requests``.

Each a fresh process from the repository root, the commands interleaved,
after a warm-up round that fills a bytecode cache kept in a temporary folder
(PYTHONPYCACHEPREFIX), so no run compiles source. "Process" is start to exit;
"import alone" is perf_counter() around the import inside the process.
Median and best of 7 (``--quick``: 3); ratios use the best run (other load
can only add time). ``--version`` runs the installed console script
(``aistudios-chromakey`` beside this Python) when there is one, with this
repository first on PYTHONPATH, else ``python -m aistudios_chromakey``.
Target: import alone < 2x ``import requests``; ``--version`` is reported
against ``python -c pass`` (no target set).

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
SCRIPT = Path(sys.executable).with_name("aistudios-chromakey")
if SCRIPT.is_file():
    COMMANDS["`aistudios-chromakey --version`"] = [str(SCRIPT), "--version"]
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


def own_times(arguments: List[str]) -> Dict[str, float]:
    """Each module this command imports, by its own time in ms (``-X
    importtime``, the best of 3 runs after one that fills the bytecode cache)."""
    own: Dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(common.REPO), env.get("PYTHONPATH")]))
        for _ in range(4):
            command = [sys.executable, "-X", "importtime", *arguments]
            done = subprocess.run(command, capture_output=True, text=True, cwd=common.REPO, env=env)
            lines = [line.split("|") for line in done.stderr.splitlines() if line.startswith("import time:")]
            for us, _, name in lines[1:]:
                ms = int(us.split(":")[1]) / 1000
                own[name.strip()] = min(ms, own.get(name.strip(), ms))
    return own


def beyond(arguments: List[str], base: List[str]) -> str:
    """What one command imports that the other does not, largest first."""
    seen = own_times(base)
    extra = {name: ms for name, ms in own_times(arguments).items() if name not in seen}
    top = ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(extra.items(), key=lambda item: -item[1])[:6])
    return f"{len(extra)} modules, {sum(extra.values()):.1f} ms in all ({top} ms)"


def main() -> int:
    flags = common.options(__doc__)
    runs = 3 if flags.quick else 7
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
    cli = min(results["`aistudios-chromakey --version`"][0]) / min(results["`python -c pass`"][0])
    how = "the console script" if SCRIPT.is_file() else "`python -m`"
    print(f" `aistudios-chromakey --version` / `python -c pass`, process: **{cli:.2f}x** (best runs).", end="")
    print(f" Best and median of {runs}. `--version` printed `{version.strip()}` (run as {how}).")
    library, requests = COMMANDS["`import aistudios_chromakey`"], COMMANDS["`import requests`"]
    print(f"What `import aistudios_chromakey` imports beyond `import requests`: {beyond(library, requests)}.")
    cli, empty = COMMANDS["`aistudios-chromakey --version`"], COMMANDS["`python -c pass`"]
    print(f"What `aistudios-chromakey --version` imports beyond `python -c pass`: {beyond(cli, empty)}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
