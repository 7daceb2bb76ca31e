"""The koala command as a user runs it in one world: click's runner, errors in one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from cli import main


def koala_in(home: Path) -> Callable[..., str]:
    """The koala command in the world at ``home``; its output. ``ok``: whether it must
    succeed (else fail); either way without a traceback."""
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True) -> str:
        result = runner.invoke(main, ["--home", str(home), *args])
        assert (result.exit_code == 0) == ok, result.output
        assert "Traceback" not in result.output
        # click's runner keeps an escaped exception instead of printing its traceback
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            repr(result.exception)
        return result.output

    return invoke
