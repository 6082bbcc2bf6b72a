"""DeepBrain AI's official V3 Python sample, run unchanged against the simulator.

As with the tutorial's JavaScript (``test_tutorial_fidelity.py``): the
sample is an outside authority on the V3 protocol, so if it exports three
videos from the simulator and saves exactly the bytes served, the simulator
speaks V3 as documented. Only the host and the token are changed, and the
token is minted from the simulator's own token endpoint, as a V3 user would.
The sample sleeps 3 s after every poll; it runs with ``time.sleep`` made 20
times shorter, so its tempo is the test's and everything it sends is its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest
import requests

from aistudios_chromakey.simulator import RenderPlan, Simulator

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "seed" / "v3-official-sample.py"
DOCUMENTED_HOST = "'https://app.deepbrain.io"
PLACEHOLDER_TOKEN = "'##JWT##'"
SAMPLE_TIMEOUT = 90  # seconds; about 1 s is expected
#: Runs the sample as a script, each of its sleeps 20 times shorter (3 s -> 0.15 s).
FASTER_SLEEPS = (
    "import runpy, time; sleep = time.sleep; time.sleep = lambda t: sleep(t / 20); "
    "runpy.run_path('sample.py', run_name='__main__')"
)

pytestmark = pytest.mark.skipif(not SAMPLE.is_file(), reason=f"the official sample is not here: {SAMPLE}")


def aim_at(code: str, base_url: str, token: str) -> str:
    """The sample with only its host and token changed; each must apply."""
    replacements: Dict[str, str] = {DOCUMENTED_HOST: f"'{base_url}", PLACEHOLDER_TOKEN: f"'{token}'"}
    for old, new in replacements.items():
        assert code.count(old) > 0, f"the official sample no longer contains {old!r}; update this test"
        code = code.replace(old, new)
    return code


def test_the_official_v3_sample_runs_against_the_simulator(tmp_path: Path) -> None:
    with Simulator() as sim:
        minted = requests.post(
            sim.base_url + "/api/odin/v3/auth/token",
            json={"appId": sim.app_id, "userKey": sim.user_key},
            timeout=5,
        )
        token = minted.json()["data"]["token"]
        # The first render is still running at the first poll, so the sample's waiting branch runs too.
        sim.plan(RenderPlan(seconds=0.5), RenderPlan(seconds=0), RenderPlan(seconds=0))
        (tmp_path / "sample.py").write_text(
            aim_at(SAMPLE.read_text(encoding="utf-8"), sim.base_url, token), encoding="utf-8"
        )
        result = subprocess.run(
            [sys.executable, "-c", FASTER_SLEEPS], cwd=tmp_path, capture_output=True, text=True, timeout=SAMPLE_TIMEOUT
        )
        output = f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"

        assert result.returncode == 0, output
        exports = sim.exports
        assert len(exports) == 3 and all(e.api == "v3" for e in exports), output
        assert all(r.headers.get("Authorization") == token for r in sim.requests("api", "/api/odin/v3/editor/"))
        videos = sorted(path.name for path in (tmp_path / "videos").iterdir())
        assert videos == sorted(f"{e.key}.mp4" for e in exports)
        for export in exports:
            saved = tmp_path / "videos" / f"{export.key}.mp4"
            assert saved.read_bytes() == sim.video(export.key), f"{saved.name} differs from the served video"
        assert result.stdout.count("Export succeed") == 3, output
        assert result.stdout.count("Download completed") == 3, output
        assert "Waiting... progress" in result.stdout, output
