"""README.rst's Python examples run, in order, as a reader would paste them.

They are aimed at the simulator through ``AISTUDIOS_BASE_URL`` with the key
they show, so the documented code is the tested code, unchanged.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from aistudios_chromakey.simulator import RenderPlan, Simulator

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(text: str) -> list[str]:
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: python\n\n((?:   .*\n|\n)+)", text, re.MULTILINE):
        lines = match.group(1).splitlines()
        blocks.append("\n".join(line[3:] for line in lines).strip() + "\n")
    return blocks


def test_the_readme_examples_run_against_the_simulator(tmp_path: Path) -> None:
    blocks = _python_blocks((ROOT / "README.rst").read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    script = "\n".join(blocks)
    assert 'token = "YOUR-API-KEY"' in script
    with Simulator("YOUR-API-KEY", render_seconds=0) as sim:
        sim.plan(RenderPlan(seconds=0))
        env = dict(os.environ, AISTUDIOS_BASE_URL=sim.base_url, PYTHONPATH=str(ROOT))
        env.pop("AISTUDIOS_API_KEY", None)
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert len(sim.exports) == 6  # three by the step functions, three by the batch; re-runs were free
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 6
