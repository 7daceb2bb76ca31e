"""Where a koala world lives: one directory, ``$KOALA_HOME`` (default ``~/.koala``), holding
the bands, the phone's bonds and the issuer's database and keys, so worlds run side by side."""

from __future__ import annotations

import os
from pathlib import Path


def default_root() -> Path:
    return Path(os.environ.get("KOALA_HOME") or "~/.koala").expanduser()
