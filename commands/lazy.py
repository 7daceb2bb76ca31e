"""The ``koala`` root group, which imports a command group only when it runs.

The groups need the card, the readers, the issuer's client and their cryptography (about a
second of imports); ``koala --help`` and a mistyped command need none of it. Each group is
named here with the first line of its help, which ``tests/test_cli.py`` holds equal to the
group's own.
"""

from __future__ import annotations

import importlib
from typing import Any

import click


class LazyGroup(click.Group):
    """A group whose subcommands are ``{name: ("module:attribute", short help)}``, imported on
    first use; it turns the errors a user can act on into one line, never a traceback."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.lazy)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return None
        module, _, attribute = self.lazy[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy[cmd_name][0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click lists commands (each help cut to the line), without importing them."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        with formatter.section("Commands"):
            formatter.write_dl([(name, click.Command(name, help=self.lazy[name][1])
                                 .get_short_help_str(limit)) for name in names])

    def invoke(self, ctx: click.Context) -> Any:
        from commands.world import USER_ERRORS  # noqa: PLC0415 - the errors' modules are heavy

        try:
            return super().invoke(ctx)
        except USER_ERRORS as error:
            raise click.ClickException(str(error)) from error
