"""wsd-web render: option checks that need no browser, the PNG encoder, the scheduler names."""

from __future__ import annotations

import json
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from wsd_web.cli import main
from wsd_web.png import encode_png
from wsd_web.render import SCHEDULERS, RenderError, check_scheduler

WEB = Path(__file__).resolve().parents[1]


def test_python_knows_exactly_the_schedulers_the_app_implements() -> None:
    script = (
        "import('./src/wsd_web/static/js/schedulers/index.js')"
        ".then(m => console.log(JSON.stringify(Object.keys(m.SCHEDULERS))))"
    )
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        cwd=WEB,
        capture_output=True,
        text=True,
        check=True,
    )
    assert sorted(json.loads(out.stdout)) == sorted(SCHEDULERS)


def test_an_unknown_scheduler_lists_the_valid_ones() -> None:
    with pytest.raises(RenderError, match="unknown scheduler 'foo'; choose one of ddim, dpmpp-2m"):
        check_scheduler("foo")


def test_cli_refuses_a_bad_scheduler_before_starting_a_browser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "render",
            str(tmp_path),
            "--prompt",
            "x",
            "--scheduler",
            "heun",
            "--out",
            str(tmp_path / "a.png"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == [
        "wsd-web: unknown scheduler 'heun'; choose one of "
        "ddim, dpmpp-2m, dpmpp-2m-karras, euler, euler-a, lcm, pndm"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "0"], "steps 0 is out of range; use 1 to 150"),
        (["--seed", "-1"], "seed -1 is out of range"),
        (["--out", "image.jpg"], "does not end in .png"),
    ],
)
def test_cli_checks_options_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    argv = ["render", str(tmp_path), "--prompt", "x", "--out", str(tmp_path / "a.png"), *args]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def _chunks(png: bytes) -> dict[bytes, bytes]:
    out, pos = {}, 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        data = png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF
        out[kind] = data
        pos += 12 + length
    return out


def test_png_holds_the_exact_pixels() -> None:
    rgba = bytes(range(256)) * 3  # 3 rows of 64 pixels
    chunks = _chunks(encode_png(rgba, 64, 3))
    assert struct.unpack(">IIBBBBB", chunks[b"IHDR"]) == (64, 3, 8, 6, 0, 0, 0)
    raw = zlib.decompress(chunks[b"IDAT"])
    rows = [raw[i * 257 : (i + 1) * 257] for i in range(3)]
    assert all(r[0] == 0 for r in rows)
    assert b"".join(r[1:] for r in rows) == rgba


def test_png_refuses_a_wrong_size() -> None:
    with pytest.raises(ValueError, match="is not a 2x2 RGBA image"):
        encode_png(b"\x00" * 15, 2, 2)


def test_cli_refuses_a_directory_that_is_not_a_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", str(tmp_path), "--prompt", "x", "--out", str(tmp_path / "a.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest.json does not exist" in err[0]


def test_a_start_image_file_is_sent_with_its_type_or_refused(tmp_path: Path) -> None:
    import base64

    from wsd_web.render import MAX_IMAGE_BYTES, image_file

    png = tmp_path / "a.png"
    png.write_bytes(encode_png(bytes(4 * 4), 2, 2))
    sent = image_file(png)
    assert sent["type"] == "image/png"
    assert base64.b64decode(sent["base64"]) == png.read_bytes()
    webp = tmp_path / "b.webp"
    webp.write_bytes(b"RIFF\x00\x00\x00\x00WEBPVP8 ")
    assert image_file(webp)["type"] == "image/webp"
    text = tmp_path / "c.txt"
    text.write_text("hello")
    with pytest.raises(RenderError, match=r"c\.txt is not a PNG, JPEG, WebP, GIF or BMP image"):
        image_file(text)
    huge = tmp_path / "d.png"
    with huge.open("wb") as f:
        f.truncate(MAX_IMAGE_BYTES + 1)
    with pytest.raises(RenderError, match=r"a start image file may have 64 MiB at most"):
        image_file(huge)
    with pytest.raises(RenderError, match=r"cannot read the start image .*missing\.png"):
        image_file(tmp_path / "missing.png")


def test_lora_options_name_a_file_and_a_scale(tmp_path: Path) -> None:
    import base64

    from wsd_web.render import MAX_LORA_BYTES, lora_file, lora_option

    assert lora_option("style.safetensors:0.8") == ("style.safetensors", 0.8)
    assert lora_option("style.safetensors") == ("style.safetensors", 1.0)
    # A colon with no number after it is part of the name.
    assert lora_option("dir:x/style.safetensors") == ("dir:x/style.safetensors", 1.0)
    lora = tmp_path / "style.safetensors"
    lora.write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    sent = lora_file(lora, 0.5)
    assert sent["name"] == "style.safetensors" and sent["scale"] == 0.5
    assert base64.b64decode(sent["base64"]) == lora.read_bytes()
    with pytest.raises(RenderError, match=r"the LoRA scale nan of .*style\.safetensors is not a"):
        lora_file(lora, float("nan"))
    huge = tmp_path / "huge.safetensors"
    with huge.open("wb") as f:
        f.truncate(MAX_LORA_BYTES + 1)
    with pytest.raises(RenderError, match=r"a LoRA file may have 2 GiB at most"):
        lora_file(huge, 1.0)
    with pytest.raises(RenderError, match=r"cannot read the LoRA .*missing\.safetensors"):
        lora_file(tmp_path / "missing.safetensors", 1.0)


def test_png_text_chunks_round_trip_and_are_checked() -> None:
    from wsd_web.png import png_text

    text = "a lighthouse, café ☕\nNegative prompt: fog\nSteps: 8, Seed: 5"
    png = encode_png(bytes(16), 2, 2, {"parameters": text})
    assert png_text(png) == {"parameters": text}
    assert png_text(encode_png(bytes(16), 2, 2)) == {}
    broken = bytearray(png)
    broken[png.index(b"iTXt") + 10] ^= 1
    with pytest.raises(ValueError, match=r"the iTXt chunk at byte \d+ fails its CRC"):
        png_text(bytes(broken))
