"""How well and how fast ``aistudios_chromakey.video`` removes the backdrop,
against ffmpeg's ``chromakey`` filter.

Quality: the synthetic presenter of ``make_clip.py`` (soft-edged figure,
thin hair strands of partial opacity, a teal shirt, an olive badge,
swaying) over a lit, noisy studio green ((40, 170, 70) at full light, not
#00FF00), 480x270, 24 frames at 24 fps (``--quick``: 8), encoded as a
render service ships it (H.264 yuv420p, crf 18), with its true alpha and
foreground known. Keyed by ``make_transparent`` (PNG frames: the keyer
itself; WebM and MOV: after their codecs) and by ``chromakey`` as tutorials
use it (``0x00FF00:0.1:0.0``), at the best similarity/blend of a grid for
0x00FF00 (the best by the truth: an oracle), and at the best of the grid for
the colour ``measure_key`` finds (``--quick``: a smaller grid).
Against the truth: mean absolute alpha error over all pixels; holes (truly
opaque pixels keyed below 0.9) and halo (truly clear pixels keyed above 0.1);
on the edge (pixels of partial true alpha, and opaque ones within 2 px of
them): green spill (the mean premultiplied excess of green over red and
blue, 0-255) and the colour error of the result composited over grey.

Speed: the same scene at 1920x1080 (scaled up, with camera noise, H.264
crf 20), 4 s at 24 fps (``--quick``: 1 s), through ``make_transparent`` for
each format and ``composite`` over a colour, beside ``chromakey`` with the
same encoders: frames per second of wall time and ffmpeg's CPU time per
frame (of the fastest of 2 runs; ``--quick``: 1), and the default format's
keying time over the clip's duration. Reported, never asserted; the load
average before and after is printed beside them. Every run uses the ffmpeg
the library finds (``AISTUDIOS_FFMPEG=/path/to/ffmpeg`` chooses another).

    python benchmarks/keying.py [--quick]
"""

from __future__ import annotations

import functools
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aistudios_chromakey.video import composite, find_ffmpeg, make_transparent, measure_key
from benchmarks import _common as common
from benchmarks.make_clip import encode, frames

WIDTH, HEIGHT, FPS = 480, 270, 24
TUTORIAL = "0x00FF00:0.1:0.0"
#: The encoder settings of make_transparent and composite, for chromakey's runs.
ENCODERS = {
    "webm": "-c:v libvpx-vp9 -pix_fmt yuva420p -auto-alt-ref 0 -deadline realtime -cpu-used 8 -row-mt 1 "
    "-tile-columns 2 -b:v 0 -crf 30 -c:a libopus -f webm",
    "mov": "-c:v prores_ks -profile:v 4444 -qscale:v 2 -pix_fmt yuva444p10le -c:a pcm_s16le -f mov",
    "png": "-an -c:v png -compression_level 2 -f image2",
    "composite": "-c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p -c:a copy -movflags +faststart -f mp4",
}


class Truth:
    """The synthetic clip's true alpha and foreground, and its edge pixels."""

    def __init__(self, count: int) -> None:
        rendered = list(frames(WIDTH, HEIGHT, count, FPS))
        self.rgb = [frame.rgb for frame in rendered]
        self.alpha = b"".join(frame.alpha for frame in rendered)
        self.fore = b"".join(frame.foreground for frame in rendered)
        self.edges: List[int] = []
        size = WIDTH * HEIGHT
        for n, frame in enumerate(rendered):
            near = set()
            for found in re.finditer(rb"[\x01-\xfe]", frame.alpha):
                x, y = found.start() % WIDTH, found.start() // WIDTH
                near.add(found.start())
                for yy in range(max(0, y - 2), min(HEIGHT, y + 3)):
                    near.update(yy * WIDTH + xx for xx in range(max(0, x - 2), min(WIDTH, x + 3))
                                if frame.alpha[yy * WIDTH + xx] == 255)  # fmt: skip
            self.edges += sorted(n * size + i for i in near)

    def score(self, rgba: bytes) -> Dict[str, float]:
        keyed = rgba[3::4]
        if len(keyed) != len(self.alpha):
            raise RuntimeError(f"{len(keyed)} pixels keyed, {len(self.alpha)} expected")
        pairs = bytearray(2 * len(keyed))
        pairs[0::2], pairs[1::2] = keyed, self.alpha
        error = holes = opaque = halo = clear = 0
        for pair, count in Counter(memoryview(pairs).cast("H")).items():
            ours, true = pair & 255, pair >> 8
            error += abs(ours - true) * count
            if true == 255:
                opaque, holes = opaque + count, holes + (count if ours < 230 else 0)
            elif true == 0:
                clear, halo = clear + count, halo + (count if ours > 25 else 0)
        spill = colour = 0.0
        for i in self.edges:
            a, t = rgba[4 * i + 3] / 255, self.alpha[i] / 255
            r, g, b = rgba[4 * i : 4 * i + 3]
            spill += a * max(0, g - max(r, b))
            fr, fg, fb = self.fore[3 * i : 3 * i + 3]
            colour += abs(a * r - t * fr + 128 * (t - a)) + abs(a * g - t * fg + 128 * (t - a))
            colour += abs(a * b - t * fb + 128 * (t - a))
        edge = len(self.edges)
        return {
            "mae": error / 255 / len(keyed),
            "holes": 100 * holes / opaque,
            "halo": 100 * halo / clear,
            "spill": spill / edge,
            "colour": colour / 3 / edge,
        }

    def own_spill(self) -> float:
        total = 0.0
        for i in self.edges:
            r, g, b = self.fore[3 * i : 3 * i + 3]
            total += self.alpha[i] / 255 * max(0, g - max(r, b))
        return total / len(self.edges)


def ffmpeg(*arguments: str) -> bytes:
    done = subprocess.run([find_ffmpeg(), "-nostdin", "-loglevel", "error", "-y", *arguments], capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(arguments)} failed: {done.stderr.decode()[-600:]}")
    return done.stdout


def rgba(*source: str, filters: str = "null") -> bytes:
    return ffmpeg(*source, "-vf", f"{filters},format=rgba", "-f", "rawvideo", "-pix_fmt", "rgba", "-")


def quality(truth: Truth, clip: Path, work: Path, quick: bool) -> List[List[Any]]:
    rows: List[Tuple[str, Dict[str, float]]] = []
    png = make_transparent(clip, format="png", out_dir=work)
    rows.append(("make_transparent, PNG frames", truth.score(rgba("-i", str(png / "%06d.png")))))
    webm = make_transparent(clip, out_dir=work)
    rows.append(("make_transparent, WebM (after VP9)", truth.score(rgba("-c:v", "libvpx-vp9", "-i", str(webm)))))
    mov = make_transparent(clip, format="mov", out_dir=work)
    rows.append(("make_transparent, MOV (after ProRes)", truth.score(rgba("-i", str(mov)))))

    def key(setting: str) -> Dict[str, float]:
        return truth.score(rgba("-i", str(clip), filters=f"chromakey={setting}"))

    rows.append((f"chromakey={TUTORIAL} (tutorial)", key(TUTORIAL)))
    blends = (0.0, 0.02) if quick else (0.0, 0.01, 0.02, 0.05, 0.1)
    measured = "0x" + measure_key(clip)[1:]
    for colour, what, low in (("0x00FF00", "best of grid", 0.2), (measured, "measured key, best of grid", 0.02)):
        similarities = [round(low + step * (0.04 if quick else 0.02), 2) for step in range(3 if quick else 10)]
        common.log(f"chromakey grid at {colour}: {len(similarities) * len(blends)} settings")
        grid = {f"{colour}:{s:g}:{b:g}": key(f"{colour}:{s}:{b}") for s in similarities for b in blends}
        best = min(grid, key=lambda setting: grid[setting]["mae"])
        rows.append((f"chromakey={best} ({what})", grid[best]))
    best_mae = rows[4][1]["mae"]
    table = []
    for name, score in rows:
        ratio = score["mae"] / best_mae
        table.append([name, f"{score['mae']:.4f}", f"{ratio:.2f}x", f"{score['holes']:.2f}", f"{score['halo']:.3f}",
                      f"{score['spill']:.2f}", f"{score['colour']:.1f}"])  # fmt: skip
    return table


def speed(truth: Truth, work: Path, seconds: int, repeats: int) -> Tuple[List[List[str]], float]:
    hd = work / "hd.mp4"
    common.log(f"a 1920x1080 clip of {seconds} s")
    loop = [truth.rgb[n % len(truth.rgb)] for n in range(seconds * FPS)]
    encode(loop, WIDTH, HEIGHT, FPS, work / "small.mp4", crf=12)
    ffmpeg("-i", str(work / "small.mp4"), "-vf", "scale=1920:1080:flags=bicubic,noise=alls=2:allf=t", "-c:v",
           "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-c:a", "copy", str(hd))  # fmt: skip
    count = seconds * FPS

    def fps(run: Callable[[], object]) -> Tuple[float, float]:
        """Frames per second of wall time, and ffmpeg's CPU milliseconds per frame, of the fastest run."""
        wall, cpu = min(_timed(run) for _ in range(repeats))
        return count / wall, 1000 * cpu / count

    out = work / "out"
    out.mkdir()
    chroma = "chromakey=0x00FF00:0.28:0.02"
    decode, cpu = fps(lambda: ffmpeg("-i", str(hd), "-f", "null", "-"))
    rows = [["decoding the clip alone", f"{decode:.1f}", f"{cpu:.0f}", "", "", ""]]
    for fmt in ("webm", "mov", "png"):
        common.log(f"speed: {fmt}")
        ours = fps(functools.partial(make_transparent, hd, format=fmt, out_dir=out))
        target = out / ("ck_frames" if fmt == "png" else f"ck.{fmt}")
        if fmt == "png":
            target.mkdir(exist_ok=True)
            target /= "%06d.png"
        audio = [] if fmt == "png" else ["-map", "0:a?"]
        command = ["-i", str(hd), "-vf", chroma, "-map", "0:v:0", *audio, *ENCODERS[fmt].split(), str(target)]
        theirs = fps(functools.partial(ffmpeg, *command))
        rows.append([f"make_transparent(format={fmt!r})", *_cells(ours, theirs)])
    common.log("speed: composite")
    ours = fps(lambda: composite(hd, "#3050A0", out_dir=out))
    graph = f"color=0x3050A0:s=1920x1080:d=0.04[b];[0:v]split[c][k];[c][b]overlay[back];[k]{chroma}[f];[back][f]overlay"
    command = ["-i", str(hd), "-filter_complex", graph, "-map", "0:a?", *ENCODERS["composite"].split()]
    theirs = fps(functools.partial(ffmpeg, *command, str(out / "ck.mp4")))
    rows.append(['composite(background="#3050A0")', *_cells(ours, theirs)])
    return rows, FPS / float(rows[1][1])


def _cells(ours: Tuple[float, float], theirs: Tuple[float, float]) -> List[str]:
    return [f"{ours[0]:.1f}", f"{ours[1]:.0f}", f"{theirs[0]:.1f}", f"{theirs[1]:.0f}", f"{ours[0] / theirs[0]:.2f}x"]


def _timed(run: Callable[[], object]) -> Tuple[float, float]:
    """The wall time of ``run()``, and the CPU time of the processes it ran."""
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    run()
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> int:
    flags = common.options(__doc__)
    count, seconds, repeats = (8, 1, 1) if flags.quick else (24, 4, 2)
    load = Path("/proc/loadavg").read_text().split()[0]
    common.log(f"rendering {count} frames of the synthetic presenter")
    truth = Truth(count)
    with tempfile.TemporaryDirectory(prefix="bench-keying-") as folder:
        work = Path(folder)
        clip = work / "presenter.mp4"
        encode(truth.rgb, WIDTH, HEIGHT, FPS, clip)
        rows = quality(truth, clip, work, flags.quick)
        timing, ratio = speed(truth, work, seconds, repeats)
    share = sum(1 for a in truth.alpha if 0 < a < 255) / len(truth.alpha)
    print(f"### Keying quality ({WIDTH}x{HEIGHT}, {count} frames, {100 * share:.1f} % of pixels partly transparent)\n")
    headers = ["keyer", "alpha MAE", "vs best 0x00FF00", "holes %", "halo %", "edge spill", "edge colour error"]
    print(common.table(headers, rows))
    ours, best, spill = float(rows[0][1]), float(rows[4][1]), truth.own_spill()
    holes, halo, edge = (float(cell) for cell in rows[0][3:6])
    print(
        f"\nTargets, make_transparent (PNG frames): alpha MAE <= 0.1x the best 0x00FF00 chromakey's:"
        f" {ours / best:.2f}x,"
        f" {common.verdict(ours <= 0.1 * best)}; holes < 0.5 %: {common.verdict(holes < 0.5)}; halo < 0.5 %:"
        f" {common.verdict(halo < 0.5)}; edge spill near zero (the truth's own: {spill:.2f}):"
        f" {common.verdict(edge <= spill + 0.5)}."
    )
    print(f"\n### Keying speed (1920x1080, {seconds} s at {FPS} fps)\n")
    headers = ["what", "ours, frames/s", "CPU ms/frame", "chromakey, frames/s", "CPU ms/frame", "ours / chromakey"]
    print(common.table(headers, timing))
    verdict = common.verdict(ratio <= 1.0)
    version = ffmpeg("-version").decode().split("\n")[0].split(" Copyright")[0]
    print(
        f"\nmake_transparent (WebM, the default) takes **{ratio:.2f}x** the clip's duration (target <= 1x: {verdict});"
        f" {ratio * 30 / FPS:.2f}x for a 30 fps clip. chromakey runs at 0x00FF00:0.28:0.02 with the same encoders;"
        f" libvpx-vp9 with -deadline realtime -cpu-used 8 -row-mt 1. {version}. Best of {repeats}; load average"
        f" before and after: {load}, {Path('/proc/loadavg').read_text().split()[0]}.\n\n{common.machine()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
