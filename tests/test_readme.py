"""The guides' examples run as a reader would paste them.

README.rst (English) and README.ko.rst (Korean) are checked alike: each
Python example runs on its own, in a fresh interpreter and an empty folder,
aimed at the simulator through ``AISTUDIOS_BASE_URL`` with the credentials it
shows, so the documented code is the tested code, unchanged. The jobs file
and the table a guide shows run through the commands it shows, the same way.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set

import pytest

from aistudios_chromakey.simulator import RenderPlan, Simulator

ROOT = Path(__file__).resolve().parents[1]
ENGLISH, KOREAN = GUIDES = ("README.rst", "README.ko.rst")
TEXT = {guide: (ROOT / guide).read_text(encoding="utf-8") for guide in GUIDES}
CREDENTIALS = {"token": "YOUR-API-KEY", "app_id": "YOUR-APP-ID", "user_key": "YOUR-USER-KEY"}
_CREDENTIAL_ENV = ("AISTUDIOS_API_KEY", "AISTUDIOS_APP_ID", "AISTUDIOS_USER_KEY", "AISTUDIOS_BASE_URL")


def _blocks(text: str, language: str) -> List[str]:
    blocks = []
    pattern = rf"^\.\. code-block:: {language}\n\n((?:   .*\n|\n)+)"
    for match in re.finditer(pattern, text, re.MULTILINE):
        lines = match.group(1).splitlines()
        blocks.append("\n".join(line[3:] for line in lines).strip() + "\n")
    return blocks


PYTHON = {guide: _blocks(TEXT[guide], "python") for guide in GUIDES}
EXAMPLES = [
    pytest.param(guide, index, id=f"{guide}-{index + 1}") for guide in GUIDES for index in range(len(PYTHON[guide]))
]
each_guide = pytest.mark.parametrize("guide", GUIDES)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(CREDENTIALS["token"], render_seconds=0, **{k: CREDENTIALS[k] for k in ("app_id", "user_key")}) as s:
        yield s


def _environment(sim: Simulator, **extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CREDENTIAL_ENV}
    return dict(env, AISTUDIOS_BASE_URL=sim.base_url, PYTHONPATH=str(ROOT), **extra)


def _python(script: str, cwd: Path, env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _imported_names(blocks: List[str]) -> Set[str]:
    """What the examples import from the library, e.g. ``aistudios_chromakey.Client``."""
    names = set()
    for block in blocks:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aistudios_chromakey"):
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_readme_has_its_examples() -> None:
    english = PYTHON[ENGLISH]
    assert len(english) >= 10
    assert any('token = "YOUR-API-KEY"' in block for block in english)
    assert any("request_export" in block and "download_video" in block for block in english)


def test_the_korean_guide_has_the_english_guides_examples() -> None:
    english, korean = PYTHON[ENGLISH], PYTHON[KOREAN]
    assert len(korean) >= len(english)  # a whole guide, not a summary
    assert _imported_names(english) <= _imported_names(korean)  # every function and class shown in English
    assert any('token = "YOUR-API-KEY"' in block for block in korean)
    assert any("request_export" in block and "download_video" in block for block in korean)
    assert any('app_id="YOUR-APP-ID", user_key="YOUR-USER-KEY"' in block for block in korean)
    assert "README.rst" in TEXT[KOREAN][:1000]  # it names the English guide near its top


def _setup_commands(text: str) -> List[str]:
    return [line for line in text.splitlines() if line.startswith("   $ python3 -m venv")]


def test_both_guides_show_the_same_two_setup_commands() -> None:
    english, korean = _setup_commands(TEXT[ENGLISH]), _setup_commands(TEXT[KOREAN])
    assert len(set(english)) == 2, english  # the demo, then the tests
    assert len(korean) == 2 and set(korean) == set(english), korean  # word for word


@pytest.mark.parametrize(("guide", "index"), EXAMPLES)
def test_each_python_example_runs_on_its_own(guide: str, index: int, sim: Simulator, tmp_path: Path) -> None:
    block = PYTHON[guide][index]
    env = _environment(sim)
    result = _python(block, tmp_path, env)
    assert result.returncode == 0, f"{guide} example {index + 1}:\n{block}\n{result.stderr}"
    if "export_chromakeys(" in block and "Simulator(" not in block:
        exported = len(sim.exports)
        assert exported >= 1
        again = _python(block, tmp_path, env)
        assert again.returncode == 0, again.stderr
        assert len(sim.exports) == exported  # a re-run is free


@each_guide
def test_the_step_by_step_example_exports_each_job_once(guide: str, sim: Simulator, tmp_path: Path) -> None:
    block = next(b for b in PYTHON[guide] if "request_export" in b)
    result = _python(block, tmp_path, _environment(sim))
    assert result.returncode == 0, result.stderr
    assert len(sim.exports) == 3
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 3


@each_guide
def test_show_progress_shows_each_step_and_each_tenth(guide: str, sim: Simulator, tmp_path: Path) -> None:
    sim.plan(RenderPlan(seconds=1.0))
    block = next(b for b in PYTHON[guide] if "show_progress()" in b)
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


@each_guide
def test_the_jobs_file_runs_and_a_rerun_is_skipped(guide: str, sim: Simulator, tmp_path: Path) -> None:
    (jobs_json,) = _blocks(TEXT[guide], "json")
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


@each_guide
def test_the_jobs_file_runs_on_v3_with_the_app_id_and_user_key(guide: str, sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "jobs.json").write_text(_blocks(TEXT[guide], "json")[0], encoding="utf-8")
    env = _environment(sim, AISTUDIOS_APP_ID=CREDENTIALS["app_id"], AISTUDIOS_USER_KEY=CREDENTIALS["user_key"])
    result = _command("run", "jobs.json", "--api", "v3", "-q", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 3
    models = _command("models", cwd=tmp_path, env=env)
    assert models.returncode == 0, models.stderr
    assert "M000004017" in models.stdout


def _table(guide: str) -> str:
    return next(b for b in _blocks(TEXT[guide], "text") if b.startswith("language,text,model,clothes"))


def _save_as_korean_excel_csv(table: str, path: Path) -> None:
    path.write_bytes(table.replace("\n", "\r\n").encode("cp949"))  # "CSV (쉼표로 분리)"


@each_guide
def test_the_table_saved_by_korean_excel_runs_with_its_filename_column(
    guide: str, sim: Simulator, tmp_path: Path
) -> None:
    _save_as_korean_excel_csv(_table(guide), tmp_path / "scripts.csv")
    env = _environment(sim, AISTUDIOS_API_KEY=CREDENTIALS["token"])
    result = _command("run", "scripts.csv", "--out", "clips", "--name", "{position:03d}-{text}", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    names = sorted(path.name for path in (tmp_path / "clips").glob("*.mp4"))
    assert names == ["002-안녕하세요, 저는 두번째 작업입니다.mp4", "intro.mp4"]  # the column wins over --name
    assert all("filename" not in export.body for export in sim.exports)


@each_guide
def test_a_run_without_a_key_sends_nothing_and_exits_2(guide: str, sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "jobs.json").write_text(_blocks(TEXT[guide], "json")[0], encoding="utf-8")
    result = _command("run", "jobs.json", cwd=tmp_path, env=_environment(sim))
    assert result.returncode == 2
    assert "AISTUDIOS_API_KEY" in result.stderr
    assert not sim.exports


def _shown_commands(text: str) -> List[List[str]]:
    """The guide's console lines that run the tool, as a reader types them."""
    lines = re.findall(r"^   \$ aistudios-chromakey (.+)$", text, re.MULTILINE)
    return [shlex.split(line) for line in dict.fromkeys(lines)]


def _expanded(pattern: str, folder: Path) -> List[str]:
    if "*" not in pattern:
        return []
    return sorted(str(match.relative_to(folder)) for match in folder.glob(pattern))


@each_guide
def test_each_command_the_guide_shows_runs(guide: str, sim: Simulator, tmp_path: Path) -> None:
    commands = _shown_commands(TEXT[guide])
    assert ["run", "jobs.json"] in commands
    (tmp_path / "jobs.json").write_text(_blocks(TEXT[guide], "json")[0], encoding="utf-8")
    _save_as_korean_excel_csv(_table(guide), tmp_path / "scripts.csv")
    env = _environment(sim, AISTUDIOS_APP_ID=CREDENTIALS["app_id"], AISTUDIOS_USER_KEY=CREDENTIALS["user_key"])
    for args in commands:
        if shutil.which("ffmpeg") is None and {"transparent", "--transparent", "--background"} & set(args):
            continue  # the commands that key the green away need ffmpeg; tests/test_finishing.py covers its absence
        args = [found for arg in args for found in (_expanded(arg, tmp_path) or [arg])]  # as a shell would
        result = _command(*args, cwd=tmp_path, env=env)
        assert result.returncode == 0, f"{guide}: $ aistudios-chromakey {shlex.join(args)}\n{result.stderr}"
