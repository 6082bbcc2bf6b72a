"""The MP4 box walk that tells a whole file from a cut one, on real bytes."""

from __future__ import annotations

import struct
from importlib import resources
from typing import List, Optional

import pytest

from aistudios_chromakey._http import BoxWalk, is_iso_media

CLIP = resources.files("aistudios_chromakey").joinpath("data/chromakey.mp4").read_bytes()


def _walk(data: bytes, chunk: int, announced: bool = False) -> Optional[str]:
    walk = BoxWalk()
    for offset in range(0, len(data), chunk):
        walk.feed(data[offset : offset + chunk])
    return walk.verdict(announced)


def _box(kind: bytes, payload: bytes, large: bool = False) -> bytes:
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


CHUNKS: List[int] = [1, 3, 7, 8, 16, 100, 4096, 1 << 20]


@pytest.mark.parametrize("chunk", CHUNKS)
def test_the_shipped_clip_is_whole_however_it_is_chunked(chunk: int) -> None:
    assert is_iso_media(CLIP[:12])
    assert _walk(CLIP, chunk) is None


@pytest.mark.parametrize("cut", [1, 4, 8, 20, 31, 33, 40, 2097, 2100, 3000, len(CLIP) // 2, len(CLIP) - 1])
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_the_clip_cut_anywhere_is_short(cut: int, chunk: int) -> None:
    verdict = _walk(CLIP[:cut], chunk)
    assert verdict is not None and "ends inside" in verdict


def _ends_before_media(clip: bytes) -> List[int]:
    """Where each top-level box before ``mdat`` ends (ftyp, moov, free...)."""
    ends, offset = [], 0
    while clip[offset + 4 : offset + 8] != b"mdat":
        offset += int.from_bytes(clip[offset : offset + 4], "big")
        ends.append(offset)
    return ends


@pytest.mark.parametrize("cut", _ends_before_media(CLIP))
def test_a_cut_exactly_between_boxes_before_the_media_is_short(cut: int) -> None:
    verdict = _walk(CLIP[:cut], 5)
    assert verdict is not None and "ends before its MP4" in verdict


def test_a_box_with_a_64_bit_size_is_followed() -> None:
    data = CLIP + _box(b"free", b"\xab" * 1000, large=True)
    for chunk in (1, 9, 15, 17, 4096):
        assert _walk(data, chunk) is None
        assert _walk(data[:-1], chunk) is not None
        assert _walk(data[: len(CLIP) + 12], chunk) is not None  # cut inside the 16-byte header


def test_a_last_box_of_size_zero_runs_to_the_end_of_the_file() -> None:
    data = CLIP + struct.pack(">I4s", 0, b"mdat") + b"\x01" * 5000
    assert _walk(data, 333, announced=True) is None  # the announced length, all arrived, says it is whole
    # Without one, nothing tells its end from a cut: not proven whole, whole or cut.
    assert "runs to the end of the file" in (_walk(data, 333) or "")
    assert "runs to the end of the file" in (_walk(data[: len(CLIP) + 100], 333) or "")


def test_a_box_too_small_for_its_header_is_a_problem() -> None:
    verdict = _walk(CLIP + struct.pack(">I4s", 4, b"free"), 64)
    assert verdict is not None and "impossible size" in verdict


def test_bytes_past_the_last_box_are_not_a_whole_file() -> None:
    assert _walk(CLIP + b"\0\0\0", 100) is not None
