"""The click plumbing every command shares: the group and its two global options, and the runner
that puts parsing and the command under the one error policy of :mod:`spotify_pipeline_tools.cli.errors`.

Built on click rather than argparse because functions-framework already depends on it (it costs
nothing at deploy) and its ``envvar=`` states an option's environment fallback where the option
is declared. Precedence is written in :mod:`spotify_pipeline_tools.cli.main`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click
from click.core import ParameterSource

from spotify_pipeline_tools.cli.errors import run_command

PROG = "spotify-pipeline"
RUN_TIMEOUT_SECONDS = 300.0  # how long a command waits for a run's load, by default


def timeout_option(default: float, help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Every command's ``--timeout``: seconds, refused by the parser unless above 0 (0 or less would
    reach the HTTP clients and end in their traceback)."""
    return click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=default, help=help)


@dataclass
class GlobalOptions:
    """The group's options, kept on the click context for the commands (and for the error policy)."""

    stack_dir: str | None = None
    stack_dir_from_env: bool = False  # $SPOTIFY_PIPELINE_STACK_DIR is relative to the checkout, a flag to here
    debug: bool = False


class EnvSwitch(click.Option):
    """A flag whose variable is on for 1, true, yes or on and off for anything else: never refused,
    because it is read while another failure is being reported."""

    def value_from_envvar(self, ctx: click.Context) -> Any:
        raw = self.resolve_envvar_value(ctx)
        return None if raw is None else raw.strip().lower() in ("1", "true", "yes", "on")


class Command(click.Command):
    """A command listed with its whole help line in ``spotify-pipeline --help`` (click cuts it at 45
    characters otherwise), as the argparse CLI listed it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("short_help") is None:
            kwargs["short_help"] = kwargs.get("help")
        super().__init__(*args, **kwargs)


def current_options() -> GlobalOptions:
    """The running command's global options (defaults when a command is invoked on its own)."""
    ctx = click.get_current_context(silent=True)
    found = ctx.find_object(GlobalOptions) if ctx is not None else None
    return found if found is not None else GlobalOptions()


def make_group(description: str, commands: Sequence[click.Command]) -> click.Group:
    """``spotify-pipeline`` with ``--stack-dir`` and ``--debug`` over ``commands``."""

    @click.group(name=PROG, help=description, context_settings={"help_option_names": ["-h", "--help"]})
    @click.option(
        "--stack-dir",
        envvar="SPOTIFY_PIPELINE_STACK_DIR",
        help="local stack state folder (default: $SPOTIFY_PIPELINE_STACK_DIR, else .stack/ in the checkout, "
        "wherever the command runs)",
    )
    @click.option(
        "--debug",
        cls=EnvSwitch,
        is_flag=True,
        envvar="SPOTIFY_PIPELINE_DEBUG",
        help="show the traceback of a failure too (or SPOTIFY_PIPELINE_DEBUG=1)",
    )
    @click.pass_context
    def group(ctx: click.Context, stack_dir: str | None, debug: bool) -> None:
        options = ctx.ensure_object(GlobalOptions)
        options.stack_dir = (stack_dir or "").strip() or None
        options.stack_dir_from_env = ctx.get_parameter_source("stack_dir") is ParameterSource.ENVIRONMENT
        options.debug = bool(debug)

    for command in commands:
        group.add_command(command)
    return group


def run(group: click.Group, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run its command; the exit status (a usage error is 2, as click and argparse say)."""
    options = GlobalOptions()

    def command() -> int:  # parsing too runs under the policy: `--help | head -1` is a broken pipe
        args = list(sys.argv[1:] if argv is None else argv)
        try:
            with group.make_context(PROG, args, obj=options) as ctx:
                return int(group.invoke(ctx) or 0)
        except click.exceptions.Exit as done:  # --help
            return done.exit_code
        except click.ClickException as refused:
            refused.show()
            return refused.exit_code

    return run_command(command, debug=lambda: options.debug)
