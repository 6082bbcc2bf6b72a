"""Regenerate the simulator's clip, ``aistudios_chromakey/data/chromakey.mp4``;
and the synthetic studio scene ``keying.py`` measures the keyer on.

The scene: a swaying presenter (a face, dark hair with thin flyaway strands
of partial opacity, a teal shirt, an olive badge), soft-edged, in front of a
lit, noisy studio green that is not #00FF00, with the true alpha and
foreground colour of every pixel known. The shipped clip is that scene at
320x240, 15 fps, 2 s: H.264 yuv420p (High, faststart: moov before mdat) with
a mono AAC tone, about 9 kB, so that the simulator's 10 kB videos still fit
it. Pure Python and ffmpeg; the same bytes on every run with the same ffmpeg
build (single-threaded, bit-exact).

    python benchmarks/make_clip.py [--out FILE]
"""

from __future__ import annotations

import argparse
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, NamedTuple, Sequence, Tuple

CLIP = Path(__file__).resolve().parents[1] / "aistudios_chromakey" / "data" / "chromakey.mp4"

#: The backdrop at full light: a studio green, not #00FF00.
GREEN = (40, 170, 70)
SKIN, HAIR, TEAL, OLIVE = (224, 172, 140), (52, 36, 26), (0, 128, 128), (128, 128, 0)

Colour = Tuple[float, float, float]


class Frame(NamedTuple):
    """What the camera saw (rgb24), and the truth: the foreground's alpha
    (one byte a pixel) and its straight colour (rgb24)."""

    rgb: bytes
    alpha: bytes
    foreground: bytes


class _Layer:
    """The shapes drawn so far: alpha and premultiplied colour, front over back."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.alpha = [0.0] * (width * height)
        self.colour = [[0.0] * (width * height) for _ in range(3)]

    def paint(self, y: int, cover: List[float], colour: Colour) -> None:
        """Paint row ``y`` with ``colour`` at each pixel's coverage."""
        alpha, (red, green, blue) = self.alpha, self.colour
        for x, c in enumerate(cover):
            if c > 0.0:
                i, c = y * self.width + x, min(c, 1.0)
                keep = 1.0 - c
                alpha[i] = c + alpha[i] * keep
                red[i] = c * colour[0] + red[i] * keep
                green[i] = c * colour[1] + green[i] * keep
                blue[i] = c * colour[2] + blue[i] * keep


def _ramp(distance: float, soft: float) -> float:
    """The coverage of a pixel whose centre is ``distance`` outside an edge ``soft`` pixels wide."""
    return min(1.0, max(0.0, 0.5 - distance / soft))


def _ellipse(layer: _Layer, centre: Tuple[float, float], radii: Tuple[float, float], colour: Colour, soft: float,
             above: float = 1e9) -> None:  # fmt: skip
    """A soft-edged ellipse, cut off below the line ``y = above``."""
    (cx, cy), (rx, ry), reach = centre, radii, soft / 2 + 1
    for y in range(max(0, int(cy - ry - reach)), min(layer.height, int(cy + ry + reach) + 1)):
        v, cut = (y + 0.5 - cy) / ry, _ramp(y + 0.5 - above, soft)
        cover = [0.0] * layer.width
        for x in range(max(0, int(cx - rx - reach)), min(layer.width, int(cx + rx + reach) + 1)) if cut else ():
            u = (x + 0.5 - cx) / rx
            q = math.hypot(u, v)
            slope = math.hypot(u / rx, v / ry) / max(q, 1e-9)  # |grad q|: (q - 1) / slope is the distance
            cover[x] = cut * _ramp((q - 1.0) / max(slope, 1e-9), soft)
        layer.paint(y, cover, colour)


def _rectangle(layer: _Layer, x0: float, y0: float, x1: float, y1: float, colour: Colour, soft: float) -> None:
    for y in range(max(0, int(y0 - soft)), min(layer.height, int(y1 + soft) + 1)):
        across = min(_ramp(y0 - y - 0.5, soft), _ramp(y + 0.5 - y1, soft))
        cover = [0.0] * layer.width
        for x in range(max(0, int(x0 - soft)), min(layer.width, int(x1 + soft) + 1)):
            cover[x] = across * min(_ramp(x0 - x - 0.5, soft), _ramp(x + 0.5 - x1, soft))
        layer.paint(y, cover, colour)


def _strand(layer: _Layer, root: Tuple[float, float], lean: float, bend: float, length: float, width: float,
            opacity: float) -> None:  # fmt: skip
    """A hair rising from ``root``, ``width`` pixels wide, partly opaque, fading at its tip."""
    x_root, y_root = root
    for y in range(max(0, int(y_root - length)), min(layer.height, int(y_root))):
        rise = y_root - (y + 0.5)
        x = x_root + lean * rise + bend * rise * rise / length
        left, right = x - width / 2, x + width / 2
        cover = [0.0] * layer.width
        weight = opacity * min(1.0, 1.3 - rise / length)
        for column in range(max(0, int(left)), min(layer.width, int(right) + 1)):
            cover[column] = weight * max(0.0, min(column + 1.0, right) - max(float(column), left))
        layer.paint(y, cover, HAIR)


def scene(width: int, height: int, t: float) -> _Layer:
    """The presenter at ``t`` seconds; sizes follow the frame's height."""
    unit, layer = height / 270, _Layer(width, height)
    soft = 1.8 * unit
    sway = 0.035 * width * math.sin(2 * math.pi * t / 1.6)
    cx, body, head = width / 2 + sway, width / 2 + 0.8 * sway, 0.38 * height
    _ellipse(layer, (body, 1.18 * height), (0.3 * width, 0.5 * height), TEAL, soft)  # shoulders
    _rectangle(layer, cx - 15 * unit, head + 30 * unit, cx + 15 * unit, 0.72 * height, SKIN, soft)  # neck
    _ellipse(layer, (body, 0.8 * height), (0.05 * width, 0.06 * height), TEAL, soft)  # collar
    # The badge's edges are crisp, on whole pixels: a soft olive edge over teal would mix to a true green.
    left, top = round(body + 0.1 * width), round(0.85 * height)
    _rectangle(layer, left, top, left + round(0.05 * width), top + round(0.08 * height), OLIVE, 1e-6)
    _ellipse(layer, (cx, head - 2 * unit), (41 * unit, 50 * unit), HAIR, 1.5 * soft, above=head + 26 * unit)
    _ellipse(layer, (cx, head), (34 * unit, 44 * unit), SKIN, soft)  # face
    _ellipse(layer, (cx, head - 5 * unit), (38 * unit, 45 * unit), HAIR, 1.5 * soft, above=head - 10 * unit)
    rng = random.Random(11)
    for n in range(14):
        angle = math.pi * (0.15 + 0.7 * n / 13)
        root = (cx - 36 * unit * math.cos(angle), head - 5 * unit - 43 * unit * math.sin(angle))
        lean = -0.9 * math.cos(angle) + 0.15 * math.sin(2 * math.pi * t / 1.1 + n)
        shape = rng.uniform(-0.3, 0.3), rng.uniform(10, 24) * unit, rng.uniform(0.5, 0.9) * unit
        _strand(layer, root, lean, *shape, opacity=rng.uniform(0.35, 0.7))
    return layer


def backdrop(width: int, height: int) -> bytes:
    """The lit studio green without noise, rgb24: brightest above the centre."""
    plate = bytearray()
    for y in range(height):
        for x in range(width):
            dx, dy = (x - 0.5 * width) / width, (y - 0.35 * height) / height
            light = 1.05 - 0.55 * (dx * dx + dy * dy) + 0.05 * y / height
            plate += bytes(min(255, round(c * light)) for c in GREEN)
    return bytes(plate)


def frames(width: int, height: int, count: int, fps: float, noise: float = 4.0, seed: int = 5) -> Iterator[Frame]:
    """``count`` frames of the scene over the backdrop, with camera noise of
    about ``noise`` levels (one pattern, shifted each frame)."""
    plate, rng = backdrop(width, height), random.Random(seed)
    grain = [max(-3 * noise, min(3 * noise, rng.gauss(0.0, noise))) for _ in range(65521)]
    for n in range(count):
        layer = scene(width, height, n / fps)
        alpha, (red, green, blue) = layer.alpha, layer.colour
        shift = n * 7919
        rgb, fore = bytearray(3 * width * height), bytearray(3 * width * height)
        for i, a in enumerate(alpha):
            j, keep = 3 * i, 1.0 - a
            k = (j + shift) % 65519
            r, g, b = red[i], green[i], blue[i]
            rgb[j] = min(255, max(0, round(r + keep * plate[j] + grain[k])))
            rgb[j + 1] = min(255, max(0, round(g + keep * plate[j + 1] + grain[k + 1])))
            rgb[j + 2] = min(255, max(0, round(b + keep * plate[j + 2] + grain[k + 2])))
            if a > 0.0:
                fore[j], fore[j + 1], fore[j + 2] = (
                    min(255, round(r / a)),
                    min(255, round(g / a)),
                    min(255, round(b / a)),
                )
        yield Frame(bytes(rgb), bytes(round(255 * a) for a in alpha), bytes(fore))


def encode(rgb: Sequence[bytes], width: int, height: int, fps: float, out: Path, crf: int = 18, audio: str = "16k",
           extra: Sequence[str] = ()) -> None:  # fmt: skip
    """H.264 yuv420p MP4 (faststart) of rgb24 frames, with a mono AAC tone of ``audio`` bits/s."""
    command = f"ffmpeg -nostdin -loglevel error -y -f rawvideo -pix_fmt rgb24 -s {width}x{height} -r {fps:g} -i -"
    command += f" -f lavfi -i sine=frequency=220:sample_rate=16000:duration={len(rgb) / fps:g}"
    command += f" -c:a aac -b:a {audio} -ac 1 -c:v libx264 -pix_fmt yuv420p -crf {crf} -threads 1 -movflags +faststart"
    subprocess.run([*command.split(), *extra, str(out)], input=b"".join(rgb), check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=CLIP, help=f"where to write it (default: {CLIP})")
    out = parser.parse_args().out
    rgb = [frame.rgb for frame in frames(320, 240, 30, 15, noise=1.5)]
    exact = "-fflags +bitexact -flags:v +bitexact -flags:a +bitexact -x264-params keyint=30:no-scenecut=1"
    encode(rgb, 320, 240, 15, out, crf=28, audio="8k", extra=exact.split())
    print(f"{out}: {out.stat().st_size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
