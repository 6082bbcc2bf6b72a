"""A batch SIGKILLed at random moments, run again each time, pays for no job
twice and saves every video whole: benchmarks/chaos.py at test size."""

from __future__ import annotations

import time
from pathlib import Path

from aistudios_chromakey._journal import Journal
from benchmarks import chaos


def test_a_batch_killed_six_times_pays_for_no_job_twice() -> None:
    def readable(out: Path) -> None:
        Journal(out).load()  # what the next run reads first: a JournalError here would stop it

    started = time.monotonic()
    result = chaos.chaos(40, 6, seed=11, concurrency=8, after_kill=readable)
    assert result["kills"] == 6, result["landed"]  # the batch outlasts six kills: each one landed
    assert chaos.problems(result) == []
    assert result["duplicates"] == 0 and result["exports"] <= 40
    assert result["identical"] == result["finished"] and not result["wrong files"]
    # Every job either finished or, its export's answer lost to a kill, ended uncertain.
    assert result["finished"] + result["uncertain"] == 40 and not result["other failures"]
    # Only an export whose answer a kill cut off may be missing from the journal, one per kill at most.
    assert result["stranded elsewhere"] == [], result["answers lost"]
    assert result["crowded kills"] == 0 and len(result["stranded"]) <= result["uncertain"]
    assert time.monotonic() - started < 60
