"""Transparent and composited videos from chroma-key exports, with ffmpeg::

    from aistudios_chromakey.video import composite, make_transparent

    make_transparent("videos/intro.mp4")                # videos/intro.webm: VP9 with alpha
    make_transparent("videos/intro.mp4", format="mov")  # videos/intro.mov: ProRes 4444 with alpha
    composite("videos/intro.mp4", "studio.jpg")         # videos/intro_composite.mp4

The backdrop's colour is measured on each clip. Only the standard library and
an ``ffmpeg`` binary are used: ``$AISTUDIOS_FFMPEG``, else the one on
``PATH``, else the one ``pip install "aistudios-chromakey[video]"`` brings.

Each output is written under a temporary name beside its final one and
renamed once ffmpeg has finished it: a failed or killed run leaves nothing
under the final name, and an existing output is only ever replaced by a whole
new one. The clip itself is never changed.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Dict, FrozenSet, List, Optional, Tuple, Union, cast

from . import _keying
from ._reports import AIStudiosError

__all__ = [
    "POSITIONS",
    "FFmpegMissing",
    "InvalidVideoInput",
    "VideoError",
    "check_background",
    "check_ffmpeg",
    "composite",
    "find_ffmpeg",
    "make_transparent",
    "measure_key",
]

logger = logging.getLogger("aistudios_chromakey")

PathLike = Union[str, "os.PathLike[str]"]
Colour = Union[str, Tuple[int, int, int]]
Progress = Callable[[float], None]

#: The encoders (video, audio) each output needs.
ENCODERS: Dict[str, Tuple[str, ...]] = {
    "webm": ("libvpx-vp9", "libopus"),
    "mov": ("prores_ks", "pcm_s16le"),
    "png": ("png",),
    "composite": ("libx264", "aac"),
}
_VP9 = "-c:v libvpx-vp9 -pix_fmt yuva420p -auto-alt-ref 0 -deadline realtime -cpu-used 8 -row-mt 1 -tile-columns 2"
_ENCODE = {
    "webm": f"{_VP9} -b:v 0 -crf 30 -c:a libopus -b:a 128k -f webm",
    "mov": "-c:v prores_ks -profile:v 4444 -qscale:v 2 -pix_fmt yuva444p10le -vendor apl0 -c:a pcm_s16le -f mov",
    "png": "-c:v png -compression_level 2 -f image2",
    "composite": "-c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p -movflags +faststart -f mp4",
}
#: The named places :func:`composite` can put the avatar.
POSITIONS = ("center", "top", "bottom", "left", "right", "top-left", "top-right", "bottom-left", "bottom-right")
_IMAGES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class VideoError(AIStudiosError):
    """ffmpeg failed on a clip, or the clip's backdrop cannot be keyed.

    :ivar stderr: the last lines ffmpeg wrote, when it failed.
    """

    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


class FFmpegMissing(VideoError):
    """No ffmpeg was found, or it lacks an encoder the output needs.

    :ivar encoders: the missing encoders (empty when ffmpeg itself is missing).
    """

    def __init__(self, message: str, *, encoders: Tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.encoders = encoders


class InvalidVideoInput(VideoError, ValueError):
    """An argument is wrong (a missing file, an unknown format, a bad colour):
    raised before ffmpeg runs."""


def find_ffmpeg() -> str:
    """The ffmpeg to use: ``$AISTUDIOS_FFMPEG``, else ``ffmpeg`` on ``PATH``,
    else imageio-ffmpeg's; :class:`FFmpegMissing` saying how to get one."""
    named = os.environ.get("AISTUDIOS_FFMPEG")
    if named:
        found = shutil.which(named)
        if found is None:
            raise FFmpegMissing(f"AISTUDIOS_FFMPEG={named!r} is not an executable file")
        return found
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg  # type: ignore[import-not-found,unused-ignore]

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError, OSError):
        raise FFmpegMissing(
            "ffmpeg was not found. Install it (Debian/Ubuntu: sudo apt install ffmpeg; macOS: brew install ffmpeg;"
            ' Windows: winget install ffmpeg), or run: pip install "aistudios-chromakey[video]"'
        ) from None


@functools.lru_cache(maxsize=8)
def _encoders(ffmpeg: str) -> FrozenSet[str]:
    command = [ffmpeg, "-hide_banner", "-nostdin", "-encoders"]
    listing = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False).stdout
    return frozenset(re.findall(r"^ [VAS][\w.]{5} (\S+)", listing, re.MULTILINE))


def check_ffmpeg(format: str = "webm") -> str:
    """The ffmpeg to use for ``format`` (``"webm"``, ``"mov"``, ``"png"`` or
    ``"composite"``), checked to have the encoders it needs; else
    :class:`FFmpegMissing` naming them."""
    if format not in ENCODERS:
        raise InvalidVideoInput(f"format: {format!r} is not one of {', '.join(ENCODERS)}")
    ffmpeg = find_ffmpeg()
    missing = tuple(name for name in ENCODERS[format] if name not in _encoders(ffmpeg))
    if missing:
        raise FFmpegMissing(
            f"{ffmpeg} cannot write {format}: it has no {' or '.join(missing)} encoder. Install an ffmpeg built"
            ' with it (Debian/Ubuntu and Homebrew build theirs so), or pip install "aistudios-chromakey[video]"'
            " and set AISTUDIOS_FFMPEG to the ffmpeg it brings (python -m imageio_ffmpeg shows where)",
            encoders=missing,
        )
    return ffmpeg


@dataclass(frozen=True)
class _Clip:
    path: Path
    width: int
    height: int
    duration: Optional[float]
    audio: Optional[str]  # the audio codec, if there is audio
    matrix: _keying.Matrix
    frames: bytes  # frames 1, 13 and 25, small, yuv444p: the key is measured on their border


def _probe(ffmpeg: str, video: Path) -> _Clip:
    size = f"{_keying.SAMPLE_WIDTH}:{_keying.SAMPLE_HEIGHT}"
    command = [ffmpeg, "-hide_banner", "-nostdin", "-i", str(video.absolute()), "-map", "0:v:0", "-frames:v", "3"]
    command += ["-vf", f"framestep=12,scale={size}:flags=area,format=yuv444p", "-f", "rawvideo", "pipe:1"]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    said = done.stderr.decode("utf-8", "replace")
    head = re.split(r"\nOutput #0|\nStream mapping:", said)[0]
    stream = re.search(r"Stream #0:\d+\S*: Video: [^,]*, (\w+(?:\([^)]*\))?)(.*)", head)
    sizes = re.findall(r"\b(\d{2,5})x(\d{2,5})\b", stream.group(2)) if stream else []
    if done.returncode != 0 or stream is None or not sizes:
        raise VideoError(f"ffmpeg cannot read {video} as a video:\n{_tail(said)}", stderr=_tail(said))
    width, height = int(sizes[0][0]), int(sizes[0][1])
    if re.search(r"rotation of -?(90|270)\.", head):
        width, height = height, width
    hours = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", head)
    duration = int(hours[1]) * 3600 + int(hours[2]) * 60 + float(hours[3]) if hours else None
    audio = re.search(r"Stream #0:\d+\S*: Audio: (\w+)", head)
    matrix = _keying.Matrix.for_stream(stream.group(1), height)
    return _Clip(video, width, height, duration, audio[1] if audio else None, matrix, done.stdout)


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _key(clip: _Clip, key_color: Optional[Colour]) -> _keying.Key:
    try:
        if key_color is not None:
            return _keying.key_of(clip.matrix.to_yuv(_colour(key_color, "key_color")), clip.matrix, "key_color")
        key = _keying.measure(clip.frames, clip.matrix)
    except ValueError as error:
        hint = "" if key_color is not None else ' (pass key_color="#RRGGBB" to give it)'
        raise VideoError(f"{clip.path}: {error}{hint}") from None
    logger.info("%s: the backdrop measures %s (%s)", clip.path.name, key.hex, key.channel)
    return key


def _colour(value: object, what: str) -> Tuple[int, int, int]:
    """``"#RRGGBB"`` or ``(r, g, b)`` as a tuple; InvalidVideoInput otherwise."""
    if isinstance(value, str) and re.fullmatch(r"\s*#[0-9a-fA-F]{6}\s*", value):
        number = int(value.strip()[1:], 16)
        return number >> 16, (number >> 8) & 255, number & 255
    if isinstance(value, tuple) and len(value) == 3 and all(type(c) is int and 0 <= c <= 255 for c in value):
        return value[0], value[1], value[2]
    raise InvalidVideoInput(f'{what}: {value!r} is not a colour like "#3050A0" or (48, 80, 160)')


def _inputs(
    video: PathLike, out_dir: Optional[PathLike], key_color: Optional[Colour], shape: Tuple[float, float]
) -> Tuple[Path, Path]:
    """The checked video and output folder."""
    source = _file(video, "video")
    folder = Path(out_dir) if out_dir is not None else source.parent
    if not folder.is_dir():
        raise InvalidVideoInput(f"out_dir: no such folder: {str(folder.resolve())!r}")
    if key_color is not None:
        _colour(key_color, "key_color")
    tolerance, softness = shape
    if not (0 <= tolerance < 1 and 0 < softness <= 1):
        raise InvalidVideoInput(
            f"tolerance={tolerance!r} must be from 0 to below 1, softness={softness!r} above 0 to 1"
        )
    return source, folder


def _file(path: PathLike, what: str) -> Path:
    found = Path(path)
    if not found.is_file():
        raise InvalidVideoInput(f"{what}: no such file: {str(found.resolve())!r}")
    return found


def _target(source: Path, target: Path, folder: bool) -> Path:
    if target.exists() and target.is_dir() != folder:
        kind = "a folder" if target.is_dir() else "a file"
        raise InvalidVideoInput(f"the output {str(target)!r} exists and is {kind}: move it or choose another out_dir")
    if target.exists() and target.resolve() == source.resolve():
        raise InvalidVideoInput(f"the output would replace the video itself ({target}): choose another out_dir")
    return target


def _write(
    target: Path, command: List[str], clip: _Clip, progress: Optional[Progress], timeout: Optional[float]
) -> Path:
    """Run ffmpeg into a temporary name beside ``target`` (``{}`` in the
    command's last word; a folder when that is a frame pattern), then rename
    it to ``target``."""
    stem = target.name.encode("utf-8")[:60].decode("utf-8", errors="ignore")
    temporary = target.with_name(f".{stem}.{secrets.token_hex(4)}.part").absolute()
    frames = command[-1] != "{}"
    command[-1] = command[-1].format(str(temporary).replace("%", "%%") if frames else temporary)
    try:
        if frames:
            temporary.mkdir()
        _run(command, clip.duration, progress, timeout)
        old = temporary.with_suffix(".old")
        if frames and target.exists():
            os.replace(target, old)
        os.replace(temporary, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        elif temporary.exists():
            temporary.unlink()
    logger.info("wrote %s", target)
    return target


def _run(command: List[str], duration: Optional[float], progress: Optional[Progress], timeout: Optional[float]) -> None:
    """Run ffmpeg, reporting its progress; VideoError with its last words if it fails."""
    options = ["-hide_banner", "-nostdin", "-loglevel", "error", "-progress", "pipe:1", "-nostats"]
    command = [command[0], *options, *command[1:]]
    logger.debug("running %s", subprocess.list2cmdline(command))
    late = threading.Event()
    with tempfile.TemporaryFile() as errors:
        with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors) as process:

            def stop() -> None:
                late.set()
                process.kill()

            timer = threading.Timer(timeout or 0, stop)
            if timeout:
                timer.start()
            try:
                _follow(process.stdout, duration, progress)
            finally:
                timer.cancel()
                if process.poll() is None:
                    process.kill()
        if process.returncode != 0:
            errors.seek(max(0, os.fstat(errors.fileno()).st_size - 8192))
            said = _tail(errors.read().decode("utf-8", "replace"))
            why = (
                f"did not finish within {timeout:g} s"
                if late.is_set()
                else f"failed (exit status {process.returncode})"
            )
            raise VideoError(f"ffmpeg {why}" + (f":\n{said}" if said else ""), stderr=said)
    if progress:
        progress(1.0)


def _follow(lines: Optional[IO[bytes]], duration: Optional[float], progress: Optional[Progress]) -> None:
    """Call ``progress`` with the fraction done as ffmpeg's progress lines come (below 1.0)."""
    done = 0.0
    for line in lines or ():
        name, _, value = line.decode("ascii", "replace").strip().partition("=")
        if name in ("out_time_us", "out_time_ms") and value.isdigit() and duration and progress:
            fraction = min(0.999, int(value) / 1e6 / duration)
            if fraction > done:
                done = fraction
                progress(fraction)


def measure_key(video: PathLike) -> str:
    """The backdrop colour of ``video``, as :func:`make_transparent` measures it: ``"#RRGGBB"``."""
    return _key(_probe(find_ffmpeg(), _file(video, "video")), None).hex


def make_transparent(
    video: PathLike,
    *,
    format: str = "webm",
    out_dir: Optional[PathLike] = None,
    key_color: Optional[Colour] = None,
    tolerance: float = 0.3,
    softness: float = 0.45,
    progress: Optional[Progress] = None,
    timeout: Optional[float] = None,
) -> Path:
    """The clip with its backdrop made transparent; returns the output's path.

    ``format``: ``"webm"`` (``<stem>.webm``, VP9 with alpha, Opus audio),
    ``"mov"`` (``<stem>.mov``, ProRes 4444 with alpha, PCM audio) or ``"png"``
    (``<stem>_frames/000001.png`` and on, RGBA, no audio), in ``out_dir``
    (default: the video's folder). ``key_color`` (``"#RRGGBB"`` or
    ``(r, g, b)``) replaces the measured backdrop colour. A pixel whose excess
    of the key's channel (green or blue) over the other two is at most
    ``tolerance`` times the key's own stays opaque; from ``tolerance +
    softness`` times it, it is transparent. ``progress(fraction)`` is called
    as ffmpeg advances, last with 1.0; ``timeout`` (seconds) stops ffmpeg.
    """
    if format not in ("webm", "mov", "png"):
        raise InvalidVideoInput(f"format: {format!r} is not one of webm, mov, png")
    source, folder = _inputs(video, out_dir, key_color, (tolerance, softness))
    name = f"{source.stem}_frames" if format == "png" else f"{source.stem}.{format}"
    target = _target(source, folder / name, folder=format == "png")
    ffmpeg = check_ffmpeg(format)
    clip = _probe(ffmpeg, source)
    graph = _keying.graph(_key(clip, key_color), clip.width, clip.height, tolerance, softness, "0:v:0", "keyed")
    matrix = clip.matrix
    rgba = f"scale=in_color_matrix={matrix.name}:in_range={matrix.range},format=rgba"
    last = {"mov": "format=yuva444p10le", "png": rgba}.get(format, "null")
    graph += f";[keyed]{last}[out]"
    command = [ffmpeg, "-i", str(source.absolute()), "-filter_complex", graph, "-map", "[out]"]
    command += ["-an"] if format == "png" else ["-map", "0:a:0?", *matrix.tags]
    command += [*_ENCODE[format].split(), "{}/%06d.png" if format == "png" else "{}"]
    return _write(target, command, clip, progress, timeout)


def composite(
    video: PathLike,
    background: Union[PathLike, Colour],
    *,
    out_dir: Optional[PathLike] = None,
    scale: float = 1.0,
    position: Union[str, Tuple[int, int]] = "center",
    key_color: Optional[Colour] = None,
    tolerance: float = 0.3,
    softness: float = 0.45,
    progress: Optional[Progress] = None,
    timeout: Optional[float] = None,
) -> Path:
    """The avatar over a background, as a finished MP4 (H.264, AAC audio,
    faststart): ``<stem>_composite.mp4`` in ``out_dir`` (default: the video's
    folder); returns its path.

    ``background``: an image file, a video file (looped, or cut, to the
    clip's length) or a colour (``"#3050A0"`` or ``(r, g, b)``), scaled to
    cover the clip's frame and cropped. The keyed clip is scaled by ``scale``
    and placed at ``position``: one of :data:`POSITIONS` or the ``(x, y)`` of
    its top-left corner in pixels; by default it stays where the service
    framed it. The other arguments are :func:`make_transparent`'s.
    """
    source, folder = _inputs(video, out_dir, key_color, (tolerance, softness))
    if type(scale) not in (int, float) or not 0.05 <= scale <= 8:
        raise InvalidVideoInput(f"scale: {scale!r} is not a number from 0.05 to 8")
    named = isinstance(position, str) and position in POSITIONS
    if not named and not (isinstance(position, tuple) and len(position) == 2 and all(type(n) is int for n in position)):
        raise InvalidVideoInput(
            f"position: {position!r} is neither (x, y) in whole pixels nor one of {', '.join(POSITIONS)}"
        )
    colour = isinstance(background, tuple) or (isinstance(background, str) and background.lstrip().startswith("#"))
    rgb = _colour(background, "background") if colour else None
    image = None if colour else _file(cast(PathLike, background), "background")
    target = _target(source, folder / f"{source.stem}_composite.mp4", folder=False)
    if image is not None and image.resolve() == target.resolve():
        raise InvalidVideoInput(f"background: {str(image)!r} is the output itself: choose another out_dir")
    ffmpeg = check_ffmpeg("composite")
    clip = _probe(ffmpeg, source)
    key = _key(clip, key_color)
    width, height, matrix = clip.width, clip.height, clip.matrix
    command = [ffmpeg, "-i", str(source.absolute())]
    if rgb is not None:
        y, u, v = (round(c) for c in matrix.to_yuv(rgb))
        back = f"color=black:s={width}x{height}:d=0.04,format=yuv420p,lutyuv=y={y}:u={u}:v={v}"
        ends = "eof_action=repeat"
    elif image is not None:
        still = image.suffix.lower() in _IMAGES
        command += [*([] if still else ["-stream_loop", "-1"]), "-i", str(image.absolute())]
        back = f"[1:v]scale={width}:{height}:force_original_aspect_ratio=increase:out_color_matrix={matrix.name}"
        back += f":out_range={matrix.range},crop={width}:{height},setsar=1,format=yuv420p"
        ends = "eof_action=repeat" if still else "shortest=1"
    w, h = (max(2, round(side * scale / 2) * 2) for side in (width, height))
    x, y = position if isinstance(position, tuple) else _place(position, width - w, height - h)
    graph = ";".join(
        [
            "[0:v:0]split[clip][tokey]",
            _keying.graph(key, width, height, tolerance, softness, "tokey", "keyed"),
            f"{back}[back]",
            f"[clip][back]overlay=format=yuv420:{ends}[canvas]",
            f"[keyed]scale={w}:{h}[avatar]" if (w, h) != (width, height) else "[keyed]null[avatar]",
            f"[canvas][avatar]overlay=x={x}:y={y}:format=yuv420[out]",
        ]
    )
    audio = ["-c:a", "copy"] if clip.audio == "aac" else ["-c:a", "aac", "-b:a", "192k"]
    command += ["-filter_complex", graph, "-map", "[out]", "-map", "0:a:0?", *audio, *matrix.tags]
    return _write(target, [*command, *_ENCODE["composite"].split(), "{}"], clip, progress, timeout)


def check_background(background: Union[PathLike, Colour]) -> None:
    """:class:`InvalidVideoInput` unless ``background`` is a colour
    (``"#3050A0"``, ``(r, g, b)``) or an existing file: what a batch checks
    before anything is paid for."""
    if isinstance(background, tuple) or (isinstance(background, str) and background.lstrip().startswith("#")):
        _colour(background, "background")
    else:
        _file(background, "background")


def _place(position: str, room_x: int, room_y: int) -> Tuple[int, int]:
    """The top-left corner for a named position, given the room left on each axis."""
    x = 0 if "left" in position else room_x if "right" in position else room_x // 2
    y = 0 if "top" in position else room_y if "bottom" in position else room_y // 2
    return x, y


def batch_step(
    transparent: Optional[str], background: Optional[Union[PathLike, Colour]]
) -> Optional[Callable[[Path, Callable[[float], None]], Path]]:
    """The last step of ``export_chromakeys(transparent=..., background=...)``, if any, checked (ffmpeg and
    its encoders, the background) before anything is paid for."""
    if transparent is None and background is None:
        return None
    if transparent is not None and background is not None:
        raise ValueError("give transparent= or background=, not both: each batch makes one of them")
    if background is not None:
        check_background(background)
        check_ffmpeg("composite")
        return lambda path, progress: composite(path, background, progress=progress)
    if transparent not in ("webm", "mov", "png"):
        raise ValueError(f"transparent must be 'webm', 'mov' or 'png', not {transparent!r}")
    check_ffmpeg(transparent)
    return lambda path, progress: make_transparent(path, format=transparent, progress=progress)
