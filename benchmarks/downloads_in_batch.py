"""How close a batch of large videos comes to what the bandwidth allows.

50 jobs (``--quick``: 20), renders uniform 1-3 s from seed 7, videos of 40 MB
each served at 20 MB/s per connection (the simulator's ``download_rate=``),
``Client(token, base_url=..., max_polls_per_second=None).export_chromakeys``
at concurrency = jobs (no poll cap, which a batch of 50 barely meets
anyway), in a child process; the simulator in this one. In the same
run, N = jobs plain ``requests`` streams in parallel, discarding the bytes,
measure the aggregate bandwidth N connections get on this machine (N x 20
MB/s, or less where loopback and 2 cores cap it). Target: wall within 1.2x of

    ideal = schedule(renders, N) + one poll + jobs x size / aggregate

where schedule(renders, N) is when the last planned render ends with N slots.

    python benchmarks/downloads_in_batch.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aistudios_chromakey import wait_for_video
from benchmarks import _common as common

SIZE, RATE, TARGET = 40_000_000, 20e6, 1.2


def streams(urls: List[str]) -> Dict[str, Any]:
    """Every URL at once, one plain requests stream each, the bytes discarded."""
    received = [0] * len(urls)

    def fetch(index: int) -> None:
        with requests.get(urls[index], stream=True, timeout=60) as response:
            for chunk in response.iter_content(chunk_size=256 * 1024):
                received[index] += len(chunk)

    threads = [threading.Thread(target=fetch, args=(n,)) for n in range(len(urls))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"seconds": time.perf_counter() - started, "bytes": sum(received)}


def main() -> int:
    flags = common.options(__doc__)
    count = 20 if flags.quick else 50
    print(f"### Downloads in a batch: {count} videos of {SIZE / common.MB:g} MB at {RATE / common.MB:g} MB/s each\n")
    with common.Simulator(download_rate=RATE) as sim, tempfile.TemporaryDirectory(prefix="bench-downloads-") as out:
        sim.plan(*[common.RenderPlan(seconds=s, size=SIZE) for s in common.render_times(count)])
        common.log(f"downloads in batch: {count} jobs")
        batch = common.call(
            "benchmarks._common:export_batch",
            base_url=sim.base_url,
            token=sim.token,
            count=count,
            out_dir=out,
            concurrency=count,
            client=common.UNCAPPED,
        )
        schedule = common.ideal(common.planned(sim), count)
        urls = [wait_for_video(e.key, sim.token, base_url=sim.base_url) for e in sim.exports]
        common.log(f"downloads in batch: {count} plain streams in parallel")
        plain = common.call("benchmarks.downloads_in_batch:streams", urls=urls)
    aggregate = plain["bytes"] / plain["seconds"]
    ideal = schedule + common.ONE_POLL + count * SIZE / aggregate
    ratio = batch["wall"] / ideal
    rows = [
        [
            f"{count} plain requests streams at once, to nowhere",
            f"{plain['seconds']:.2f}",
            f"{aggregate / common.MB:.0f}",
        ],
        [
            f"export_chromakeys, concurrency={count}",
            f"{batch['wall']:.2f}",
            f"{count * SIZE / batch['wall'] / common.MB:.0f}",
        ],
        ["ideal", f"{ideal:.2f}", ""],
    ]
    print(common.table(["what", "wall s", "aggregate MB/s"], rows))
    print(
        f"\nideal = schedule {schedule:.2f} s + one poll {common.ONE_POLL:g} s + {count} x {SIZE / common.MB:g} MB / "
        f"{aggregate / common.MB:.0f} MB/s (measured; N x rate would be {count * RATE / common.MB:.0f} MB/s) "
        f"= {ideal:.2f} s. wall / ideal = **{ratio:.2f}x** (target <= {TARGET}x: {common.verdict(ratio <= TARGET)}). "
        f"The batch's MB/s counts its renders too. Client CPU {batch['cpu']:.2f} s, peak RSS "
        f"{batch['rss'] / common.MB:.1f} MB."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
