"""The band's secure element image on disk, written atomically.

The image is what the band's flash holds: its identity and the secure
element's persistent cells (including an unfinished commit journal, which
the next power-up completes or drops). Writing goes to a temporary file in
the same directory, is flushed to disk, then renamed over the old image, so
a crash leaves either the old image or the new one, never a mix. Each image
carries the SHA-256 of its content, so a damaged one (a changed digit, a
truncated copy) is refused rather than loaded and saved back; it catches
accidents, not forgers, as a real secure element's flash ECC does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from common.files import atomic_write
from wallet.errors import ImageError

FORMAT = "koala-band-image"
VERSION = 2  # 2: with the content's SHA-256; 1 (without) is still read


@dataclass(frozen=True, slots=True)
class Image:
    name: str
    uid: bytes
    cells: dict[str, bytes]


def _digest(document: dict[str, object]) -> str:
    content = {k: v for k, v in document.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(content, separators=(",", ":"), sort_keys=True).encode()).hexdigest()


def dumps(image: Image) -> bytes:
    document: dict[str, object] = {
        "format": FORMAT,
        "version": VERSION,
        "name": image.name,
        "uid": image.uid.hex().upper(),
        "cells": {key: value.hex() for key, value in sorted(image.cells.items())},
    }
    document["sha256"] = _digest(document)
    return json.dumps(document, separators=(",", ":")).encode()


def loads(raw: bytes, origin: str = "image") -> Image:
    try:
        document = json.loads(raw)
        if document.get("format") != FORMAT:
            raise ImageError(f"{origin} is not a Koala band image")
        if document.get("version") not in (1, VERSION):
            raise ImageError(f"{origin} has image version {document.get('version')}, "
                             f"this build reads versions 1 to {VERSION}")
        if document["version"] > 1 and not hmac.compare_digest(str(document.get("sha256")),
                                                                _digest(document)):
            raise ImageError(f"{origin} is damaged: its content does not match its checksum")
        cells = {str(k): bytes.fromhex(v) for k, v in document["cells"].items()}
        return Image(str(document["name"]), bytes.fromhex(document["uid"]), cells)
    except ImageError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ImageError(f"{origin} is damaged: {exc}") from exc


def save(path: Path, image: Image) -> None:
    atomic_write(path, dumps(image))


def load(path: Path) -> Image:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"no band image at {path}") from None
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror}") from exc
    return loads(raw, str(path))
