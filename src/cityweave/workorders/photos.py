"""Photos people attach to reports: checked, shrunk and stripped of their metadata.

A phone photo carries the GPS position where it was taken, the camera's serial number and the
time; a public work order must not leak where the reporter lives. So every upload is decoded
(which also proves it is the image type it claims), re-encoded from pixels alone, and bounded in
size. Only JPEG, PNG and WebP are accepted; what cannot be decoded is refused with a reason.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from cityweave.errors import Invalid

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_SIDE = 2048  # pixels: enough to see a crack in a pipe, small enough for a phone to load
MAX_PIXELS = 50_000_000  # decompression bombs are refused before they are decoded
_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@dataclass(frozen=True)
class CleanPhoto:
    data: bytes
    content_type: str
    width: int
    height: int
    sha256: str


def clean(upload: bytes, declared_type: str | None = None) -> CleanPhoto:
    if not upload:
        raise Invalid.field("/photo", "the file is empty")
    if len(upload) > MAX_UPLOAD_BYTES:
        raise Invalid.field("/photo", f"photos may be at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    try:
        with Image.open(io.BytesIO(upload)) as probe:
            fmt = probe.format or ""
            if fmt not in _FORMATS:
                raise Invalid.field("/photo", f"{fmt or 'this file'} is not accepted; send JPEG, PNG or WebP")
            if probe.width * probe.height > MAX_PIXELS:
                raise Invalid.field("/photo", "the image has too many pixels")
            probe.verify()
        with Image.open(io.BytesIO(upload)) as image:
            image.load()
            image = ImageOps.exif_transpose(image)  # keep the picture upright once EXIF is gone
            image.thumbnail((MAX_SIDE, MAX_SIDE))
            return _encode(image, fmt)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise Invalid.field("/photo", f"not a readable image ({type(exc).__name__})") from exc


def _encode(image: Image.Image, fmt: str) -> CleanPhoto:
    # A new image from the pixels only: no EXIF, no XMP, no ICC comments, no text chunks.
    mode = "RGBA" if fmt != "JPEG" and image.mode in ("RGBA", "LA", "P") else "RGB"
    pixels = image.convert(mode)
    bare = Image.new(mode, pixels.size)
    bare.paste(pixels)
    out = io.BytesIO()
    if fmt == "JPEG":
        bare.save(out, "JPEG", quality=85, optimize=True)
    elif fmt == "PNG":
        bare.save(out, "PNG", optimize=True)
    else:
        bare.save(out, "WEBP", quality=85)
    data = out.getvalue()
    return CleanPhoto(data, _FORMATS[fmt], bare.width, bare.height, hashlib.sha256(data).hexdigest())
