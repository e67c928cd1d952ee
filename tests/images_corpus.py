"""Build the bad-file corpus at test time (nothing binary is committed).

``build_corpus(directory)`` writes every file and returns ``{name: Path}``;
``EXPECTED`` says what decoding each one must give:

* ``(type_slug, status)`` -- a typed error, e.g. ``("invalid_image", 422)``;
* ``("ok", (width, height), format)`` -- decodes; upright size, lower-case format.

A builder that cannot run on this platform (HEIF saving) leaves its name out
of the returned dict; ``SKIPPED`` then holds the reason, for ``pytest.skip``.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image

#: Size of the ~1 MP photo (astronaut, upscaled) and of the rotated photo's stored pixels.
PHOTO_SIZE = (1024, 1024)
ROTATED_STORED_SIZE = (600, 400)  # landscape as stored; upright it is 400 x 600
BOMB_SIZE = (30_000, 30_000)

EXPECTED: dict[str, tuple] = {
    "empty.jpg": ("invalid_image", 422),
    "truncated.jpg": ("invalid_image", 422),
    "bomb.png": ("image_too_large", 413),
    "text.jpg": ("unsupported_media_type", 415),
    "animated.gif": ("ok", (64, 48), "gif"),
    "cmyk.jpg": ("ok", (96, 64), "jpeg"),
    "16bit.png": ("ok", (256, 32), "png"),
    "palette_alpha.png": ("ok", (40, 30), "png"),
    "photo.heic": ("ok", (320, 240), "heif"),
    "rotated.jpg": ("ok", (ROTATED_STORED_SIZE[1], ROTATED_STORED_SIZE[0]), "jpeg"),
    "pixel.png": ("ok", (1, 1), "png"),
    "photo.jpg": ("ok", PHOTO_SIZE, "jpeg"),
}

#: name -> why it could not be built here (filled by build_corpus).
SKIPPED: dict[str, str] = {}

#: The colours of animated.gif's frames and of cmyk.jpg's three vertical bands.
GIF_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
CMYK_BANDS = [(220, 30, 30), (30, 200, 40), (240, 240, 240)]


def photo_rgb(size: tuple[int, int] = PHOTO_SIZE) -> np.ndarray:
    """A real photo (scikit-image's astronaut) resized to ``size`` (w, h), H x W x 3 uint8."""
    from skimage import data

    img = Image.fromarray(data.astronaut()).resize(size, Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8)


def landscape_rgb(size: tuple[int, int] = ROTATED_STORED_SIZE) -> np.ndarray:
    """A real landscape photo (scikit-image's coffee, 600 x 400)."""
    from skimage import data

    img = Image.fromarray(data.coffee())
    if img.size != size:
        img = img.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8)


def jpeg_bytes(rgb: np.ndarray, quality: int = 90, **save_args) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=quality, **save_args)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_bomb_bytes(width: int = BOMB_SIZE[0], height: int = BOMB_SIZE[1]) -> bytes:
    """A valid-looking PNG header claiming ``width`` x ``height`` 8-bit RGB; tiny on disk.

    Built by hand so that nothing of the claimed size is ever allocated.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit, truecolour
    idat = zlib.compress(b"\x00" * 4096, 9)  # the start of the (filter 0, black) scanlines
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    data = jpeg_bytes(photo_rgb((512, 512)), quality=92)
    path.write_bytes(data[: int(len(data) * 0.6)])


def _bomb(path: Path) -> None:
    path.write_bytes(png_bomb_bytes())


def _text(path: Path) -> None:
    path.write_text("This is a text file, not a JPEG.\n" * 20, encoding="utf-8")


def _animated(path: Path) -> None:
    frames = [Image.new("RGB", (64, 48), colour) for colour in GIF_COLOURS]
    frames[0].save(
        path, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0
    )


def _cmyk(path: Path) -> None:
    rgb = np.zeros((64, 96, 3), np.uint8)
    for i, colour in enumerate(CMYK_BANDS):
        rgb[:, i * 32 : (i + 1) * 32] = colour
    Image.fromarray(rgb, "RGB").convert("CMYK").save(path, format="JPEG", quality=95)


def _sixteen_bit(path: Path) -> None:
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16)
    arr = np.tile(ramp, (32, 1))
    Image.fromarray(arr).save(path, format="PNG")  # mode I;16


def _palette_alpha(path: Path) -> None:
    img = Image.new("P", (40, 30), 1)
    img.putpalette([0, 0, 0, 200, 0, 0] + [0, 0, 0] * 254)  # index 0 black, 1 red
    img.paste(0, (0, 0, 20, 30))  # left half is index 0, declared transparent
    img.save(path, format="PNG", transparency=0)


def _heic(path: Path) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    img = Image.fromarray(photo_rgb((320, 240)), "RGB")
    img.save(path, format="HEIF", quality=90)


def _rotated(path: Path) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # display rotated 90 degrees clockwise
    path.write_bytes(jpeg_bytes(landscape_rgb(), exif=exif.tobytes()))


def _pixel(path: Path) -> None:
    Image.new("RGB", (1, 1), (10, 120, 200)).save(path, format="PNG")


def _photo(path: Path) -> None:
    path.write_bytes(jpeg_bytes(photo_rgb(), quality=90))


BUILDERS: dict[str, Callable[[Path], None]] = {
    "empty.jpg": _empty,
    "truncated.jpg": _truncated,
    "bomb.png": _bomb,
    "text.jpg": _text,
    "animated.gif": _animated,
    "cmyk.jpg": _cmyk,
    "16bit.png": _sixteen_bit,
    "palette_alpha.png": _palette_alpha,
    "photo.heic": _heic,
    "rotated.jpg": _rotated,
    "pixel.png": _pixel,
    "photo.jpg": _photo,
}

#: Builders allowed to fail on a platform (their file is then left out, reason in SKIPPED).
OPTIONAL = {"photo.heic"}


def build_one(name: str, directory: Path | str) -> Path | None:
    """Write one corpus file into ``directory``; None if it cannot be built here."""
    path = Path(directory) / name
    try:
        BUILDERS[name](path)
    except Exception as exc:
        if name not in OPTIONAL:
            raise
        SKIPPED[name] = f"cannot build {name} on this platform: {type(exc).__name__}: {exc}"
        path.unlink(missing_ok=True)
        return None
    return path


def build_corpus(directory: Path | str) -> dict[str, Path]:
    """Write every buildable corpus file into ``directory``; return ``{name: path}``."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    built: dict[str, Path] = {}
    for name in BUILDERS:
        path = build_one(name, directory)
        if path is not None:
            built[name] = path
    return built
