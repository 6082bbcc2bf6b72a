"""aistudios_chromakey.video over real ffmpeg runs, on small synthetic clips:
a studio green (not #00FF00) with a teal, an olive and a skin-coloured box."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest

from aistudios_chromakey import AIStudiosError
from aistudios_chromakey.video import (
    FFmpegMissing,
    InvalidVideoInput,
    VideoError,
    check_ffmpeg,
    composite,
    find_ffmpeg,
    make_transparent,
    measure_key,
)

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed")
needs_ffprobe = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe is not installed")

W, H = 160, 96
GREEN = (40, 170, 70)
#: Where each thing is in the synthetic clip: (x, y) of a pixel well inside it.
BACKDROP, TEAL, OLIVE, SKIN = (6, 6), (40, 70), (85, 70), (125, 40)
BOXES = "drawbox=20:40:40:56:0x008080:fill,drawbox=70:40:30:56:0x808000:fill,drawbox=110:20:30:40:0xE0AC8C:fill"

Pixels = Callable[[int, int], Tuple[int, int, int, int]]


def _make_clip(path: Path, backdrop: str = "0x28AA46", seconds: float = 1.0, audio: bool = True) -> Path:
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"]
    command += ["-i", f"color=c={backdrop}:s={W}x{H}:r=10:d={seconds},{BOXES},noise=alls=3:allf=t"]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac"]
    subprocess.run([*command, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "16", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed")
    return _make_clip(tmp_path_factory.mktemp("clips") / "avatar.mp4")


@pytest.fixture
def folder(tmp_path: Path, clip: Path) -> Path:
    """A folder holding a copy of the clip, and nothing else."""
    shutil.copy(clip, tmp_path / "avatar.mp4")
    return tmp_path


def _frame(path: Path, decoder: Tuple[str, ...] = (), index: int = 3) -> Pixels:
    """Frame ``index`` of a video (or the first of a PNG pattern), as RGBA."""
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", *decoder, "-i", str(path)]
    command += ["-vf", f"select=eq(n\\,{index})", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgba", "-"]
    data = subprocess.run(command, capture_output=True, check=True).stdout
    assert len(data) == W * H * 4

    def pixel(x: int, y: int) -> Tuple[int, int, int, int]:
        at = 4 * (y * W + x)
        return data[at], data[at + 1], data[at + 2], data[at + 3]

    return pixel


def _streams(path: Path) -> List[Dict[str, str]]:
    command = ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,pix_fmt:stream_tags=alpha_mode"]
    command += ["-show_entries", "format=duration", "-of", "compact", str(path)]
    lines = subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()
    return [dict(item.split("=", 1) for item in line.split("|")[1:]) for line in lines]


def _keyed_right(pixel: Pixels) -> None:
    assert pixel(*BACKDROP)[3] == 0 and pixel(80, 12)[3] == 0
    for place, colour in ((TEAL, (0, 128, 128)), (OLIVE, (128, 128, 0)), (SKIN, (224, 172, 140))):
        red, green, blue, alpha = pixel(*place)
        assert alpha == 255, place
        assert max(abs(red - colour[0]), abs(green - colour[1]), abs(blue - colour[2])) < 24, (place, pixel(*place))


@needs_ffmpeg
@needs_ffprobe
def test_webm_is_vp9_with_alpha_and_keeps_the_audio(folder: Path) -> None:
    seen: List[float] = []
    path = make_transparent(folder / "avatar.mp4", progress=seen.append)
    assert path == folder / "avatar.webm"
    video, audio, _ = _streams(path)
    assert video["codec_name"] == "vp9" and video["tag:alpha_mode"] == "1" and audio["codec_name"] == "opus"
    _keyed_right(_frame(path, ("-c:v", "libvpx-vp9")))
    assert seen and seen[-1] == 1.0 and seen == sorted(seen) and all(0 <= f <= 1 for f in seen)
    assert sorted(p.name for p in folder.iterdir()) == ["avatar.mp4", "avatar.webm"]


@needs_ffmpeg
@needs_ffprobe
def test_mov_is_prores_4444_with_alpha_and_pcm_audio(folder: Path) -> None:
    path = make_transparent(folder / "avatar.mp4", format="mov")
    assert path == folder / "avatar.mov"
    video, audio, _ = _streams(path)
    assert video["codec_name"] == "prores" and video["pix_fmt"].startswith("yuva444p")
    assert audio["codec_name"] == "pcm_s16le"
    _keyed_right(_frame(path))


@needs_ffmpeg
def test_png_is_a_folder_of_rgba_frames(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("frames")
    path = make_transparent(folder / "avatar.mp4", format="png", out_dir=out)
    assert path == out / "avatar_frames" and list(out.iterdir()) == [path]
    frames = sorted(path.iterdir())
    assert [f.name for f in frames[:2]] == ["000001.png", "000002.png"] and len(frames) == 10
    head = frames[0].read_bytes()[:26]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[24:26] == b"\x08\x06"  # 8 bits, RGBA
    _keyed_right(_frame(path / "%06d.png"))


@needs_ffmpeg
def test_the_key_is_measured_on_the_clip_not_assumed(clip: Path) -> None:
    measured = measure_key(clip)
    rgb = [int(measured[n : n + 2], 16) for n in (1, 3, 5)]
    assert max(abs(a - b) for a, b in zip(rgb, GREEN)) <= 8, measured


@needs_ffmpeg
def test_a_blue_backdrop_is_keyed_as_blue(tmp_path: Path) -> None:
    video = _make_clip(tmp_path / "blue.mp4", backdrop="0x2040C0", audio=False)
    pixel = _frame(make_transparent(video, format="png") / "%06d.png")
    assert pixel(*BACKDROP)[3] == 0 and pixel(*TEAL)[3] == 255 and pixel(*SKIN)[3] == 255


@needs_ffmpeg
def test_a_soft_edge_stays_soft_and_in_place(tmp_path: Path) -> None:
    """A teal box from x=60 to 99, blurred: across each side the alpha rises
    steadily through several partial values, and is half way at the box's edge."""
    video = tmp_path / "soft.mp4"
    source = "color=c=0x28AA46:s=160x96:r=10:d=0.5,drawbox=60:20:40:56:0x008080:fill,gblur=sigma=2"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", source, str(video)], check=True)
    pixel = _frame(make_transparent(video, format="png") / "%06d.png")
    for columns, edge in ((range(54, 66), (59, 60)), (range(105, 93, -1), (99, 100))):
        alphas = [pixel(x, 48)[3] for x in columns]
        assert alphas == sorted(alphas) and alphas[0] == 0 and alphas[-1] == 255, alphas
        assert sum(0 < a < 255 for a in alphas) >= 2, alphas
        assert next(x for x, a in zip(columns, alphas) if a >= 128) in edge, alphas


@needs_ffmpeg
@needs_ffprobe
@pytest.mark.parametrize("background", ["#3050A0", "image", "video"])
def test_composite_is_h264_with_audio_at_the_clips_length(folder: Path, background: str) -> None:
    back: object = background
    if background == "image":
        back = folder / "studio.png"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "color=0x3050A0:s=64x48",
                        "-frames:v", "1", str(back)], check=True)  # fmt: skip
    elif background == "video":  # shorter than the clip: looped
        back = _make_clip(folder / "loop.mp4", backdrop="0x3050A0", seconds=0.3, audio=False)
    path = composite(folder / "avatar.mp4", back)  # type: ignore[arg-type]
    assert path == folder / "avatar_composite.mp4"
    video, audio, container = _streams(path)
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p" and audio["codec_name"] == "aac"
    assert abs(float(container["duration"]) - 1.0) < 0.15
    pixel = _frame(path)
    assert max(abs(a - b) for a, b in zip(pixel(*BACKDROP), (48, 80, 160))) < 12
    assert abs(pixel(*TEAL)[1] - 128) < 16 and pixel(*TEAL)[0] < 24
    assert path.read_bytes().find(b"moov") < path.read_bytes().find(b"mdat")  # faststart


@needs_ffmpeg
def test_composite_scales_and_places_the_avatar(folder: Path) -> None:
    path = composite(folder / "avatar.mp4", "#000000", scale=0.5, position="bottom-right")
    pixel = _frame(path)
    assert max(pixel(*TEAL)[:3]) < 16  # the box moved away
    teal = pixel(W // 2 + TEAL[0] // 2, H // 2 + TEAL[1] // 2)
    assert abs(teal[1] - 128) < 20 and abs(teal[2] - 128) < 20


@needs_ffmpeg
def test_a_failed_run_leaves_no_file_and_keeps_the_old_output(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "avatar.webm").write_bytes(b"yesterday's webm")
    from aistudios_chromakey import video

    monkeypatch.setitem(video._ENCODE, "webm", video._ENCODE["webm"].replace("-crf 30", "-crf 999"))
    with pytest.raises(VideoError, match="ffmpeg failed") as failure:
        make_transparent(folder / "avatar.mp4")
    assert failure.value.stderr  # ffmpeg's own words
    assert (folder / "avatar.webm").read_bytes() == b"yesterday's webm"
    assert sorted(p.name for p in folder.iterdir()) == ["avatar.mp4", "avatar.webm"]


@needs_ffmpeg
@pytest.mark.parametrize("format", ["webm", "png"])
def test_a_run_stopped_midway_leaves_nothing_behind(folder: Path, format: str) -> None:
    def interrupt(fraction: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_transparent(folder / "avatar.mp4", format=format, progress=interrupt)
    assert [p.name for p in folder.iterdir()] == ["avatar.mp4"]


@needs_ffmpeg
def test_a_run_over_its_timeout_is_stopped(folder: Path) -> None:
    with pytest.raises(VideoError, match="did not finish within"):
        make_transparent(folder / "avatar.mp4", format="mov", timeout=0.01)
    assert [p.name for p in folder.iterdir()] == ["avatar.mp4"]


@needs_ffmpeg
def test_an_existing_output_is_replaced_by_a_whole_new_one(folder: Path) -> None:
    (folder / "avatar_frames").mkdir()
    (folder / "avatar_frames" / "stale.png").write_bytes(b"old")
    path = make_transparent(folder / "avatar.mp4", format="png")
    assert len(list(path.iterdir())) == 10 and not (path / "stale.png").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["avatar.mp4", "avatar_frames"]


@needs_ffmpeg
def test_a_clip_that_is_not_on_a_backdrop_is_refused_with_a_way_out(tmp_path: Path) -> None:
    video = tmp_path / "bars.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=160x96:d=0.5",
                    "-pix_fmt", "yuv420p", str(video)], check=True)  # fmt: skip
    with pytest.raises(VideoError, match="key_color=") as refused:
        make_transparent(video)
    assert "bars.mp4" in str(refused.value)
    with pytest.raises(VideoError, match="not a green or blue"):
        make_transparent(video, key_color="#808080")
    assert [p.name for p in tmp_path.iterdir()] == ["bars.mp4"]


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for ffmpeg")
def test_a_missing_encoder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho ' V....D libx264              H.264'\necho ' A..... aac                  AAC'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("AISTUDIOS_FFMPEG", str(fake))
    assert check_ffmpeg("composite") == str(fake)
    with pytest.raises(FFmpegMissing, match="no prores_ks or pcm_s16le encoder") as missing:
        check_ffmpeg("mov")
    assert missing.value.encoders == ("prores_ks", "pcm_s16le")
    with pytest.raises(FFmpegMissing, match="libvpx-vp9"):
        make_transparent(_video(tmp_path))


def _video(folder: Path) -> Path:
    path = folder / "avatar.mp4"
    path.write_bytes(b"\0\0\0\x18ftypisom")
    return path


@pytest.fixture
def no_ffmpeg(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH without ffmpeg, no AISTUDIOS_FFMPEG and no imageio-ffmpeg."""
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("empty-bin")))
    monkeypatch.delenv("AISTUDIOS_FFMPEG", raising=False)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)


@pytest.mark.usefixtures("no_ffmpeg")
def test_without_ffmpeg_the_message_says_how_to_get_it(tmp_path: Path) -> None:
    for attempt in (find_ffmpeg, lambda: make_transparent(_video(tmp_path)), lambda: check_ffmpeg("png")):
        with pytest.raises(FFmpegMissing) as missing:
            attempt()
        message = str(missing.value)
        assert "ffmpeg was not found" in message and "apt install ffmpeg" in message and "brew install" in message
        assert 'pip install "aistudios-chromakey[video]"' in message
        assert isinstance(missing.value, AIStudiosError)


def test_a_named_ffmpeg_that_is_not_there_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AISTUDIOS_FFMPEG", str(tmp_path / "nowhere" / "ffmpeg"))
    with pytest.raises(FFmpegMissing, match="AISTUDIOS_FFMPEG="):
        find_ffmpeg()


@pytest.mark.usefixtures("no_ffmpeg")
@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda v: make_transparent(v.with_name("gone.mp4")), ["video", "gone.mp4"]),
        (lambda v: make_transparent(v, format="gif"), ["format", "'gif'"]),
        (lambda v: make_transparent(v, key_color="green"), ["key_color", "'green'"]),
        (lambda v: make_transparent(v, key_color="#12345"), ["key_color", "'#12345'"]),
        (lambda v: make_transparent(v, key_color=(0, 300, 0)), ["key_color", "(0, 300, 0)"]),
        (lambda v: make_transparent(v, out_dir=v.parent / "missing"), ["out_dir", "missing"]),
        (lambda v: make_transparent(v, tolerance=2.0), ["tolerance"]),
        (lambda v: composite(v, "#30G0A0"), ["background", "'#30G0A0'"]),
        (lambda v: composite(v, v.with_name("studio.jpg")), ["background", "studio.jpg"]),
        (lambda v: composite(v, "#3050A0", position="middle"), ["position", "'middle'"]),
        (lambda v: composite(v, "#3050A0", scale=0), ["scale"]),
    ],
)
def test_bad_input_is_refused_before_ffmpeg_runs(
    tmp_path: Path, call: Callable[[Path], object], words: List[str]
) -> None:
    with pytest.raises(InvalidVideoInput) as refused:
        call(_video(tmp_path))
    assert all(word in str(refused.value) for word in words), str(refused.value)
    assert isinstance(refused.value, ValueError)


@pytest.mark.usefixtures("no_ffmpeg")
def test_the_video_itself_is_never_the_output(tmp_path: Path) -> None:
    video = tmp_path / "avatar.webm"
    video.write_bytes(b"a webm")
    with pytest.raises(InvalidVideoInput, match="replace the video itself"):
        make_transparent(video)
    assert video.read_bytes() == b"a webm"
    assert os.listdir(tmp_path) == ["avatar.webm"]
