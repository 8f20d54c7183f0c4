"""Offline wiring checks of infra/*.tf against the code, with python-hcl2.

Each ``check_*`` takes an :class:`Infra` (the parsed Terraform folder plus the repository it
belongs to) and returns a list of problems; ``run_all`` runs them all. tests/infra runs them on
the real tree (no problem expected) and on broken scratch copies (the right problem expected).

What they assert: every function's entry point exists in functions/<name>/main.py; the event
types and the Scheduler -> topic -> extract chain; the BigQuery tables come from the loader's
schema file (no second copy) with its partitioning and clustering; every environment variable
is one the code reads and the required ones are set; least-privilege IAM; no secret values;
the bucket's lifecycle; the APIs; the outputs. ``CHECKS`` also runs fresh_project.py's rules (what
a first apply on a fresh project needs). Generic rules that checkov (public buckets, uniform
access, ingress, basic roles) or the provider-schema check (names, provider pin) already apply
are left to them.

Usage: ``python infra/checks/wiring.py [INFRA_DIR]`` (exit 1 on problems).
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fresh_project
from infra_model import (
    CHECKS_DIR,
    STAGES,
    Infra,
    evaluate_default,
    expected_deployments,
    member,
    names,
    norm,
)
from schema_file import check_schema
from tfparse import block, blocks

PUBSUB_EVENT = "google.cloud.pubsub.topic.v1.messagePublished"
GCS_EVENT = "google.cloud.storage.object.v1.finalized"
REQUIRED_ENV = ("GOOGLE_CLOUD_PROJECT", "PIPELINE_BUCKET", "PIPELINE_DATASET")
SECRET_ENV = ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET")
REQUIRED_APIS = {
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "iam.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
}
# The only project-level grants, each because no narrower resource can carry the role
# (the comments in iam.tf say why). Keyed by role: the one member allowed to hold it.
PROJECT_LEVEL_ALLOWED = {
    "roles/bigquery.jobUser": 'google_service_account.function["load"].member',
    "roles/eventarc.eventReceiver": "google_service_account.trigger.member",
    "roles/pubsub.publisher": "data.google_storage_project_service_account.gcs.member",
    "roles/logging.logWriter": "google_service_account.builder.member",
    # Conditioned to the gcf-v2-sources bucket (fresh_project.check_build_reads_sources).
    "roles/storage.objectViewer": "google_service_account.builder.member",
}


# ------------------------------------------------------------------------- checks


def check_entry_points(infra: Infra) -> list[str]:
    problems = []
    instances = infra.function_instances()
    stages = sorted(i.stage for i in instances)
    expected = expected_deployments(infra)
    if stages != expected:
        problems.append(f"functions deployed: {stages}, expected each of {expected} exactly once")
    for inst in instances:
        build = block(inst.body, "build_config")
        entry = str(build.get("entry_point", ""))
        entry = inst.stage if norm(entry) == "each.key" and "each.key" in inst.key_exprs else entry
        if entry != inst.stage:
            problems.append(f"{inst.address}: entry_point {entry!r}, expected {inst.stage!r}")
        main = infra.repo / "functions" / inst.source / "main.py"
        if not main.is_file():
            problems.append(f"{inst.address}: {main} does not exist")
            continue
        tree = ast.parse(main.read_text())
        defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry]
        if not defs:
            problems.append(f"{inst.address}: functions/{inst.source}/main.py defines no function {entry!r}")
        elif not any(ast.unparse(d).endswith("cloud_event") for d in defs[0].decorator_list):
            problems.append(
                f"{inst.address}: {entry}() in functions/{inst.source}/main.py is not a @cloud_event function"
            )
        source = block(build, "source", "storage_source")
        if norm(source.get("bucket")) != "google_storage_bucket.sources.name":
            problems.append(f"{inst.address}: source bucket must be google_storage_bucket.sources")
        if norm(source.get("object")) not in names(
            inst.key_exprs, "google_storage_bucket_object.function_source[{key}].name"
        ):
            problems.append(f"{inst.address}: source object is not function_source of {inst.source}")
    objects = infra.resources("google_storage_bucket_object").get("function_source")
    if objects is None:
        problems.append("google_storage_bucket_object.function_source (the function zips) is missing")
    else:
        if sorted(infra.resolve_list(objects.get("for_each")) or []) != sorted(STAGES):
            problems.append("google_storage_bucket_object.function_source must have one object per function")
        if "filesha256(" not in str(objects.get("name")) and "filemd5(" not in str(objects.get("name")):
            problems.append("function source object names must carry the zip's hash (filesha256/filemd5)")
        if "${var.functions_source_dir}/${each.key}.zip" not in str(objects.get("source")):
            problems.append("function source objects must upload ${var.functions_source_dir}/<name>.zip")
    if infra.variable_default("functions_source_dir") != "../build/functions":
        problems.append(
            "variable functions_source_dir must default to ../build/functions (where `make package` writes)"
        )
    return problems


def check_triggers(infra: Infra) -> list[str]:
    problems = []
    trigger_region = norm(infra.config["locals"].get("trigger_region", ""))
    if trigger_region != "lower(var.bucket_location)":
        problems.append("local.trigger_region must be lower(var.bucket_location)")
    data_bucket = infra.resources("google_storage_bucket").get("data", {})
    if norm(data_bucket.get("location")) != "var.bucket_location":
        problems.append("google_storage_bucket.data must be in var.bucket_location")
    sizing = infra.variable_default("function_sizing") or {}
    for inst in infra.function_instances():
        where = inst.address
        trig = blocks(inst.body.get("event_trigger"))
        if len(trig) != 1:
            problems.append(f"{where}: needs exactly one event_trigger")
            continue
        t = trig[0]
        if t.get("retry_policy") != "RETRY_POLICY_RETRY":
            problems.append(f"{where}: retry_policy must be RETRY_POLICY_RETRY (stages are idempotent)")
        if norm(t.get("service_account_email")) != "google_service_account.trigger.email":
            problems.append(f"{where}: event_trigger must use the trigger service account")
        if inst.source == "extract" and inst.stage != "extract" and t.get("event_type") != GCS_EVENT:
            problems.append(f"{where}: {inst.stage} must be triggered by {GCS_EVENT}")
        if inst.stage == "extract":
            if t.get("event_type") != PUBSUB_EVENT:
                problems.append(f"{where}: extract must be triggered by {PUBSUB_EVENT}")
            if norm(t.get("pubsub_topic")) != "google_pubsub_topic.ticks.id":
                problems.append(f"{where}: extract must listen to google_pubsub_topic.ticks")
        else:
            if t.get("event_type") != GCS_EVENT:
                problems.append(f"{where}: {inst.stage} must be triggered by {GCS_EVENT}")
            if norm(t.get("trigger_region")) != "local.trigger_region":
                problems.append(f"{where}: trigger_region must be the bucket's location (local.trigger_region)")
            filters = {f.get("attribute"): norm(f.get("value")) for f in blocks(t.get("event_filters"))}
            if filters != {"bucket": "google_storage_bucket.data.name"}:
                problems.append(f"{where}: event_filters must select the data bucket (bucket = data.name) only")
        svc = block(inst.body, "service_config")
        if "max_instance_count" not in svc:
            problems.append(f"{where}: max_instance_count must bound the instances")
        if norm(svc.get("service_account_email")) not in names(
            inst.key_exprs, "google_service_account.function[{key}].email"
        ):
            problems.append(f"{where}: must run as the service account function[{inst.source}]")
        if "time_sleep.iam_propagation" not in {norm(d) for d in inst.body.get("depends_on", [])}:
            problems.append(f"{where}: must depend on time_sleep.iam_propagation")
        size = sizing.get(inst.source)
        if not isinstance(size, dict):
            problems.append(f"variable function_sizing has no default for {inst.stage}")
        elif not (1 <= int(size["max_instances"]) <= 10 and 60 <= int(size["timeout_seconds"]) <= 540):
            problems.append(f"function_sizing.{inst.stage}: max_instances 1-10 and timeout 60-540 s expected")
    return problems


def check_schedule(infra: Infra) -> list[str]:
    # The sources and providers the code accepts (config since the data-sources work, events before).
    from spotify_pipeline import config, events
    from spotify_pipeline.config import ConfigError, Settings
    from spotify_pipeline.events import RUN_REQUEST_FIELDS, InvalidEvent, parse_run_request

    chart_sources = tuple(getattr(config, "CHART_SOURCES", ()) or getattr(events, "CHART_SOURCES", ()))
    providers = tuple(getattr(config, "FEATURE_PROVIDERS", ()) or getattr(events, "FEATURE_PROVIDERS", ()))

    problems = []
    jobs = infra.resources("google_cloud_scheduler_job")
    if len(jobs) != 1:
        return [f"expected one google_cloud_scheduler_job, found {len(jobs)}"]
    job = next(iter(jobs.values()))
    target = blocks(job.get("pubsub_target"))
    if len(target) != 1 or norm(target[0].get("topic_name")) != "google_pubsub_topic.ticks.id":
        problems.append("the scheduler job must publish to google_pubsub_topic.ticks")
    elif norm(target[0].get("data")) != "base64encode(jsonencode(local.tick_message))":
        problems.append("the scheduler job's data must be base64encode(jsonencode(local.tick_message))")
    if norm(job.get("schedule")) != "var.schedule" or infra.variable_default("schedule") != "0 9 * * 1":
        problems.append("schedule must be var.schedule, default weekly on Monday 09:00 (0 9 * * 1)")
    if norm(job.get("time_zone")) != "var.time_zone":
        problems.append("time_zone must be var.time_zone")
    message = infra.config["locals"].get("tick_message", {})
    unknown = sorted(set(message) - set(RUN_REQUEST_FIELDS))
    if unknown:
        problems.append(f"local.tick_message has fields the code rejects: {unknown}")
    # With every variable at its default, extract's environment must be valid configuration and
    # the weekly tick a valid run request, as the code parses them.
    env: dict[str, str] = {}
    for name, value in {
        **infra.config["locals"].get("common_env", {}),
        **infra.config["locals"].get("function_env", {}).get("extract", {}),
    }.items():
        evaluated = evaluate_default(infra, value)
        if evaluated is not None:
            env[name] = evaluated
    payload = {k: evaluate_default(infra, v) or v for k, v in message.items()}
    try:
        settings = Settings.from_env(env)
        parse_run_request(payload, settings, default_run_id="scheduler")
    except ConfigError as exc:
        problems.append(f"extract's default environment is rejected by the code: {exc}")
    except InvalidEvent as exc:
        problems.append(f"the default weekly tick {payload} is not a valid run request: {exc}")
    for var, allowed in (("chart_source", chart_sources), ("feature_providers", providers)):
        conditions = " ".join(str(v.get("condition")) for v in blocks(infra.config["variable"][var].get("validation")))
        found = re.search(r"contains\((\[[^\]]*\])", conditions)
        if not found or json.loads(found.group(1)) != list(allowed):
            problems.append(f"variable {var}: validation must allow exactly {list(allowed)} (spotify_pipeline.config)")
    return problems


def check_env(infra: Infra) -> list[str]:
    from spotify_pipeline.config import ENVIRONMENT_VARIABLES

    problems = []
    common = infra.config["locals"].get("common_env", {})
    per_function = infra.config["locals"].get("function_env", {})
    for name in REQUIRED_ENV:
        if name not in common:
            problems.append(f"local.common_env must set {name} (every function needs it)")
    if (
        norm(common.get("PIPELINE_BUCKET")) != "local.data_bucket_name"
        or norm(infra.resources("google_storage_bucket").get("data", {}).get("name")) != "local.data_bucket_name"
    ):
        problems.append("PIPELINE_BUCKET must name the data bucket (local.data_bucket_name)")
    if norm(common.get("PIPELINE_DATASET")) != "var.dataset_id":
        problems.append("PIPELINE_DATASET must be var.dataset_id")
    if norm(common.get("GOOGLE_CLOUD_PROJECT")) != "var.project_id":
        problems.append("GOOGLE_CLOUD_PROJECT must be var.project_id")
    for inst in infra.function_instances():
        svc = block(inst.body, "service_config")
        env_expr = norm(svc.get("environment_variables"))
        if env_expr not in names(inst.key_exprs, "merge(local.common_env,local.function_env[{key}])"):
            problems.append(
                f"{inst.address}: environment_variables must be "
                f"merge(local.common_env, local.function_env[{inst.source}])"
            )
        env_names = set(common) | set(per_function.get(inst.source, {}))
        for name in sorted(env_names):
            if name not in ENVIRONMENT_VARIABLES:
                problems.append(
                    f"{inst.address}: sets {name}, which the code does not read (config.ENVIRONMENT_VARIABLES)"
                )
        for name in SECRET_ENV:
            if name in env_names:
                problems.append(f"{inst.address}: {name} must come from Secret Manager, not a plain variable")
    # extract reads each credential from the secret Terraform creates for it (sources.credentials).
    extract_env = per_function.get("extract", {})
    for name in SECRET_ENV:
        wanted = f'google_secret_manager_secret.spotify["{name}"].secret_id'
        if norm(extract_env.get(f"{name}_SECRET_ID")) != norm(wanted):
            problems.append(f"local.function_env.extract must set {name}_SECRET_ID = {wanted}")
    stray = set(per_function) - set(STAGES)
    if stray:
        problems.append(f"local.function_env has unknown functions {sorted(stray)}")
    return problems


def check_iam(infra: Infra) -> list[str]:
    problems = []
    resources = infra.config["resource"]
    for rtype, named in resources.items():
        for name in named:
            if rtype.endswith("_iam_policy") or rtype.endswith("_iam_binding"):
                problems.append(f"{rtype}.{name}: authoritative IAM; grant with *_iam_member")
    project_grants = {}
    for name, body in infra.resources("google_project_iam_member").items():
        role = str(body.get("role"))
        project_grants[role] = member(body)
        allowed = PROJECT_LEVEL_ALLOWED.get(role)
        if allowed is None:
            problems.append(
                f"google_project_iam_member.{name}: {role} at project level; grant it on a narrower resource"
            )
        elif member(body) != norm(allowed):
            problems.append(f"google_project_iam_member.{name}: {role} may be held at project level by {allowed} only")
    for role, holder in PROJECT_LEVEL_ALLOWED.items():
        if project_grants.get(role) != norm(holder):
            problems.append(f"{holder} needs {role} (project level)")

    def grants(rtype: str) -> list[tuple[str, dict[str, Any], list[str]]]:
        out = []
        for name, body in infra.resources(rtype).items():
            keys = infra.resolve_list(body["for_each"]) if "for_each" in body else None
            out.append((name, body, keys or []))
        return out

    # Data bucket: every function's own account, object roles only.
    bucket_members: set[str] = set()
    for name, body, keys in grants("google_storage_bucket_iam_member"):
        bucket = norm(body.get("bucket"))
        role = str(body.get("role"))
        if bucket == "google_storage_bucket.data.name":
            if role not in ("roles/storage.objectUser", "roles/storage.objectViewer", "roles/storage.objectCreator"):
                problems.append(
                    f"google_storage_bucket_iam_member.{name}: {role} on the data bucket; object roles only"
                )
            for key in keys:
                bucket_members.add(member(body).replace("each.key", f'"{key}"'))
            if not keys:
                bucket_members.add(member(body))
    for stage in STAGES:
        if norm(f'google_service_account.function["{stage}"].member') not in bucket_members:
            problems.append(f"function {stage} has no object role on the data bucket")
    # BigQuery: dataset-level editor for load only; the others may only write their run records.
    for name, body in infra.resources("google_bigquery_dataset_iam_member").items():
        if member(body) != norm('google_service_account.function["load"].member'):
            problems.append(f"google_bigquery_dataset_iam_member.{name}: only load may edit the whole dataset")
    if not any(
        member(b) == norm('google_service_account.function["load"].member')
        and b.get("role") == "roles/bigquery.dataEditor"
        for b in infra.resources("google_bigquery_dataset_iam_member").values()
    ):
        problems.append("load needs roles/bigquery.dataEditor on the dataset (google_bigquery_dataset_iam_member)")
    from spotify_pipeline.schema import table_names

    # The only tables the functions other than load may write, each granted per table: their run
    # records (tables.json's "records" group).
    records = table_names("records")
    record_tables = {norm(f'google_bigquery_table.tables["{t}"].table_id') for t in records}
    for name, body, _ in grants("google_bigquery_table_iam_member"):
        if norm(body.get("table_id")) not in record_tables:
            problems.append(
                f"google_bigquery_table_iam_member.{name}: only {' and '.join(records)} may be granted per table"
            )
    # Secrets: extract only.
    secret_grants = infra.resources("google_secret_manager_secret_iam_member")
    if not secret_grants:
        problems.append("extract needs secretAccessor on the Spotify secrets")
    for name, body in secret_grants.items():
        if member(body) != norm('google_service_account.function["extract"].member'):
            problems.append(f"google_secret_manager_secret_iam_member.{name}: only extract may read the secrets")
        if body.get("role") != "roles/secretmanager.secretAccessor":
            problems.append(f"google_secret_manager_secret_iam_member.{name}: role must be secretAccessor")
        if (
            norm(body.get("for_each")) != "google_secret_manager_secret.spotify"
            or norm(body.get("secret_id")) != "each.value.id"
        ):
            problems.append(f"google_secret_manager_secret_iam_member.{name}: grant on each Spotify secret itself")
    # Invocation: the trigger account, on each function's own Cloud Run service.
    invokers = infra.resources("google_cloud_run_v2_service_iam_member")
    invoked = set()
    for name, body in invokers.items():
        if body.get("role") != "roles/run.invoker" or member(body) != "google_service_account.trigger.member":
            problems.append(f"google_cloud_run_v2_service_iam_member.{name}: run.invoker for the trigger account only")
        invoked |= set(re.findall(r"google_cloudfunctions2_function\.(\w+)", str(body.get("for_each"))))
    if invoked != set(infra.resources("google_cloudfunctions2_function")):
        problems.append("the trigger account needs run.invoker on every function's service")
    # IAM propagation before Eventarc creates the triggers.
    sleep = infra.resources("time_sleep").get("iam_propagation")
    needed = {
        "google_project_iam_member.trigger_receives_events",
        "google_project_iam_member.gcs_agent_publishes_events",
    }
    if sleep is None or not needed <= {norm(d) for d in sleep.get("depends_on", [])}:
        problems.append("time_sleep.iam_propagation must wait for the eventReceiver and GCS-agent publisher grants")
    gcs_agent = infra.config["data"].get("google_storage_project_service_account", {})
    if "gcs" not in gcs_agent:
        problems.append("data.google_storage_project_service_account.gcs (the GCS service agent) is missing")
    sas = infra.resources("google_service_account")
    if (
        sorted(infra.resolve_list(sas.get("function", {}).get("for_each")) or []) != sorted(STAGES)
        or "trigger" not in sas
    ):
        problems.append("one service account per function (google_service_account.function) and a trigger account")
    return problems


def check_secrets(infra: Infra) -> list[str]:
    problems = []
    if infra.resources("google_secret_manager_secret_version"):
        problems.append("google_secret_manager_secret_version: secret values must not pass through Terraform")
    secrets = infra.resources("google_secret_manager_secret").get("spotify")
    if secrets is None or sorted(infra.config["locals"].get("spotify_secrets", {})) != sorted(SECRET_ENV):
        problems.append("google_secret_manager_secret.spotify must create one secret per Spotify credential")
    for name, body in infra.config["variable"].items():
        if re.search(r"secret|password|token|credential|client_id", name) and body.get("default") not in (None, ""):
            problems.append(f"variable {name}: a secret must not have a default")
    texts = dict(infra.config["files"])
    example = infra.infra_dir / "terraform.tfvars.example"
    if example.is_file():
        texts[example.name] = example.read_text()
    for fname, text in texts.items():
        if re.search(r"(?<![0-9a-fA-F])[0-9a-f]{32}(?![0-9a-fA-F])", text):
            problems.append(f"{fname}: contains a 32-hex-digit string, the shape of a Spotify client id/secret")
        if "secret_data" in text:
            problems.append(f"{fname}: secret_data puts a secret value in the state")
    return problems


def check_storage(infra: Infra) -> list[str]:
    problems = []
    buckets = infra.resources("google_storage_bucket")
    data = buckets.get("data")
    if data is None:
        return ["google_storage_bucket.data is missing"]
    if not any(v.get("enabled") is True for v in blocks(data.get("versioning"))):
        problems.append("google_storage_bucket.data: versioning must be enabled")
    rules = blocks(data.get("lifecycle_rule"))
    raw_rule = [
        r
        for r in rules
        if any("extract/" in (c.get("matches_prefix") or []) for c in blocks(r.get("condition")))
        and any(a.get("type") == "Delete" for a in blocks(r.get("action")))
    ]
    if not raw_rule or norm(block(raw_rule[0], "condition").get("age")) != "var.raw_retention_weeks*7":
        problems.append(
            "data bucket: a Delete rule for extract/ objects older than var.raw_retention_weeks weeks is missing"
        )
    if not any("days_since_noncurrent_time" in c for r in rules for c in blocks(r.get("condition"))):
        problems.append("data bucket: a rule deleting noncurrent versions is missing")
    if "sources" not in buckets:
        problems.append("google_storage_bucket.sources (function sources, apart from the data) is missing")
    return problems


def check_services(infra: Infra) -> list[str]:
    services = infra.resources("google_project_service").get("enabled")
    enabled = set(infra.resolve_list(services.get("for_each")) or []) if services else set()
    missing = sorted(REQUIRED_APIS - enabled)
    return [f"google_project_service.enabled misses {missing}"] if missing else []


def check_outputs(infra: Infra) -> list[str]:
    problems = []
    outputs = {name: str(body.get("value")) for name, body in infra.config["output"].items()}
    expected = {
        "data_bucket": "google_storage_bucket.data.name",
        "dataset": "google_bigquery_dataset.charts.dataset_id",
        "ticks_topic": "google_pubsub_topic.ticks",
        "run_now_command": "gcloud pubsub topics publish ${google_pubsub_topic.ticks.name}",
        "trigger_command": "spotify-pipeline trigger --project ${var.project_id}",
        "looker_studio_create_url": "https://lookerstudio.google.com/reporting/create?",
    }
    for name, needle in expected.items():
        if needle not in outputs.get(name, ""):
            problems.append(f"output {name} must contain {needle!r}")
    if "snapshot_date" not in outputs.get("run_now_command", ""):
        problems.append("output run_now_command must publish a snapshot_date")
    # urlencode writes a space as "+", which the logs URL's path and Looker Studio keep as a plus.
    for fname, text in infra.config["files"].items():
        for found in re.finditer(r"urlencode\(", text):
            if not text[: found.start()].endswith("replace(") or not re.match(
                r'urlencode\([^()]*(?:\([^()]*\))?[^()]*\),\s*"\+",\s*"%20"\)', text[found.start() :]
            ):
                line = text.count("\n", 0, found.start()) + 1
                problems.append(f'{fname}:{line}: urlencode() must be wrapped in replace(..., "+", "%20") (spaces)')
    params = str(infra.config["locals"].get("looker_studio_params", ""))
    for needle in (
        "c.reportId=",
        "connector",
        "bigQuery",
        "TABLE",
        "projectId",
        "datasetId",
        "tableId",
        "local.dashboard_views",
    ):
        if needle not in params:
            problems.append(f"local.looker_studio_params must contain {needle!r} (Looker Studio linking API)")
    return problems


CHECKS: dict[str, Callable[[Infra], list[str]]] = {
    "entry_points": check_entry_points,
    "triggers": check_triggers,
    "schedule": check_schedule,
    "schema": check_schema,
    "env": check_env,
    "iam": check_iam,
    "secrets": check_secrets,
    "storage": check_storage,
    "services": check_services,
    "outputs": check_outputs,
    **fresh_project.CHECKS,
}


def run_all(infra: Infra) -> dict[str, list[str]]:
    results = {}
    for name, check in CHECKS.items():
        try:
            results[name] = check(infra)
        except (KeyError, TypeError, ValueError) as exc:
            results[name] = [f"check {name} could not read the configuration: {exc!r}"]
    return results


def main(argv: list[str]) -> int:
    infra_dir = Path(argv[0]) if argv else CHECKS_DIR.parent
    infra = Infra.load(infra_dir)
    src = infra.repo / "src"
    if src.is_dir() and str(src) not in sys.path:
        sys.path.insert(0, str(src))
    results = run_all(infra)
    failed = 0
    for name, problems in results.items():
        for problem in problems:
            print(f"[{name}] {problem}")
        failed += bool(problems)
    print(f"wiring: {len(results)} checks, {failed} with problems")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
