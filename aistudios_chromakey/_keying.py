"""The key: measuring the backdrop's colour, and the ffmpeg filter graph that
removes it.

The keyer works on the video's own Y'CbCr planes, so that nothing is
converted to RGB and back. A pixel's excess of the key's channel over the
other two (its green excess, for a green backdrop) depends on its chroma
only; the alpha falls from 1 to 0 as that excess goes from ``tolerance`` to
``tolerance + softness`` times the key's own excess. Each pixel's colour is
then freed from the backdrop's share (unmixed, straight alpha), and what
excess remains is removed at constant luma (spill), so that edges neither
keep a green fringe nor darken.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import List, Sequence, Tuple

RGB = Tuple[int, int, int]

#: The side of the small frames the key is measured on (their border is sampled).
SAMPLE_WIDTH, SAMPLE_HEIGHT = 128, 72


@dataclass(frozen=True)
class Matrix:
    """How the video stores colour: luma weights (BT.601 or BT.709) and range."""

    kr: float
    kb: float
    limited: bool = True

    @classmethod
    def for_stream(cls, description: str, height: int) -> Matrix:
        """The matrix a player would assume for a stream described by ffmpeg
        (``yuv420p(tv, bt709)``): its tag, else BT.709 from 720 lines up."""
        hd = "bt709" in description or (
            "bt470bg" not in description and "smpte170m" not in description and height >= 720
        )
        full = "pc" in re.findall(r"\w+", description) and not description.startswith("yuvj")
        return cls(0.2126, 0.0722, not full) if hd else cls(0.299, 0.114, not full)

    @property
    def name(self) -> str:
        return "bt709" if self.kr < 0.25 else "bt601"

    @property
    def range(self) -> str:
        return "tv" if self.limited else "pc"

    @property
    def tags(self) -> List[str]:
        """ffmpeg's output options that record this matrix and range."""
        return ["-colorspace", "bt709" if self.name == "bt709" else "smpte170m", "-color_range", self.range]

    @property
    def scale(self) -> float:
        """RGB levels per chroma step."""
        return 255 / 224 if self.limited else 1.0

    def to_yuv(self, rgb: Sequence[float]) -> Tuple[float, float, float]:
        red, green, blue = rgb
        luma = self.kr * red + (1 - self.kr - self.kb) * green + self.kb * blue
        y = 16 + luma * 219 / 255 if self.limited else luma
        return (
            y,
            128 + (blue - luma) / (2 - 2 * self.kb) / self.scale,
            128 + (red - luma) / (2 - 2 * self.kr) / self.scale,
        )

    def to_rgb(self, yuv: Sequence[float]) -> RGB:
        y, u, v = yuv
        luma = (y - 16) * 255 / 219 if self.limited else y
        red, blue = luma + self.red(v), luma + self.blue(u)
        green = (luma - self.kr * red - self.kb * blue) / (1 - self.kr - self.kb)
        clip = [max(0, min(255, round(c))) for c in (red, green, blue)]
        return clip[0], clip[1], clip[2]

    def red(self, v: float) -> float:
        """R - Y' of a chroma value V."""
        return (v - 128) * (2 - 2 * self.kr) * self.scale

    def blue(self, u: float) -> float:
        """B - Y' of a chroma value U."""
        return (u - 128) * (2 - 2 * self.kb) * self.scale


@dataclass(frozen=True)
class Key:
    """The backdrop's colour (Y'CbCr), its channel and its excess over the others."""

    yuv: Tuple[float, float, float]
    channel: str  # "green" or "blue"
    excess: float
    matrix: Matrix

    @property
    def rgb(self) -> RGB:
        return self.matrix.to_rgb(self.yuv)

    @property
    def hex(self) -> str:
        return "#{:02X}{:02X}{:02X}".format(*self.rgb)


def excess(matrix: Matrix, u: float, v: float, channel: str) -> float:
    """How far the key's channel stands above the other two, in RGB levels."""
    red, blue = matrix.red(v), matrix.blue(u)
    green = -(matrix.kr * red + matrix.kb * blue) / (1 - matrix.kr - matrix.kb)
    return green - max(red, blue) if channel == "green" else blue - max(red, green)


#: A backdrop must stand out by this many RGB levels in its channel to be keyed.
MIN_EXCESS = 24.0


def key_of(yuv: Tuple[float, float, float], matrix: Matrix, what: str) -> Key:
    """The key for a colour, or ValueError saying why it cannot be one."""
    scores = {channel: excess(matrix, yuv[1], yuv[2], channel) for channel in ("green", "blue")}
    channel = max(scores, key=lambda name: scores[name])
    if scores[channel] < MIN_EXCESS:
        rgb = "#{:02X}{:02X}{:02X}".format(*matrix.to_rgb(yuv))
        raise ValueError(f"{what} {rgb} is not a green or blue backdrop colour (a key needs a saturated green or blue)")
    return Key(yuv, channel, scores[channel], matrix)


def measure(frames: bytes, matrix: Matrix) -> Key:
    """The key measured on small yuv444p frames: the median colour of their
    top edge and sides (the avatar stands on the bottom one). ValueError
    when they are not mostly one saturated colour."""
    w = SAMPLE_WIDTH
    plane = w * SAMPLE_HEIGHT
    border = [*range(w), *range(w, plane, w), *range(2 * w - 1, plane, w)]
    samples: List[Tuple[int, int, int]] = []
    for start in range(0, len(frames) - 3 * plane + 1, 3 * plane):
        y, u, v = (frames[start + n * plane : start + (n + 1) * plane] for n in range(3))
        samples += [(y[i], u[i], v[i]) for i in border]
    if not samples:
        raise ValueError("the video has no frame to measure the backdrop on")
    median = tuple(float(statistics.median(s[n] for s in samples)) for n in range(3))
    near = sum(abs(s[1] - median[1]) + abs(s[2] - median[2]) <= 16 for s in samples) / len(samples)
    key = key_of((median[0], median[1], median[2]), matrix, "the backdrop")
    if near < 0.5:
        raise ValueError(f"the frame's edges are not one backdrop colour: only {near:.0%} of them is near {key.hex}")
    return key


def graph(key: Key, width: int, height: int, tolerance: float, softness: float, source: str, output: str) -> str:
    """The filter graph keying ``[source]`` into ``[output]``, yuva420p."""
    matrix, channel = key.matrix, key.channel
    kr, kb = matrix.kr, matrix.kb
    kk = 1 - kr - kb if channel == "green" else kb
    lo, hi = tolerance * key.excess, (tolerance + softness) * key.excess

    def red(v: str) -> str:
        return f"(({v})-128)*{(2 - 2 * kr) * matrix.scale:.6f}"

    def blue(u: str) -> str:
        return f"(({u})-128)*{(2 - 2 * kb) * matrix.scale:.6f}"

    def over(u: str, v: str) -> str:
        """The excess expression of chroma ``u`` and ``v``."""
        green = f"(-({kr:.6f}*{red(v)}+{kb:.6f}*{blue(u)})/{1 - kr - kb:.6f})"
        if channel == "green":
            return f"({green}-max({red(v)},{blue(u)}))"
        return f"({blue(u)}-max({red(v)},{green}))"

    low, top = (16, 235) if matrix.limited else (0, 255)
    alpha = f"255*(1-clip(({over('x', 'y')}-{lo:.4f})/{hi - lo:.4f},0,1))+0.5"

    def unmix(level: float, blank: int, ceiling: int) -> str:
        """x less the key's share at alpha y; ``blank`` where y is 0."""
        return f"if(y,clip({level:.4f}+(x-{level:.4f})*255/max(y,64),{low},{ceiling})+0.5,{blank})"

    # Spill: lower the key's channel by the excess, raise the others, at constant luma.
    shift_b = (-(1 - kk) if channel == "blue" else kk) / ((2 - 2 * kb) * matrix.scale)
    shift_r = kk / ((2 - 2 * kr) * matrix.scale)
    spill = f"max(0,{over('x', 'y')})"
    y, u, v = key.yuv
    cap = 240 if matrix.limited else 255
    # The excess is computed on the chroma planes, stretched so that the soft band spans codes 64 to
    # 191 (keeping room on either side, so that pixels just short of the key keep their slope), and
    # scaled to full size, where it becomes the alpha. The scaler is the cubic B-spline (B=1, C=0):
    # smoothing, not interpolating, it does not sharpen the 4:2:0 chroma's noise and blocking into
    # the soft edges as an interpolating one would (a fifth less alpha error in benchmarks/keying.py).
    d = f"clip(({over('x', 'y')}-{lo:.4f})*{127.5 / (hi - lo):.6f}+64,0,255)"
    ramp = "255*(1-clip((val-64)/127.5,0,1))+0.5"
    steps = [
        f"[{source}]format=yuv420p,extractplanes=y+u+v[ky][ku][kv]",
        "[ku]split=3[ku1][ku2][ku3]",
        "[kv]split=3[kv1][kv2][kv3]",
        f"[ku1][kv1]lut2=c0='{alpha}',split[kah1][kah2]",
        f"[ku3][kv3]lut2=c0='{d}',scale={width}:{height}:flags=bicubic:param0=1:param1=0,lut=c0='{ramp}'"
        ",split[kaf1][kaf2]",
        f"[ku2][kah1]lut2=c0='{unmix(u, 128, cap)}',split[kum1][kum2]",
        f"[kv2][kah2]lut2=c0='{unmix(v, 128, cap)}',split[kvm1][kvm2]",
        f"[kum1][kvm1]lut2=c0='clip(x+{spill}*{shift_b:.6f},{low},{cap})+0.5'[kuo]",
        f"[kum2][kvm2]lut2=c0='clip(y+{spill}*{shift_r:.6f},{low},{cap})+0.5'[kvo]",
        f"[ky][kaf1]lut2=c0='{unmix(y, low, top)}'[kyo]",
        f"[kyo][kuo][kvo][kaf2]mergeplanes=mapping=0x00102030:format=yuva420p[{output}]",
    ]
    return ";".join(steps)
