"""Known-answer test vectors from public references, one JSON file per family.

Every file names its ``source`` and ``references``; :func:`load` refuses a
file without them, so no vector enters the suite without provenance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def load(name: str, function: str | None = None) -> list[dict[str, Any]]:
    document = json.loads((HERE / f"{name}.json").read_text())
    if not document.get("source") or not document.get("references"):
        raise ValueError(f"{name}.json must name its source and references")
    vectors = document["vectors"]
    return [v for v in vectors if function is None or v["function"] == function]


def ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]
