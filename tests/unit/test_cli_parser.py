"""The command line's shape: help on every argument, one flag per run-request field on both `run` and
`trigger`, requests validated by extract's own parser, and the follower's one verdict rule."""

from __future__ import annotations

from datetime import date
from typing import Any

import click
import pytest

from spotify_pipeline.config import Settings
from spotify_pipeline.events import RUN_REQUEST_FIELDS, InvalidEvent, parse_run_request
from spotify_pipeline.outcomes import REQUEST, RunOutcome
from spotify_pipeline.sources import CHART_SOURCES
from spotify_pipeline_tools.cli.follow import Verdict, run_verdict
from spotify_pipeline_tools.cli.main import GROUP
from spotify_pipeline_tools.cli.request import REQUEST_FLAGS, request_payload
from spotify_pipeline_tools.packaging import FUNCTIONS


def commands(group: click.Group = GROUP, path: str = "spotify-pipeline") -> list[tuple[str, click.Command]]:
    """Every (sub)command, depth first."""
    found: list[tuple[str, click.Command]] = [(path, group)]
    for name, sub in group.commands.items():
        found += commands(sub, f"{path} {name}") if isinstance(sub, click.Group) else [(f"{path} {name}", sub)]
    return found


def request_options(command: str) -> dict[str, click.Parameter]:
    sub = dict(commands())[f"spotify-pipeline {command}"]
    return {p.name: p for p in sub.params if p.name}


def test_every_argument_of_every_command_has_help() -> None:
    arguments = [(f"{path} {p.opts}", p.help) for path, c in commands() for p in c.params]
    helps = [(path, c.short_help) for path, c in commands()[1:]]
    assert len(arguments) > 60 and len(helps) > 10
    assert [name for name, text in arguments + helps if not (text or "").strip()] == []


@pytest.mark.parametrize("command", ["run", "trigger"])
def test_every_run_request_field_is_a_flag(command: str) -> None:
    options = request_options(command)
    assert [f for f in RUN_REQUEST_FIELDS if f not in options] == []
    # the flag is the field's name, e.g. --remove-markets
    assert [f for f in RUN_REQUEST_FIELDS if "--" + f.replace("_", "-") not in options[f].opts] == []


def test_run_and_trigger_accept_the_same_chart_sources() -> None:
    for command in ("run", "trigger"):
        choice = request_options(command)["chart_source"].type
        assert isinstance(choice, click.Choice) and tuple(choice.choices) == CHART_SOURCES


def parsed(*argv: str) -> dict[str, Any]:
    """The request flags `spotify-pipeline run ARGV` hands its command (parsed as the CLI parses them)."""
    seen: dict[str, Any] = {}
    run = GROUP.commands["run"]
    with run.make_context("run", list(argv)) as ctx:
        for f in REQUEST_FLAGS:
            seen[f.field] = ctx.params[f.field]
    return seen


def payload_of(*argv: str) -> dict[str, Any]:
    return request_payload(parsed(*argv), "run-x")


def test_flags_become_the_request_extract_reads() -> None:
    payload = payload_of(
        "--snapshot-date=2026-11-23",
        "--markets=GLOBAL, mx",
        "--playlists=MX=DemoUserMirrorBR000000",
        "--feature-providers=reccobeats,spotify",
        "--no-dataset-features",
        "--force-gates",
    )
    assert payload == {
        "run_id": "run-x",
        "snapshot_date": "2026-11-23",
        "markets": ["GLOBAL", "mx"],
        "playlists": {"MX": "DemoUserMirrorBR000000"},
        "feature_providers": ["reccobeats", "spotify"],
        "dataset_features": False,
        "force_gates": True,
    }
    request = parse_run_request(payload, Settings(), default_run_id="unused", today=date(2026, 11, 25))
    assert request.markets == ("GLOBAL", "MX") and request.playlists["MX"] == "DemoUserMirrorBR000000"
    assert request.run_id == "run-x" and request.force_gates and not request.dataset_features
    assert payload_of("--remove-markets=KR", "--snapshot-date=2026-11-23", "--markets=BR")["remove_markets"] == ["KR"]


def test_a_flag_the_function_would_refuse_is_refused_with_its_message() -> None:
    # Without MX in the playlists, extract refuses --markets MX: the CLI runs the same parser.
    with pytest.raises(InvalidEvent) as refused:
        parse_run_request(payload_of("--markets=GLOBAL,MX"), Settings(), default_run_id="x")
    assert refused.value.field == "markets" and refused.value.value == "MX"
    assert "no chart playlist configured" in str(refused.value)


def decided(week: str, outcome: str, reason: str | None = None, stage: str = "load") -> RunOutcome:
    return RunOutcome("r", week, outcome, stage, "2026-11-30T00:00:00+00:00", reason)  # type: ignore[arg-type]


def test_verdict_ends_at_a_decided_request() -> None:
    refused = [decided(REQUEST, "failed", "refused: field 'markets' = 'MX': no chart playlist", "extract")]
    assert run_verdict(refused) == Verdict(
        False, "failed at extract: refused: field 'markets' = 'MX': no chart playlist"
    )
    assert run_verdict([decided(REQUEST, "abandoned", "aged out", "sweep")], expected_weeks=3) == Verdict(
        False, "abandoned at sweep: aged out"
    )


def test_verdict_waits_for_every_expected_week() -> None:
    assert run_verdict([]) is None
    assert run_verdict([decided("2026-11-23", "succeeded")]) == Verdict(True)
    assert run_verdict([decided("2026-11-23", "succeeded")], expected_weeks=2) is None
    two = [decided("2026-11-23", "succeeded"), decided("2026-11-16", "superseded", "run b replaced it")]
    assert run_verdict(two, expected_weeks=2) == Verdict(True)
    failed = [decided("2026-11-23", "succeeded"), decided("2026-11-16", "failed", "x", "transform")]
    assert run_verdict(failed, expected_weeks=2) == Verdict(False, "2026-11-16 failed at transform: x")


def test_following_a_run_honours_its_timeout_when_the_warehouse_is_gone(capsys: Any) -> None:
    """A stopped or restarted stack under `run`: the follower gives up at --timeout and says why
    (a real BigQuery client pointed at a closed port)."""
    import socket
    import time

    from spotify_pipeline.clients import bigquery_client
    from spotify_pipeline.config import Settings
    from spotify_pipeline_tools.cli.follow import wait_for_run

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    gone = {"BIGQUERY_EMULATOR_HOST": f"http://127.0.0.1:{port}", "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}"}
    client = bigquery_client("local-project", "US", gone)
    began = time.monotonic()
    assert wait_for_run(client, Settings(project="local-project"), "gone-run", 4.0, env=gone) == 1
    assert time.monotonic() - began < 15.0
    err = capsys.readouterr().err
    assert "did not finish within 4 s" in err and "the stack could not be read" in err and "stack status" in err


def test_run_refuses_to_publish_a_request_over_the_size_limit() -> None:
    """12,000 markets on the command line (72 KB): refused before parsing, before anything is uploaded
    or published (no stack, no client: prepare_request raises first), naming the size and the limit."""
    from spotify_pipeline_tools.cli.request import prepare_request

    flags = parsed("--markets", ",".join(["BR"] * 12_000))
    with pytest.raises(InvalidEvent) as info:
        prepare_request(flags, Settings(), {}, "run-x")
    assert info.value.field == "message.data"
    assert str(info.value).startswith("run request: field 'message.data' = '72,") and "65,536 bytes" in str(info.value)


@pytest.mark.parametrize("name", ["x\u202evsc.csv", "a\nb.csv", "../recommend/x.csv", "./x.csv"])
def test_inbox_put_refuses_a_name_ingest_would_refuse_before_uploading(tmp_path: Any, name: str) -> None:
    """No client is built: the name is refused first, with the rule ingest applies to the event."""
    from spotify_pipeline_tools.cli.request import put_in_inbox

    chart = tmp_path / "chart.csv"
    chart.write_text("not read\n")
    with pytest.raises(InvalidEvent) as refused:
        put_in_inbox(str(chart), Settings(), {}, name)
    assert refused.value.field == "--name" and str(refused.value).startswith("inbox put: field '--name' = ")


def _cli(*argv: str, env: dict[str, str] | None = None, cwd: str | None = None) -> tuple[int, str]:
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).parent / "spotify-pipeline"
    full_env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", **(env or {})}
    out = subprocess.run([str(cli), *argv], capture_output=True, text=True, env=full_env, timeout=60, cwd=cwd)
    return out.returncode, out.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ("query", "SELECT 1", "--timeout", "0"),
        ("run", "--timeout", "-1"),
        ("status", "--limit", "-3"),
        ("status", "--stage", "nosuch"),
        ("dashboard", "--out", "d", "--weeks", "0"),
    ],
)
def test_out_of_range_numbers_and_unknown_stages_are_usage_errors(argv: tuple[str, ...], tmp_path: Any) -> None:
    """Refused by the parser (exit 2, the option named) before any target is resolved, instead of a
    traceback from urllib3 (`--timeout 0`) or a silent 'last -3 run(s)'."""
    code, err = _cli(*argv, env={"SPOTIFY_PIPELINE_STACK_DIR": str(tmp_path / "none")})
    assert code == 2, err
    assert f"Invalid value for '{argv[-2]}'" in err and "Traceback" not in err


def test_an_empty_project_flag_keeps_the_project_of_the_environment(tmp_path: Any) -> None:
    """`--project "$P"` with P unset must not switch a script to the local stack."""
    code, err = _cli(
        "query", "SELECT 1", "--project", "", "--timeout", "2",
        env={"SPOTIFY_PIPELINE_PROJECT": "envproj", "SPOTIFY_PIPELINE_STACK_DIR": str(tmp_path / "none")},
    )  # fmt: skip
    assert err.splitlines()[0].startswith("target: project envproj"), err
    assert code != 0  # no credentials here: what matters is that the local stack was not queried


def test_an_empty_run_id_is_refused_before_anything_is_published(tmp_path: Any) -> None:
    """It used to be published with an empty id that extract replaced, so `run` followed an id no
    stage used and waited out its whole timeout."""
    from spotify_pipeline_tools.cli.errors import BAD_INPUT, CliError
    from spotify_pipeline_tools.cli.publish import publish_request

    with pytest.raises(CliError) as refused:
        publish_request(None, parsed("--run-id", " "), "run")  # type: ignore[arg-type]  # no target is touched
    assert refused.value.code == BAD_INPUT and "--run-id is empty" in str(refused.value)


def test_recommend_refuses_to_write_over_its_own_features_file(tmp_path: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = tmp_path / "g.parquet"
    columns = {"track_id": [f"t{i}" for i in range(20)]}
    columns |= {f: [i / 20 for i in range(20)] for f in ("danceability", "energy", "valence")}
    pq.write_table(pa.table({**columns, "loudness": [-5.0 - i for i in range(20)]}), features)
    before = features.read_bytes()
    for flag in ("--out", "--clusters-out"):
        extra = () if flag == "--out" else ("--out", str(tmp_path / "rec.parquet"))
        code, err = _cli("recommend", "--features", str(features), flag, str(features), *extra)
        assert code == 2 and f"{flag} {features} is the features file itself" in err, err
    assert features.read_bytes() == before


def test_recommend_refuses_outputs_it_cannot_write_before_any_work(tmp_path: Any) -> None:
    """A folder as --out, or a file as the folder of a side output: exit 2 with a hint, and the
    main output is not written (it used to be replaced before the side output failed)."""
    (tmp_path / "d.csv").mkdir()
    (tmp_path / "f.parquet").write_bytes(b"x")
    out = tmp_path / "rec.parquet"
    cases = [
        (("--out", str(tmp_path / "d.csv")), "is a folder"),
        (("--out", str(out), "--track-clusters-out", str(tmp_path / "d.csv")), "is a folder"),
        (("--out", str(tmp_path / "f.parquet" / "x.parquet")), "is a file, not a folder"),
    ]
    for argv, expected in cases:
        code, err = _cli("recommend", "--features", str(tmp_path / "missing.parquet"), *argv)
        assert code == 2 and expected in err, err
    assert not out.exists()


def test_package_finds_the_functions_from_any_folder(tmp_path: Any) -> None:
    code, err = _cli("package", "--out", str(tmp_path / "zips"), cwd=str(tmp_path))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "zips").iterdir()) == [f"{f}.zip" for f in sorted(FUNCTIONS)]
