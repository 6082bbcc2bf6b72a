"""Every benchmark script, one after the other, into ``benchmarks/RESULTS.md``.

Each script answers one question and runs alone as well
(``python benchmarks/<name>.py [--quick]``); this one runs them all in
their quick or full mode, each in its own process, and writes the machine
and every script's tables, with the time each took. The figures only mean
something side by side, on the same machine in the same run.

    python benchmarks/run.py [--quick [--full journal,throughput]] [--only journal,scale] [--out FILE]

``--quick`` takes about 2 minutes on 2 cores; the full run about 30.
``--quick --full NAMES`` runs the scripts named in their full mode and the
others quick, side by side in the one run; each section says which mode it
ran in.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as common

#: (script, the question it answers), in the order they run.
SCRIPTS = [
    ("structure", "What shape is the package: import circles, imports back up, lines?"),
    ("batches", "How long does a batch take, and what does its polling cost?"),
    ("polling", "Does adaptive polling beat the tutorial's fixed 3 s?"),
    ("throughput", "How fast does download_video save a large video, against curl, and where does the time go?"),
    ("download_memory", "Does download_video stream, or hold the video in memory?"),
    ("startup", "What do `--version` and importing the library cost?"),
    ("keepalive", "What does one step call cost, and does it reuse its connection?"),
    ("journal", "What does the resume journal cost a large batch?"),
    ("scale", "How does wall time scale with jobs and concurrency?"),
    ("downloads_in_batch", "Does a batch of large videos use the bandwidth it has?"),
    ("chaos", "Does a batch SIGKILLed at random moments, then run again, ever pay twice?"),
    ("keying", "How well and how fast does the keyer take the green away, beside ffmpeg's chromakey?"),
]


def run_script(name: str, quick: bool) -> str:
    """The script's Markdown, headed by its question and how long it took."""
    question = dict(SCRIPTS)[name]
    command = [sys.executable, str(common.REPO / "benchmarks" / f"{name}.py")] + (["--quick"] if quick else [])
    common.log(f"run: {name}.py{' --quick' if quick else ''}")
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=common.REPO)
    seconds = time.perf_counter() - started
    heading = f"## {name}.py: {question}\n\n_{'--quick' if quick else 'full'} mode, {seconds:.0f} s._\n\n"
    body = done.stdout.strip()
    if done.returncode != 0:
        body += f"\n\n**The script failed (exit status {done.returncode}); see its error output.**"
    return heading + body


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every script's quick mode")
    parser.add_argument("--only", default=None, help="comma-separated script names (default: all)")
    parser.add_argument("--full", default="", help="with --quick: these scripts (comma-separated) run in full")
    parser.add_argument("--out", type=Path, default=common.REPO / "benchmarks" / "RESULTS.md")
    flags = parser.parse_args(argv)
    names = [name for name, _ in SCRIPTS]
    chosen = flags.only.split(",") if flags.only else names
    full = [name for name in flags.full.split(",") if name]
    if full and not flags.quick:
        parser.error("--full only makes sense with --quick")
    unknown = sorted((set(chosen) | set(full)) - set(names))
    if unknown:
        parser.error(f"no such script: {', '.join(unknown)} (choose from {', '.join(names)})")
    began = time.perf_counter()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [run_script(name, flags.quick and name not in full) for name in names if name in chosen]
    minutes = (time.perf_counter() - began) / 60
    command = "python benchmarks/run.py" + (" --quick" if flags.quick else "")
    command += f" --full {flags.full}" if full else ""
    command += f" --only {flags.only}" if flags.only else ""
    mode = f"the quick run (`{command}`)" if flags.quick else f"the full run (`{command}`)"
    header = [
        "# Benchmark results",
        "",
        f"Written by {mode} in {minutes:.1f} minutes on {date}"
        + (
            " (each script's `--quick` mode: smaller batches, shorter renders, fewer repetitions"
            + (f"; in their full mode, in the same run: {', '.join(f'`{name}.py`' for name in full)}" if full else "")
            + "). Each section's first line says which mode it ran in."
            if flags.quick
            else "."
        ),
        f"Regenerate: `{command}`; each script also runs alone.",
        "",
        f"Machine: {common.machine()}.",
    ]
    text = "\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n"
    flags.out.write_text(text, encoding="utf-8")
    print(text)
    common.log(f"run: written to {flags.out} in {minutes:.1f} minutes")
    return 1 if any("**The script failed" in section for section in sections) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
