"""Which warehouse, bucket and topic a command acts on: one resolver for every command.

The first that applies:

1. ``--project P``: Google Cloud project P, through Application Default Credentials;
2. ``SPOTIFY_PIPELINE_PROJECT=P``: the same, for a shell that always works on one project;
3. the local stack whose state folder is ``--stack-dir``, else ``SPOTIFY_PIPELINE_STACK_DIR``,
   else the checkout's ``.stack/`` (:func:`spotify_pipeline_tools.stack.state.default_root`).

Never the current folder, and never ``GOOGLE_CLOUD_PROJECT`` (a setting of the functions, which
the local stack sets too). In Google Cloud the dataset is ``PIPELINE_DATASET`` (default
``spotify_charts``), the bucket ``--bucket``, else ``PIPELINE_BUCKET``, else Terraform's
``P-spotify-pipeline-data``, the topic ``--topic``, else ``PIPELINE_TICKS_TOPIC``, else
``spotify-pipeline-ticks``; BigQuery jobs run in the dataset's own location, read from the dataset.

Every command names its target in its first line on stderr (:meth:`Target.announce`), so its
stdout stays clean for CSV and pipes. A command declares its target options with
:func:`target_options` and calls :func:`resolve` once.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from spotify_pipeline.config import Settings, process_environment
from spotify_pipeline_tools.cli.app import current_options
from spotify_pipeline_tools.cli.errors import CliError

if TYPE_CHECKING:
    from google.cloud import bigquery

    from spotify_pipeline_tools.stack.state import StackState

EMULATOR_VARIABLES = ("STORAGE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")
DEFAULT_TOPIC = "spotify-pipeline-ticks"
STACK_UP = "run `spotify-pipeline stack up` (or `make demo`); for Google Cloud pass --project P"
CONNECT_SECONDS = 15.0  # reading the dataset (its location) before a command runs


@dataclass(frozen=True)
class TargetChoice:
    """What the command line says about the target, before anything is read."""

    project: str | None = None  # --project, else $SPOTIFY_PIPELINE_PROJECT (click's envvar)
    bucket: str | None = None
    topic: str | None = None
    stack_dir: str | None = None
    stack_dir_from_env: bool = False
    stack_only: bool = False  # the demo's run: the local stack, whatever SPOTIFY_PIPELINE_PROJECT says


def stack_choice(*, stack_only: bool = False) -> TargetChoice:
    """The local stack the group's ``--stack-dir`` names (``stack``, ``demo``)."""
    options = current_options()
    return TargetChoice(
        stack_dir=options.stack_dir, stack_dir_from_env=options.stack_dir_from_env, stack_only=stack_only
    )


PROJECT_VARIABLE = "SPOTIFY_PIPELINE_PROJECT"


def _empty_project_is_unset(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # `--project "$P"` with P unset must not quietly switch a script to the local stack: an empty
    # flag counts as not given, so the variable (if set) still names the project.
    if value is not None and not value.strip():
        return process_environment().get(PROJECT_VARIABLE, "").strip() or None
    return value


def target_options(*, bucket: bool = False, topic: bool = False) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """``--project`` (and ``--bucket``, ``--topic``) of a command that can act on Google Cloud; the
    command receives them, with the group's ``--stack-dir``, as one ``where: TargetChoice``."""

    def decorate(command: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(command)
        def with_target(*args: Any, project: str | None, **kwargs: Any) -> int:
            options = current_options()
            where = TargetChoice(
                project=project,
                bucket=kwargs.pop("bucket", None),
                topic=kwargs.pop("topic", None),
                stack_dir=options.stack_dir,
                stack_dir_from_env=options.stack_dir_from_env,
            )
            return command(*args, where=where, **kwargs)

        decorated: Callable[..., int] = with_target
        if topic:
            decorated = click.option(
                "--topic", help="ticks topic (default: $PIPELINE_TICKS_TOPIC or spotify-pipeline-ticks)"
            )(decorated)
        if bucket:
            decorated = click.option(
                "--bucket",
                help="data bucket with --project (default: $PIPELINE_BUCKET or PROJECT-spotify-pipeline-data)",
            )(decorated)
        return click.option(
            "--project",
            envvar=PROJECT_VARIABLE,
            callback=_empty_project_is_unset,
            help="act on this Google Cloud project instead of the local stack (or SPOTIFY_PIPELINE_PROJECT)",
        )(decorated)

    return decorate


def stack_root(where: TargetChoice) -> Path:
    """The local stack's state folder: ``--stack-dir`` (from this folder, as any path typed), else
    ``$SPOTIFY_PIPELINE_STACK_DIR`` (from the checkout), else the checkout's ``.stack/``."""
    from spotify_pipeline_tools.stack.state import default_root

    if where.stack_dir and not where.stack_dir_from_env:
        return Path(where.stack_dir).resolve()
    return default_root(where.stack_dir)


def announce_stack(root: Path) -> None:
    """The first line of a command that acts on the local stack only (``stack``, ``demo``)."""
    from spotify_pipeline_tools.stack.state import DATASET

    print(f"target: local stack ({root}, warehouse {DATASET})", file=sys.stderr, flush=True)


@dataclass
class Target:
    env: dict[str, str]  # what the official clients are configured with (emulator variables locally)
    settings: Settings
    state: StackState | None = None  # the local stack; None in Google Cloud
    location: str | None = None  # the dataset's BigQuery location, once read
    environ: dict[str, str] | None = None  # locally: this shell's environment (its settings for the functions)

    def describe(self) -> str:
        s = self.settings
        if self.state is not None:
            return f"local stack ({self.state.root}, warehouse {s.dataset})"
        where = f"project {s.project} / dataset {s.dataset}"
        return where + (f" / location {self.location}" if self.location else "")

    def announce(self) -> None:
        print(f"target: {self.describe()}", file=sys.stderr, flush=True)

    def warehouse_client(self, timeout: float = CONNECT_SECONDS) -> bigquery.Client:
        """A BigQuery client whose jobs run in the dataset's own location (read within ``timeout``)."""
        from concurrent.futures import TimeoutError as FutureTimeout

        from google.api_core.exceptions import NotFound, RetryError
        from google.cloud import bigquery
        from requests.exceptions import ConnectionError as Unreachable
        from requests.exceptions import Timeout

        from spotify_pipeline.clients import bigquery_client

        s = self.settings
        client = bigquery_client(s.project, s.bq_location, self.env)
        try:
            # Bounded like every call of the CLI: the client's default would retry a dead warehouse for 10 min.
            bounded = bigquery.DEFAULT_RETRY.with_timeout(timeout)
            dataset = client.get_dataset(f"{s.project}.{s.dataset}", retry=bounded, timeout=timeout)
            location = dataset.location or s.bq_location
        except NotFound:
            todo = STACK_UP if self.state else "`terraform apply` in infra/ creates it, or set PIPELINE_DATASET"
            raise CliError(f"no dataset {s.project}.{s.dataset}", todo) from None
        except (RetryError, Timeout, Unreachable, FutureTimeout):
            raise CliError(
                f"the warehouse did not answer within {timeout:g} s (reading dataset {s.project}.{s.dataset})",
                "locally: `spotify-pipeline stack status` names a stopped process, `stack up` restarts it"
                if self.state
                else "check the project and your network",
            ) from None
        self.location = location
        return client if location == s.bq_location else bigquery_client(s.project, location, self.env)

    def connect(self, timeout: float = CONNECT_SECONDS) -> bigquery.Client:
        """Announce the target, then return :meth:`warehouse_client`. A cloud target is named once
        its dataset's location is read, or as far as it is known when that fails (credentials)."""
        if self.state is not None:
            self.announce()
            return self.warehouse_client(timeout)
        try:
            return self.warehouse_client(timeout)
        finally:
            self.announce()


def resolve(where: TargetChoice, *, running: bool) -> Target:
    """The target ``where`` names; ``running``: the command needs the whole local stack up (it runs stages)."""
    project = None if where.stack_only else (where.project or "").strip() or None
    environ = process_environment()
    env = {k: v for k, v in environ.items() if k not in EMULATOR_VARIABLES}
    if project:
        env["GOOGLE_CLOUD_PROJECT"] = project
        env["PIPELINE_BUCKET"] = where.bucket or env.get("PIPELINE_BUCKET") or f"{project}-spotify-pipeline-data"
        env["PIPELINE_TICKS_TOPIC"] = where.topic or env.get("PIPELINE_TICKS_TOPIC") or DEFAULT_TOPIC
        return Target(env, Settings.from_env(env))
    from spotify_pipeline_tools.stack.state import StackState

    root = stack_root(where)
    state = StackState.load(root)
    if state is None:
        raise CliError(f"no local stack in {root}", STACK_UP)
    if running and not state.running():
        missing = state.missing()
        if state.pids and len(missing) < len(state.processes()):
            raise CliError(
                f"the local stack in {root} is partly down: {', '.join(missing)} not running",
                "`spotify-pipeline stack up` restarts only those, on the same ports, with their data",
            )
        raise CliError(f"the local stack in {root} is down", STACK_UP)
    state.root = root
    env.update(state.env())
    if where.topic:
        env["PIPELINE_TICKS_TOPIC"] = where.topic
    return Target(env, Settings.from_env(env), state, environ=environ)


@contextmanager
def open_warehouse(target: Target, timeout: float = CONNECT_SECONDS) -> Iterator[Any]:
    """:meth:`Target.connect` on the target's warehouse; a stopped local stack's BigQuery emulator
    is started alone on the persisted tables for the command, then stopped again."""
    from spotify_pipeline_tools.stack import local, processes

    temp_pid = None
    state = target.state
    if state is not None and not ("bigquery" in state.pids and processes.alive(state.pids["bigquery"])):
        state, temp_pid = local.start_bigquery_only(state.root)
        target.env["BIGQUERY_EMULATOR_HOST"] = state.url("bigquery")
    try:
        yield target.connect(timeout)
    finally:
        if temp_pid is not None:
            processes.stop(temp_pid)
