"""Images and videos: proved by decoding them, not trusted by name.

Runs in the inspection child process. Images are decoded whole with Pillow
(a truncated or forged file fails here, not later in a chat request); a
video must open with FFmpeg (PyAV), hold a video stream and yield a frame.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image, UnidentifiedImageError

# Formats a vision model takes; others (TIFF, ICO, PSD...) are refused.
IMAGE_FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP"}
# Pillow refuses images beyond this many pixels (a decompression bomb).
MAX_IMAGE_PIXELS = 100_000_000


class NotMedia(Exception):
    """The file is not the image or video its purpose says; the message says why."""


@dataclass
class Media:
    content_type: str
    width: int
    height: int
    duration_ms: int | None = None


def probe_image(source: Path | IO[bytes]) -> Media:
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                image_format = image.format or ""
                image.load()
                width, height = image.size
    except UnidentifiedImageError:
        raise NotMedia("the file is not an image (png, jpeg, webp, gif or bmp)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise NotMedia(f"the image is too large: at most {MAX_IMAGE_PIXELS:,} pixels") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise NotMedia(f"the image could not be decoded ({error}); it may be damaged") from None
    if image_format not in IMAGE_FORMATS:
        raise NotMedia(
            f"image format {image_format or 'unknown'} is not supported; "
            "use png, jpeg, webp, gif or bmp"
        )
    return Media(Image.MIME[image_format], width, height)


_VIDEO_TYPES = {
    "mov,mp4,m4a,3gp,3g2,mj2": "video/mp4",
    "matroska,webm": "video/webm",
    "avi": "video/x-msvideo",
    "flv": "video/x-flv",
    "mpegts": "video/mp2t",
    "mpeg": "video/mpeg",
}


def probe_video(path: Path) -> Media:
    import av

    try:
        with av.open(str(path)) as container:
            content_type = _VIDEO_TYPES.get(container.format.name)
            if content_type is None or not container.streams.video:
                raise NotMedia(
                    "the file is not a video (mp4, mov, webm, mkv, avi, flv, mpeg-ts or mpeg)"
                )
            stream = container.streams.video[0]
            if content_type == "video/webm" and stream.codec_context.name not in {
                "vp8",
                "vp9",
                "av1",
            }:
                content_type = "video/x-matroska"
            width, height = stream.codec_context.width, stream.codec_context.height
            frame = next(container.decode(stream), None)
            if frame is None:
                raise NotMedia("the video holds no decodable frame")
            duration_ms = _duration_ms(container, stream)
    except av.error.FFmpegError as error:
        # strerror, not str(error): that names the server's spool file.
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise NotMedia(f"the file is not a readable video ({reason})") from None
    return Media(content_type, width, height, duration_ms)


def _duration_ms(container: object, stream: object) -> int | None:
    import av

    duration = getattr(container, "duration", None)  # in av.time_base units
    if duration:
        return int(duration * 1000 // av.time_base)
    stream_duration = getattr(stream, "duration", None)
    time_base = getattr(stream, "time_base", None)
    if stream_duration and time_base:
        return int(stream_duration * time_base * 1000)
    return None
