"""Offline rules for what a first `terraform apply` on a fresh project needs, each one a defect that
passed every other offline check and failed against the real APIs (docs/deploy.md, "First apply
on a fresh project"):

* build_reads_sources: a gen2 function's build account can read the gcf-v2-sources bucket, the
  read is narrowed to that bucket by an IAM condition, and the function waits for the grant
  (provider issue #20571: "Access to bucket gcf-v2-sources-... denied").
* alert_conditions: no condition with evaluation_missing_data and a zero duration (the API rejects
  it); a condition on a log-based metric of this configuration has disable_metric_validation or
  waits for the metric (provider issue #11102: 404 "Cannot find metric(s)").
* service_agents: a wait follows enabling the APIs, and every function (its Eventarc trigger)
  comes after it ("Permission denied while using the Eventarc Service Agent").
* no_secret_version_needed: no function mounts a secret (a plain apply would fail until a version
  exists), and the deployment creates none; extract reads the secrets at run time.

Each ``check_*`` takes an :class:`Infra` and returns its problems, like wiring.py's.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infra_model import Infra, member, norm, seconds
from tfparse import block, blocks

SERVICES = "google_project_service.enabled"
# Roles whose permissions include storage.objects.get (what a build needs of its source).
OBJECT_READ_ROLES = {"roles/storage.objectViewer", "roles/storage.objectUser", "roles/storage.objectAdmin"}
GCF_SOURCES = "gcf-v2-sources-"
THRESHOLD_CONDITIONS = ("condition_threshold", "condition_absent", "condition_matched_log")


def _sleeps(infra: Infra) -> dict[str, dict[str, Any]]:
    """time_sleep resources that wait a non-zero time on create, by address."""
    return {
        f"time_sleep.{name}": body
        for name, body in infra.resources("time_sleep").items()
        if seconds(body.get("create_duration")) != 0
    }


def _waits_after(infra: Infra, address: str, target: str) -> bool:
    """Whether ``address`` is created after a wait that itself comes after ``target``."""
    before = infra.dependencies(address)
    return any(sleep in before and target in infra.dependencies(sleep) for sleep in _sleeps(infra))


def check_build_reads_sources(infra: Infra) -> list[str]:
    problems: list[str] = []
    for name, fn in infra.resources("google_cloudfunctions2_function").items():
        address = f"google_cloudfunctions2_function.{name}"
        builder_expr = norm(block(fn, "build_config").get("service_account"))
        builder = re.fullmatch(r"google_service_account\.(\w+)\.(?:id|email|name)", builder_expr)
        if builder is None:
            continue  # the default build account: Google grants it what it needs
        account = f"google_service_account.{builder.group(1)}.member"
        grants = [
            (f"google_project_iam_member.{grant}", body)
            for grant, body in infra.resources("google_project_iam_member").items()
            if member(body) == account and body.get("role") in OBJECT_READ_ROLES
        ]
        grants += [
            (f"google_storage_bucket_iam_member.{grant}", body)
            for grant, body in infra.resources("google_storage_bucket_iam_member").items()
            if member(body) == account
            and body.get("role") in OBJECT_READ_ROLES
            and GCF_SOURCES in str(body.get("bucket"))
        ]
        if not grants:
            problems.append(
                f"{address}: its build account {builder.group(1)} cannot read {GCF_SOURCES}<PROJECT_NUMBER>-<REGION>, "
                "where Cloud Build reads the copied source (grant an object read role)"
            )
            continue
        for grant, body in grants:
            if grant.startswith("google_project_iam_member."):
                expression = " ".join(infra.expand_locals(c.get("expression")) for c in blocks(body.get("condition")))
                if f"projects/_/buckets/{GCF_SOURCES}" not in expression:
                    problems.append(  # once, though every function's build uses it
                        f"{grant}: {body.get('role')} on every bucket of the project; narrow it with a condition "
                        f"on resource.name (projects/_/buckets/{GCF_SOURCES}...)"
                    )
            if not _waits_after(infra, address, grant):
                problems.append(f"{address}: must wait (time_sleep) after {grant}, or its first build is denied")
    return list(dict.fromkeys(problems))


def check_alert_conditions(infra: Infra) -> list[str]:
    problems = []
    metrics = {f"google_logging_metric.{name}" for name in infra.resources("google_logging_metric")}
    for name, policy in infra.resources("google_monitoring_alert_policy").items():
        address = f"google_monitoring_alert_policy.{name}"
        for condition in blocks(policy.get("conditions")):
            for kind in THRESHOLD_CONDITIONS:
                for body in blocks(condition.get(kind)):
                    if "evaluation_missing_data" in body and not seconds(body.get("duration", "0s")):
                        problems.append(
                            f"{address}: {kind} sets evaluation_missing_data with duration "
                            f"{body.get('duration', '(none)')!r}; the API requires a non-zero duration"
                        )
            promql = blocks(condition.get("condition_prometheus_query_language"))
            validated = not promql or any(p.get("disable_metric_validation") is not True for p in promql)
            if not validated:
                continue
            for metric in sorted(metrics & infra.references(condition)):
                if not _waits_after(infra, address, metric):
                    problems.append(
                        f"{address}: a condition on {metric}, created in the same apply, is refused (404) until the "
                        "metric propagates; use PromQL with disable_metric_validation = true, or wait (time_sleep)"
                    )
    return problems


def check_service_agents(infra: Infra) -> list[str]:
    if SERVICES not in infra.addresses():
        return [f"{SERVICES} (the APIs) is missing"]
    waits = [s for s in _sleeps(infra) if SERVICES in infra.direct_dependencies(s)]
    if not waits:
        return [f"no time_sleep follows {SERVICES}: service agents (Eventarc's) do not exist yet right after it"]
    problems = []
    for name in infra.resources("google_cloudfunctions2_function"):
        address = f"google_cloudfunctions2_function.{name}"
        if not set(waits) & infra.dependencies(address):
            problems.append(f"{address}: its Eventarc trigger must be created after {' or '.join(waits)}")
    return problems


def check_no_secret_version_needed(infra: Infra) -> list[str]:
    problems = []
    for name, fn in infra.resources("google_cloudfunctions2_function").items():
        for svc in blocks(fn.get("service_config")):
            for kind in ("secret_environment_variables", "secret_volumes"):
                if blocks(svc.get(kind)):
                    problems.append(
                        f"google_cloudfunctions2_function.{name}: {kind} makes the deployment fail until the secret "
                        "has a version; read it at run time (spotify_pipeline.sources.credentials)"
                    )
    return problems


CHECKS: dict[str, Callable[[Infra], list[str]]] = {
    "build_reads_sources": check_build_reads_sources,
    "alert_conditions": check_alert_conditions,
    "service_agents": check_service_agents,
    "no_secret_version_needed": check_no_secret_version_needed,
}
