"""File names: device names defused, video extensions kept or given."""

from __future__ import annotations

import pytest

from aistudios_chromakey.names import safe_filename, safe_name


@pytest.mark.parametrize(
    "raw", ["COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³", "CONIN$", "CONOUT$", "conin$", "com¹", "CON", "LPT9"]
)
def test_every_windows_device_name_is_defused(raw: str) -> None:
    assert safe_name(raw + ".mp4") == "_" + raw + ".mp4"
    assert safe_name(raw) == "_" + raw + ".mp4"
    assert safe_name(raw + ".tar.mp4") == "_" + raw + ".tar.mp4"  # Windows looks before the first dot


@pytest.mark.parametrize("raw", ["COM0", "COM¹0", "CONIN", "CONOUT$$", "CON$", "LPT⁴"])
def test_names_that_only_look_like_devices_are_kept(raw: str) -> None:
    assert safe_name(raw + ".mp4") == raw + ".mp4"


@pytest.mark.parametrize("extension", ["mp4", "mov", "m4v", "webm", "mkv", "avi", "MP4", "Mov"])
def test_a_video_extension_is_kept(extension: str) -> None:
    assert safe_filename(f"https://h/v/k/clip.{extension}") == f"clip.{extension}"


@pytest.mark.parametrize(
    "basename, expected",
    [
        ("clip.exe", "clip.mp4"),
        ("index.html", "index.mp4"),
        ("launcher.desktop", "launcher.mp4"),
        ("run.sh", "run.mp4"),
        ("clip.mp4.exe", "clip.mp4"),
        ("archive.tar.gz", "archive.tar.mp4"),
        ("no-extension", "no-extension.mp4"),
        ("Hello. World", "Hello. World.mp4"),  # not an extension: kept, .mp4 added
    ],
)
def test_an_address_with_another_extension_is_saved_as_mp4(basename: str, expected: str) -> None:
    assert safe_filename(f"https://h/v/k/{basename}") == expected
    assert safe_filename(f"https://h/v/k/{expected}") == expected  # stable once safe
