"""The tutorial's own JavaScript, run unchanged against the simulator.

Why this test exists: the simulator is what every other test talks to, so if
it drifted into a dialect of our own (a field renamed, a path changed, a
status the real service never sends) our client could pass every test and
still fail against AI STUDIOS. The one outside authority on the protocol we
have is DeepBrain AI's tutorial ("크로마키 여러개 내보내기"). This test takes
its "전체 코드" (full code) block verbatim and changes only what has to change
to aim it at a loopback server: the host, the API key, and ``https`` ->
``http`` for the download. If the tutorial's code, run by Node, exports three
videos and downloads exactly the bytes the simulator serves, the simulator
speaks the documented protocol. Both versions of the tutorial run: the one
first published (host ``https://aistudios.com``) and the current one (host
``https://v2.aistudios.com``), which differ only in the host.

The tutorial waits 3 s after every poll. Node runs it with a preload that
makes each ``setTimeout`` 20 times shorter: the code and the requests it sends
are the tutorial's, only its tempo is the test's, so three jobs cost about a
second rather than twelve.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict

import pytest

from aistudios_chromakey.simulator import RenderPlan, Simulator

SEED = Path(__file__).resolve().parents[1].parent / "shared" / "seed"
#: The tutorial as first published (old host) and as it reads now (new host).
TUTORIALS = {
    "seed": (SEED / "multiple-chromakey-export.ko.md", "https://aistudios.com"),
    "current": (SEED / "multiple-chromakey-export.ko.current.md", "https://v2.aistudios.com"),
}
PLACEHOLDER_TOKEN = "'##JWT##'"
HTTPS_IMPORT = 'import https from "https"'
HTTPS_GET = "https.get("
NODE_TIMEOUT = 90  # seconds; about 1 s is expected
#: Loaded before the tutorial: each of its waits is 20 times shorter (3 s -> 0.15 s).
FASTER_TIMERS = (
    "const wait = globalThis.setTimeout;\nglobalThis.setTimeout = (f, ms, ...a) => wait(f, (ms ?? 0) / 20, ...a);\n"
)
NPM_TIMEOUT = 300  # seconds

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None, reason="node is not installed: the tutorial's JavaScript cannot run"
)


def full_code(markdown: str) -> str:
    """The ```js block under the "## 전체 코드" heading, verbatim."""
    match = re.search(r"^##\s*전체 코드\s*$.*?^```js[^\n]*\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL)
    assert match, "no ```js block under '## 전체 코드' in the tutorial"
    return match.group(1)


def aim_at(code: str, sim: Simulator, documented_host: str) -> str:
    """The tutorial's code with only the host, the key and https -> http
    changed. Each replacement must apply, so a change in the tutorial's text
    fails here rather than silently testing something else."""
    assert re.fullmatch(r"[\w.~+/=-]+", sim.token), "the token must fit in the tutorial's '...' literal as is"
    replacements: Dict[str, str] = {
        documented_host: sim.base_url,
        PLACEHOLDER_TOKEN: f"'{sim.token}'",
        HTTPS_IMPORT: 'import http from "http"',
        HTTPS_GET: "http.get(",
    }
    for old, new in replacements.items():
        count = code.count(old)
        assert count > 0, f"the tutorial's full code no longer contains {old!r}; update this test"
        code = code.replace(old, new)
    return code


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``node_modules`` folder holding ``node-fetch``, the tutorial's one
    dependency: ``$AISTUDIOS_NODE_MODULES`` if it has it, else installed once
    per session with npm."""
    given = os.environ.get("AISTUDIOS_NODE_MODULES")
    if given and (Path(given) / "node-fetch" / "package.json").is_file():
        return Path(given).resolve()
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            "node-fetch is unavailable: npm is not on PATH and $AISTUDIOS_NODE_MODULES does not point to "
            "a node_modules folder containing node-fetch"
        )
    prefix = tmp_path_factory.mktemp("node-fetch")
    result = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), "node-fetch@3"],
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT,
    )
    installed = prefix / "node_modules"
    if result.returncode != 0 or not (installed / "node-fetch" / "package.json").is_file():
        pytest.fail(f"npm install node-fetch@3 failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return installed


@pytest.mark.parametrize("version", sorted(TUTORIALS))
def test_tutorial_full_code_runs_against_the_simulator(node_modules: Path, tmp_path: Path, version: str) -> None:
    tutorial, documented_host = TUTORIALS[version]
    if not tutorial.is_file():
        pytest.skip(f"the tutorial is not here: {tutorial}")
    code = full_code(tutorial.read_text(encoding="utf-8"))
    (tmp_path / "videos").mkdir()  # the tutorial writes into ./videos/ but does not create it
    (tmp_path / "node_modules").symlink_to(node_modules, target_is_directory=True)

    with Simulator() as sim:
        # The first render is still running at the first poll, so the tutorial's waiting branch runs
        # too; the others are done at once (its loop sleeps 3 s after every poll, done or not).
        sim.plan(RenderPlan(seconds=0.3), RenderPlan(seconds=0), RenderPlan(seconds=0))
        (tmp_path / "tutorial.mjs").write_text(aim_at(code, sim, documented_host), encoding="utf-8")
        (tmp_path / "faster-timers.cjs").write_text(FASTER_TIMERS, encoding="utf-8")
        result = subprocess.run(
            ["node", "--require", "./faster-timers.cjs", "tutorial.mjs"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT,
        )
        output = f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"

        assert result.returncode == 0, output
        exports = sim.exports
        assert len(exports) == 3, output
        videos = sorted(path.name for path in (tmp_path / "videos").iterdir())
        assert len(videos) == 3, videos
        for export in exports:
            downloaded = tmp_path / "videos" / f"{export.key}.mp4"
            assert downloaded.is_file(), f"{downloaded.name} not among {videos}"
            assert downloaded.read_bytes() == sim.video(export.key), f"{downloaded.name} differs from the served video"
        assert result.stdout.count("Export succeed") == 3, output
        assert "Waiting... progress" in result.stdout, output
