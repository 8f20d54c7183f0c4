"""python-hcl2 wiring checks (infra/checks/wiring.py): pass on infra/, fail on broken copies.

Entry points in code, event types, scheduler -> topic -> extract, the one schema file, env var
names against spotify_pipeline.config, least-privilege IAM, no secret values, bucket settings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import wiring
from infra_support import INFRA, REPO

from spotify_pipeline.config import ENVIRONMENT_VARIABLES


@pytest.fixture(scope="module")
def real() -> wiring.Infra:
    return wiring.Infra.load(INFRA, REPO)


@pytest.mark.parametrize("check", sorted(wiring.CHECKS))
def test_real_infra_passes(real: wiring.Infra, check: str) -> None:
    assert wiring.CHECKS[check](real) == []


def test_every_function_is_deployed_with_its_entry_point(real: wiring.Infra) -> None:
    deployed = {i.stage: i for i in real.function_instances()}
    assert set(wiring.STAGES) <= set(deployed)
    for stage in wiring.STAGES:
        assert (REPO / "functions" / stage / "main.py").read_text().count(f"def {stage}(") == 1


def test_env_var_names_are_read_by_the_code(real: wiring.Infra) -> None:
    """The direct cross-check: every name Terraform sets is in config.ENVIRONMENT_VARIABLES."""
    names = set(real.local("common_env"))
    for env in real.local("function_env").values():
        names |= set(env)
    names |= set(real.local("spotify_secrets"))
    names |= {f"{name}_SECRET_ID" for name in real.local("spotify_secrets")}
    assert names <= set(ENVIRONMENT_VARIABLES), names - set(ENVIRONMENT_VARIABLES)
    assert {"GOOGLE_CLOUD_PROJECT", "PIPELINE_BUCKET", "PIPELINE_DATASET"} <= set(real.local("common_env"))


def run_check(root: Path, check: str) -> list[str]:
    return wiring.CHECKS[check](wiring.Infra.load(root / "infra", root))


BROKEN = [
    pytest.param(
        "infra/functions.tf",
        'entry_point       = "extract"',
        'entry_point       = "extrac"',
        "entry_points",
        "entry_point 'extrac', expected 'extract'",
        id="entry point misspelt",
    ),
    pytest.param(
        "functions/load/main.py",
        "def load(",
        "def load_stage(",
        "entry_points",
        "functions/load/main.py defines no function 'load'",
        id="entry point gone from code",
    ),
    pytest.param(
        "infra/storage.tf",
        '-${filesha256("${var.functions_source_dir}/${each.key}.zip")}',
        "",
        "entry_points",
        "must carry the zip's hash",
        id="zip not named by hash",
    ),
    pytest.param(
        "infra/functions.tf",
        'event_type            = "google.cloud.pubsub.topic.v1.messagePublished"',
        'event_type            = "google.cloud.storage.object.v1.finalized"',
        "triggers",
        "extract must be triggered by",
        id="extract on the bucket",
    ),
    pytest.param(
        "infra/functions.tf",
        (
            "    # Eventarc requires the trigger in the bucket's location.\n"
            "    trigger_region        = local.trigger_region"
        ),
        "    trigger_region        = var.region",
        "triggers",
        "trigger_region must be the bucket's location",
        id="wrong trigger region",
    ),
    pytest.param(
        "infra/functions.tf",
        'retry_policy          = "RETRY_POLICY_RETRY"',
        'retry_policy          = "RETRY_POLICY_DO_NOT_RETRY"',
        "triggers",
        "retry_policy must be RETRY_POLICY_RETRY",
        id="no retries",
    ),
    pytest.param(
        "infra/functions.tf",
        "  depends_on = [time_sleep.iam_propagation]",
        "",
        "triggers",
        "must depend on time_sleep.iam_propagation",
        id="no IAM wait",
    ),
    pytest.param(
        "infra/trigger.tf",
        "topic_name = google_pubsub_topic.ticks.id",
        'topic_name = "projects/x/topics/y"',
        "schedule",
        "must publish to google_pubsub_topic.ticks",
        id="scheduler to another topic",
    ),
    pytest.param(
        "infra/variables.tf",
        'default     = "0 9 * * 1"',
        'default     = "0 9 * * *"',
        "schedule",
        "default weekly on Monday 09:00",
        id="not weekly",
    ),
    pytest.param(
        "infra/main.tf",
        "tick_message = {}",
        'tick_message = { market = "BR" }',
        "schedule",
        "local.tick_message has fields the code rejects: ['market']",
        id="tick field the code rejects",
    ),
    pytest.param(
        "infra/variables.tf",
        'default     = ["GLOBAL", "BR", "KR"]',
        'default     = ["GLOBAL", "BR", "XX"]',
        "schedule",
        "not a valid run request",
        id="default env rejected by code",
    ),
    pytest.param(
        "infra/variables.tf",
        'contains(["spotify-playlist", "charts-csv"], var.chart_source)',
        'contains(["spotify-playlist"], var.chart_source)',
        "schedule",
        "variable chart_source: validation must allow exactly",
        id="chart sources drift",
    ),
    pytest.param(
        "infra/bigquery.tf",
        'schema_file = "${path.module}/../src/spotify_pipeline/schemas/tables.json"',
        'schema_file = "${path.module}/tables.json"',
        "schema",
        "expected the loader's schema file",
        id="second schema copy",
    ),
    pytest.param(
        "infra/bigquery.tf",
        "field = each.value.partition_field",
        'field = "snapshot_date"',
        "schema",
        "partitioned on each.value.partition_field",
        id="partitioning not from schema",
    ),
    pytest.param(
        "infra/bigquery.tf",
        "deletion_protection = var.deletion_protection",
        "deletion_protection = false",
        "schema",
        "deletion_protection = var.deletion_protection",
        id="no deletion protection",
    ),
    pytest.param(
        "infra/main.tf",
        "PIPELINE_BUCKET                = local.data_bucket_name",
        'PIPELINE_BUCKET                = local.data_bucket_name\n    PIPELINE_BUKET = "x"',
        "env",
        "sets PIPELINE_BUKET, which the code does not read",
        id="env name the code does not read",
    ),
    pytest.param(
        "infra/main.tf",
        "    GOOGLE_CLOUD_PROJECT           = var.project_id\n",
        "",
        "env",
        "local.common_env must set GOOGLE_CLOUD_PROJECT",
        id="required env missing",
    ),
    pytest.param(
        "infra/main.tf",
        'PIPELINE_MARKETS              = join(",", var.markets)',
        'PIPELINE_MARKETS              = join(",", var.markets)\n      SPOTIFY_CLIENT_SECRET = "x"',
        "env",
        "SPOTIFY_CLIENT_SECRET must come from Secret Manager",
        id="secret as plain env",
    ),
    pytest.param(
        "infra/iam.tf",
        (
            'resource "google_storage_bucket_iam_member" "function_objects" {\n  for_each = toset(local.functions)\n\n'
            "  bucket = google_storage_bucket.data.name"
        ),
        (
            'resource "google_project_iam_member" "function_objects" {\n  for_each = toset(local.functions)\n\n'
            "  project = var.project_id"
        ),
        "iam",
        "roles/storage.objectUser at project level",
        id="bucket role at project level",
    ),
    pytest.param(
        "infra/iam.tf",
        'role    = "roles/bigquery.jobUser"\n  member  = google_service_account.function["load"].member',
        'role    = "roles/bigquery.jobUser"\n  member  = google_service_account.function["transform"].member',
        "iam",
        "roles/bigquery.jobUser may be held at project level by",
        id="jobUser for another function",
    ),
    pytest.param(
        "infra/iam.tf",
        (
            'role      = "roles/secretmanager.secretAccessor"\n'
            '  member    = google_service_account.function["extract"].member'
        ),
        (
            'role      = "roles/secretmanager.secretAccessor"\n'
            '  member    = google_service_account.function["load"].member'
        ),
        "iam",
        "only extract may read the secrets",
        id="secrets readable by load",
    ),
    pytest.param(
        "infra/iam.tf",
        (
            'resource "google_project_iam_member" "builder_writes_logs" {\n  project = var.project_id\n'
            '  role    = "roles/logging.logWriter"\n  member  = google_service_account.builder.member'
        ),
        (
            'resource "google_project_iam_binding" "builder_writes_logs" {\n  project = var.project_id\n'
            '  role    = "roles/logging.logWriter"\n  members = [google_service_account.builder.member]'
        ),
        "iam",
        "authoritative IAM",
        id="authoritative binding",
    ),
    pytest.param(
        "infra/secrets.tf",
        "  depends_on = [google_project_service.enabled]\n}",
        (
            "  depends_on = [google_project_service.enabled]\n}\n\n"
            'resource "google_secret_manager_secret_version" "v" {\n  secret      = "x"\n'
            "  secret_data = var.spotify_client_secret\n}"
        ),
        "secrets",
        "secret values must not pass through Terraform",
        id="secret value in Terraform",
    ),
    pytest.param(
        "infra/storage.tf",
        'matches_prefix = ["extract/", "inbox/"]',
        'matches_prefix = ["raw/"]',
        "storage",
        "a Delete rule for extract/ objects",
        id="raw kept forever",
    ),
    pytest.param(
        "infra/main.tf",
        '"eventarc.googleapis.com",',
        "",
        "services",
        "eventarc.googleapis.com",
        id="API not enabled",
    ),
    pytest.param(
        "infra/outputs.tf",
        'output "run_now_command"',
        'output "run_command"',
        "outputs",
        "output run_now_command must contain",
        id="no run-now command",
    ),
]


# The defects of issue 12: each passed every other offline check and failed a first apply.
FRESH_PROJECT = [
    pytest.param(
        "infra/iam.tf",
        'resource "google_project_iam_member" "builder_reads_gcf_sources" {',
        'resource "google_storage_bucket_iam_member" "builder_reads_gcf_sources" {\n  bucket = "x"',
        "build_reads_sources",
        "google_cloudfunctions2_function.extract: its build account builder cannot read gcf-v2-sources-",
        id="1 build account cannot read gcf-v2-sources",
    ),
    pytest.param(
        "infra/iam.tf",
        '  condition {\n    title       = "gcf-v2-sources bucket only"',
        '  dynamic "condition" {\n    for_each = []\n    content {}\n  }\n  condition_x {\n    title = "x"',
        "build_reads_sources",
        "roles/storage.objectViewer on every bucket of the project; narrow it with a condition",
        id="1 gcf-v2-sources read without condition",
    ),
    pytest.param(
        "infra/iam.tf",
        "    google_project_iam_member.builder_reads_gcf_sources,\n",
        "",
        "build_reads_sources",
        "must wait (time_sleep) after google_project_iam_member.builder_reads_gcf_sources",
        id="1 no wait after the build grant",
    ),
    pytest.param(
        "infra/monitoring.tf",
        "      disable_metric_validation = true # the log-based metric is created in the same apply\n    }",
        (
            "      disable_metric_validation = true # the log-based metric is created in the same apply\n    }\n"
            '    condition_threshold {\n      filter = "x"\n      comparison = "COMPARISON_GT"\n'
            '      duration = "0s"\n      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"\n    }'
        ),
        "alert_conditions",
        "condition_threshold sets evaluation_missing_data with duration '0s'; the API requires a non-zero duration",
        id="2 evaluation_missing_data with zero duration",
    ),
    pytest.param(
        "infra/monitoring.tf",
        "      disable_metric_validation = true # the log-based metric is created in the same apply\n",
        "",
        "alert_conditions",
        "stage_failed: a condition on google_logging_metric.stage_failures, created in the same apply, is refused",
        id="3 alert races its metric",
    ),
    pytest.param(
        "infra/main.tf",
        'resource "time_sleep" "service_agents" {\n  create_duration = "${var.service_agent_wait_seconds}s"',
        'resource "time_sleep" "service_agents" {\n  create_duration = "0s"',
        "service_agents",
        "no time_sleep follows google_project_service.enabled",
        id="4 no wait for service agents",
    ),
    pytest.param(
        "infra/functions.tf",
        "  depends_on = [time_sleep.iam_propagation]\n",  # the first: extract's
        "",
        "service_agents",
        "google_cloudfunctions2_function.extract: its Eventarc trigger must be created after time_sleep.service_agents",
        id="4 functions do not wait for service agents",
    ),
    pytest.param(
        "infra/functions.tf",
        '    environment_variables            = merge(local.common_env, local.function_env["extract"])\n',
        (
            '    environment_variables            = merge(local.common_env, local.function_env["extract"])\n'
            '    secret_environment_variables {\n      key = "SPOTIFY_CLIENT_ID"\n      project_id = var.project_id\n'
            '      secret = google_secret_manager_secret.spotify["SPOTIFY_CLIENT_ID"].secret_id\n'
            '      version = "latest"\n    }\n'
        ),
        "no_secret_version_needed",
        "extract: secret_environment_variables makes the deployment fail until the secret has a version",
        id="5 secret mounted at deploy time",
    ),
    pytest.param(
        "infra/main.tf",
        'SPOTIFY_CLIENT_SECRET_SECRET_ID = google_secret_manager_secret.spotify["SPOTIFY_CLIENT_SECRET"].secret_id',
        "",
        "env",
        "local.function_env.extract must set SPOTIFY_CLIENT_SECRET_SECRET_ID",
        id="5 extract not told which secret to read",
    ),
    pytest.param(
        "infra/outputs.tf",
        'query=${replace(urlencode(local.logs_filter), "+", "%20")}',
        "query=${urlencode(local.logs_filter)}",
        "outputs",
        'urlencode() must be wrapped in replace(..., "+", "%20")',
        id="6 spaces become plus signs",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "check", "expected"), BROKEN + FRESH_PROJECT)
def test_broken_copy_fails(
    break_copy: Callable[[str, str, str], Path], file: str, old: str, new: str, check: str, expected: str
) -> None:
    root = break_copy(file, old, new)
    problems = run_check(root, check)
    assert any(expected in p for p in problems), problems


def _edit_schema(root: Path, change: Callable[[dict], None]) -> None:  # type: ignore[type-arg]
    path = root / "src" / "spotify_pipeline" / "schemas" / "tables.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_schema_file_partition_field_must_be_a_date_column(scratch: Path) -> None:
    _edit_schema(scratch, lambda d: d["tables"]["chart_entries"].update(partition_field="week"))
    assert any("chart_entries: partition_field" in p for p in run_check(scratch, "schema"))


def test_schema_file_must_keep_the_loaders_tables(scratch: Path) -> None:
    _edit_schema(scratch, lambda d: d["tables"].pop("recommendations"))
    assert any("'recommendations' the loader writes is missing" in p for p in run_check(scratch, "schema"))


def test_schema_file_tables_have_a_known_group(scratch: Path) -> None:
    """The group gives load and the stages their tables (schema.table_names)."""
    _edit_schema(scratch, lambda d: d["tables"]["clusters"].pop("group"))
    problems = run_check(scratch, "schema")
    assert any("clusters: group must be one of transform, recommend, records" in p for p in problems), problems


def test_dashboard_views_in_the_schema_file(scratch: Path) -> None:
    """Views added under "views" are picked up as they are; unknown placeholders are reported."""
    sql = "SELECT * FROM `{project}.{dataset}.chart_entries`"
    _edit_schema(scratch, lambda d: d.setdefault("views", {}).update(v_top={"description": "x", "sql": sql}))
    assert run_check(scratch, "schema") == []
    _edit_schema(scratch, lambda d: d["views"].update(v_bad={"sql": "SELECT * FROM `{projct}.x`"}))
    assert any("unknown placeholder {projct}" in p for p in run_check(scratch, "schema"))
