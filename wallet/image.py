"""The band's secure element image on disk, written atomically.

The image is what the band's flash holds: its identity and the secure
element's persistent cells (including an unfinished commit journal, which
the next power-up completes or drops). Writing goes to a temporary file in
the same directory, is flushed to disk, then renamed over the old image, so
a crash leaves either the old image or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from wallet.errors import ImageError

FORMAT = "koala-band-image"
VERSION = 1


@dataclass(frozen=True, slots=True)
class Image:
    name: str
    uid: bytes
    cells: dict[str, bytes]


def dumps(image: Image) -> bytes:
    document = {
        "format": FORMAT,
        "version": VERSION,
        "name": image.name,
        "uid": image.uid.hex().upper(),
        "cells": {key: value.hex() for key, value in sorted(image.cells.items())},
    }
    return json.dumps(document, separators=(",", ":")).encode()


def loads(raw: bytes, origin: str = "image") -> Image:
    try:
        document = json.loads(raw)
        if document.get("format") != FORMAT:
            raise ImageError(f"{origin} is not a Koala band image")
        if document.get("version") != VERSION:
            raise ImageError(f"{origin} has image version {document.get('version')}, "
                             f"this build reads version {VERSION}")
        cells = {str(k): bytes.fromhex(v) for k, v in document["cells"].items()}
        return Image(str(document["name"]), bytes.fromhex(document["uid"]), cells)
    except ImageError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ImageError(f"{origin} is damaged: {exc}") from exc


def save(path: Path, image: Image) -> None:
    atomic_write(path, dumps(image))


def atomic_write(path: Path, content: bytes) -> None:
    """Replace ``path`` with ``content`` atomically (temp file, fsync, rename, fsync dir)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load(path: Path) -> Image:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"no band image at {path}") from None
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror}") from exc
    return loads(raw, str(path))
