"""Does a batch SIGKILLed at random moments, then run again, ever pay twice?

300 jobs (``--quick``: 60 at concurrency 10), renders uniform 0.2-1.5 s,
concurrency 30, polls every 0.05 s, 100 kB videos at 4 MB/s, in a child
process against the simulator in this one. The child is SIGKILLed 20 times
(``--quick``: 6), 0.005-1.5 s (log-uniform) after it calls the library, so
that kills land in exports, polls, downloads and journal writes; each run
resumes the batch in the same folder, and a last run, not killed, completes
it. Render times and kill moments come from ``--seed``; where kills land does
not. Checked (exit status 1 if missed): no job exported twice, every video
byte-identical to its job's export. Reported: ``.part`` files left; exports
stranded (accepted, but no project key in the journal: only a job a kill
left ``exporting``, its answer on the wire, may be, one per kill at most);
jobs left uncertain (they end as ExportUncertain, by design).

    python benchmarks/chaos.py [--quick] [--seed N]
"""

from __future__ import annotations

import json
import math
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as common

KILL_AFTER = (0.005, 1.5)  # seconds after a run calls the library, log-uniform
LISTED = ("stranded elsewhere", "crowded kills", "answers lost", "parts", "extra files", "other failures")
CHILD = """
import json, sys
from aistudios_chromakey import BatchError, export_chromakeys
jobs, token, base_url, out, concurrency = json.loads(open(sys.argv[1]).read()), *sys.argv[2:5], int(sys.argv[5])
print("started", flush=True)
try:
    export_chromakeys(jobs, token, base_url=base_url, out_dir=out, poll_interval=0.05, concurrency=concurrency)
    failed = []
except BatchError as error:
    failed = [type(e).__name__ for _, e in error.failures]
print(json.dumps(failed), flush=True)
"""


def read_journal(folder: Path) -> Dict[int, Dict[str, Any]]:
    """The journal's last record of each job, by position, read as a re-run reads it
    (a header, a record per change; a torn last line never happened); raises if it cannot."""
    path = folder / ".aistudios-chromakey.json"
    lines = path.read_text(encoding="utf-8").split("\n") if path.exists() else []
    records = [json.loads(line) for line in lines[:-1] if line.strip()]
    if records and records[0] != {"format": "aistudios-chromakey journal", "version": 2}:
        raise ValueError(f"unexpected journal header {records[0]!r}")
    jobs: Dict[str, Dict[str, Any]] = {}
    for record in records[1:]:
        if record.get("forget") is True:
            jobs.pop(record["job"], None)
        else:
            jobs[record["job"]] = dict(record, position=int(record["position"]), state=str(record["state"]))
    return {record["position"]: record for record in jobs.values()}


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # whatever this process was started with
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run(sim: common.Simulator, files: Tuple[Path, ...], concurrency: int, kill: float = 0) -> Tuple[str, bytes]:
    """A run in a child, SIGKILLed ``kill`` s after it calls the library (0: never): the route
    of its last request when killed ("" if it ended by itself), and its output."""
    jobs, out, log = files
    argv = [sys.executable, "-c", CHILD, str(jobs), sim.token, sim.base_url, str(out), str(concurrency)]
    env, seen, landed = dict(os.environ, PYTHONPATH=str(common.REPO)), len(sim.log), ""
    with open(log, "ab") as errors:
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, env=env, preexec_fn=_default_signals)
    try:
        assert child.stdout is not None
        if not select.select([child.stdout], [], [], 60)[0] or child.stdout.readline() != b"started\n":
            raise RuntimeError(f"a run never started: {log.read_text()[-3000:]}")
        if kill:
            time.sleep(kill)
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                sent = sim.log[seen:]
                landed = sent[-1].route if sent else "nothing"
        printed = child.communicate(timeout=60 if kill else 300)[0]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    landed = landed if child.returncode else ""  # it ended by itself just before the kill
    if child.returncode != (-signal.SIGKILL if landed else 0):
        raise RuntimeError(f"a run failed (status {child.returncode}): {log.read_text()[-3000:]}")
    return landed, printed


def chaos(
    count: int, kills: int, seed: int = 7, concurrency: int = 30, after_kill: Optional[Callable[[Path], None]] = None
) -> Dict[str, Any]:
    """Kill runs of one batch until ``kills`` kills landed or a run finished
    it, then complete it; the figures and findings."""
    rng = random.Random(seed)
    jobs = common.jobs(count)
    position = {json.dumps(job, sort_keys=True): n for n, job in enumerate(jobs, start=1)}
    with common.Simulator(download_rate=4e6) as sim, tempfile.TemporaryDirectory(prefix="chaos-") as scratch:
        sim.plan(*[common.RenderPlan(seconds=rng.uniform(0.2, 1.5), size=100_000) for _ in jobs])
        sim.plan(seconds=0.2, size=100_000)  # exports beyond the batch's, if any were wrongly made
        files = Path(scratch, "jobs.json"), Path(scratch, "videos"), Path(scratch, "stderr.log")
        files[0].write_text(json.dumps(jobs), encoding="utf-8")
        out, landed, started = files[1], Counter[str](), time.perf_counter()
        exporting, crowded = set[int](), 0  # jobs kills left exporting; kills that left more than one
        while sum(landed.values()) < kills:
            where = run(sim, files, concurrency, math.exp(rng.uniform(*map(math.log, KILL_AFTER))))[0]
            if not where:
                break  # the batch is complete: nothing left to interrupt
            journal = read_journal(out)  # raises if a re-run could not read it
            now = {n for n, record in journal.items() if record["state"] == "exporting"}
            landed["unanswered export" if now - exporting else where] += 1  # else: the run's last request
            crowded, exporting = crowded + (len(now - exporting) > 1), now  # one export at a time is sent
            if after_kill is not None:
                after_kill(out)
        failures = Counter(json.loads(run(sim, files, concurrency)[1].decode().strip().splitlines()[-1]))
        wall = time.perf_counter() - started
        exports = sim.exports
        key_of = {position[json.dumps(export.body, sort_keys=True)]: export.key for export in exports}
        journal = read_journal(out)
        stranded = sorted(n for n, key in key_of.items() if journal.get(n, {}).get("project_key") != key)
        done = {n: record for n, record in journal.items() if record["state"] == "done"}
        videos = {path.name: path.read_bytes() for path in out.glob("*.mp4")}
        keys = set(key_of.values())
        return {
            "kills": sum(landed.values()),
            "landed": dict(landed),
            "jobs": count,
            "exports": len(exports),
            "duplicates": len(exports) - len(key_of),
            "finished": len(done),
            "identical": sum(videos.get(r["file"]) == sim.video(key_of[n]) for n, r in done.items() if n in key_of),
            "wrong files": sorted(n for n, data in videos.items() if _key(n) not in keys or data != sim.video(_key(n))),
            "extra files": sorted(set(videos) - {record["file"] for record in done.values()}),
            "parts": sorted(path.name for path in out.iterdir() if path.name.endswith(".part")),
            "stranded": stranded,
            "stranded elsewhere": [n for n in stranded if n not in exporting],  # not by a kill: say why
            "crowded kills": crowded,
            "answers lost": [line for line in files[2].read_text().splitlines() if "export request for" in line],
            "uncertain": failures.pop("ExportUncertain", 0),
            "other failures": dict(failures),
            "wall": round(wall, 1),
        }


def _key(name: str) -> str:
    return name.split(".")[0].split("-")[0]  # the project key of <key>.mp4, <key>-2.mp4...


def problems(result: Dict[str, Any]) -> List[str]:
    """What must never happen, in words; empty if nothing did."""
    lacking, wrong, twice = result["finished"] - result["identical"], result["wrong files"], result["duplicates"]
    found = [f"{twice} job(s) exported twice"] if twice else []
    return found + ([f"{lacking} finished job(s) lack their video; wrong files {wrong}"] if lacking or wrong else [])


def report(result: Dict[str, Any], seed: int) -> str:
    headers = ["seed", "kills", "jobs", "exports", "duplicates", "files byte-identical", "stranded", "uncertain"]
    headers += [".part left", "extra files", "other failures", "wall s"]
    row = [seed, result["kills"], result["jobs"], result["exports"], result["duplicates"]]
    row += [f"{result['identical']} of {result['finished']} finished", len(result["stranded"]), result["uncertain"]]
    row += [len(result["parts"]), len(result["extra files"]), sum(result["other failures"].values()), result["wall"]]
    landed = ", ".join(f"{route} {n}" for route, n in sorted(result["landed"].items()))
    notes = [f"Kills, by where they landed (a job left exporting, else the run's last request's route): {landed}."]
    notes.append("Targets: 0 duplicates; all finished files byte-identical; stranded only jobs a kill left exporting.")
    notes += [f"{name}: {result[name]}" for name in LISTED if result[name]]
    return common.table(headers, [row]) + "\n\n" + "\n".join(notes)


def main() -> int:
    flags = common.options(__doc__, ("--seed", {"type": int, "default": 7, "help": "render times and kill moments"}))
    count, kills, concurrency = (60, 6, 10) if flags.quick else (300, 20, 30)
    common.log(f"chaos: {count} jobs, {kills} kills, seed {flags.seed}")
    result = chaos(count, kills, flags.seed, concurrency)
    print(f"### Chaos: {count} jobs at concurrency {concurrency}, SIGKILLed {result['kills']} times, then completed\n")
    print(report(result, flags.seed), flush=True)
    found = problems(result)
    print("".join(f"\n**MISSED**: {problem}\n" for problem in found))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
