"""README.rst's examples run as a reader would paste them.

Each Python example runs on its own, in a fresh interpreter and an empty
folder, aimed at the simulator through ``AISTUDIOS_BASE_URL`` with the
credentials it shows, so the documented code is the tested code, unchanged.
The jobs file and the table the README shows run through the command it
shows, the same way.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from aistudios_chromakey.simulator import RenderPlan, Simulator

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.rst").read_text(encoding="utf-8")
CREDENTIALS = {"token": "YOUR-API-KEY", "app_id": "YOUR-APP-ID", "user_key": "YOUR-USER-KEY"}
_CREDENTIAL_ENV = ("AISTUDIOS_API_KEY", "AISTUDIOS_APP_ID", "AISTUDIOS_USER_KEY", "AISTUDIOS_BASE_URL")


def _blocks(text: str, language: str) -> List[str]:
    blocks = []
    pattern = rf"^\.\. code-block:: {language}\n\n((?:   .*\n|\n)+)"
    for match in re.finditer(pattern, text, re.MULTILINE):
        lines = match.group(1).splitlines()
        blocks.append("\n".join(line[3:] for line in lines).strip() + "\n")
    return blocks


PYTHON = _blocks(README, "python")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(CREDENTIALS["token"], render_seconds=0, **{k: CREDENTIALS[k] for k in ("app_id", "user_key")}) as s:
        yield s


def _environment(sim: Simulator, **extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CREDENTIAL_ENV}
    return dict(env, AISTUDIOS_BASE_URL=sim.base_url, PYTHONPATH=str(ROOT), **extra)


def _python(script: str, cwd: Path, env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_readme_has_its_examples() -> None:
    assert len(PYTHON) >= 10
    assert any('token = "YOUR-API-KEY"' in block for block in PYTHON)
    assert any("request_export" in block and "download_video" in block for block in PYTHON)


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_each_python_example_runs_on_its_own(index: int, sim: Simulator, tmp_path: Path) -> None:
    block = PYTHON[index]
    env = _environment(sim)
    result = _python(block, tmp_path, env)
    assert result.returncode == 0, f"README example {index + 1}:\n{block}\n{result.stderr}"
    if "export_chromakeys(" in block and "Simulator(" not in block:
        exported = len(sim.exports)
        assert exported >= 1
        again = _python(block, tmp_path, env)
        assert again.returncode == 0, again.stderr
        assert len(sim.exports) == exported  # a re-run is free


def test_the_step_by_step_example_exports_each_job_once(sim: Simulator, tmp_path: Path) -> None:
    block = next(b for b in PYTHON if "request_export" in b)
    result = _python(block, tmp_path, _environment(sim))
    assert result.returncode == 0, result.stderr
    assert len(sim.exports) == 3
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 3


def test_show_progress_shows_each_step_and_each_tenth(sim: Simulator, tmp_path: Path) -> None:
    sim.plan(RenderPlan(seconds=1.0))
    block = next(b for b in PYTHON if "show_progress()" in b)
    result = _python(block, tmp_path, _environment(sim))
    assert result.returncode == 0, result.stderr
    assert "accepted: project key" in result.stderr
    assert re.search(r"project \w+: \d+% after \d+ s", result.stderr), result.stderr
    assert "saved" in result.stderr and "sha256" in result.stderr
    assert "YOUR-API-KEY" not in result.stderr


def _command(*args: str, cwd: Path, env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aistudios_chromakey", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_jobs_file_runs_and_a_rerun_is_skipped(sim: Simulator, tmp_path: Path) -> None:
    (jobs_json,) = _blocks(README, "json")
    assert len(json.loads(jobs_json)) == 3
    (tmp_path / "jobs.json").write_text(jobs_json, encoding="utf-8")
    env = _environment(sim, AISTUDIOS_API_KEY=CREDENTIALS["token"])
    first = _command("run", "jobs.json", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "exported in this run: 3" in first.stdout
    again = _command("run", "jobs.json", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert "already downloaded, skipped" in again.stderr
    assert "exported in this run: 0" in again.stdout
    assert len(sim.exports) == 3


def test_the_jobs_file_runs_on_v3_with_the_app_id_and_user_key(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "jobs.json").write_text(_blocks(README, "json")[0], encoding="utf-8")
    env = _environment(sim, AISTUDIOS_APP_ID=CREDENTIALS["app_id"], AISTUDIOS_USER_KEY=CREDENTIALS["user_key"])
    result = _command("run", "jobs.json", "--api", "v3", "-q", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 3
    models = _command("models", cwd=tmp_path, env=env)
    assert models.returncode == 0, models.stderr
    assert "M000004017" in models.stdout


def test_the_table_saved_by_korean_excel_runs_with_its_filename_column(sim: Simulator, tmp_path: Path) -> None:
    table = next(b for b in _blocks(README, "text") if b.startswith("language,text,model,clothes"))
    (tmp_path / "scripts.csv").write_bytes(table.replace("\n", "\r\n").encode("cp949"))  # "CSV (쉼표로 분리)"
    env = _environment(sim, AISTUDIOS_API_KEY=CREDENTIALS["token"])
    result = _command("run", "scripts.csv", "--out", "clips", "--name", "{position:03d}-{text}", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    names = sorted(path.name for path in (tmp_path / "clips").glob("*.mp4"))
    assert names == ["002-안녕하세요, 저는 두번째 작업입니다.mp4", "intro.mp4"]  # the column wins over --name
    assert all("filename" not in export.body for export in sim.exports)


def test_a_run_without_a_key_sends_nothing_and_exits_2(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "jobs.json").write_text(_blocks(README, "json")[0], encoding="utf-8")
    result = _command("run", "jobs.json", cwd=tmp_path, env=_environment(sim))
    assert result.returncode == 2
    assert "AISTUDIOS_API_KEY" in result.stderr
    assert not sim.exports
