"""Attribute and block names of infra/*.tf against the google provider's schema (from the npm
package @cdktf/provider-google's .jsii), offline: what `terraform validate` would catch first."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import provider_schema
import pytest
from infra_support import CHECKS, INFRA, SETUP_HINT


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    try:
        return provider_schema.load_schema()
    except provider_schema.SchemaMissing as exc:
        pytest.fail(f"{exc}; {SETUP_HINT}")


def problems_in(folder: Path, schema: dict[str, Any]) -> list[str]:
    return provider_schema.validate_dir(folder, schema)


def test_real_infra_passes(schema: dict[str, Any]) -> None:
    assert problems_in(INFRA, schema) == []


def test_schema_is_the_pinned_provider(schema: dict[str, Any]) -> None:
    """The schema checked against is the provider release versions.tf pins."""
    package = json.loads((CHECKS / "package.json").read_text())
    assert schema["package_version"] == package["dependencies"]["@cdktf/provider-google"]
    pinned = re.search(
        r'source\s*=\s*"hashicorp/google"\s*\n\s*version\s*=\s*"~>\s*([\d.]+)"', (INFRA / "versions.tf").read_text()
    )
    assert pinned, "versions.tf must pin hashicorp/google with ~> X.Y.Z"
    assert schema["provider_version"] == pinned.group(1)


def test_schema_decoding(schema: dict[str, Any]) -> None:
    """Spot checks of how the .jsii was read: snake_case names from the docs anchors, nesting, required."""
    structs = schema["structs"]
    bucket = structs[schema["resource"]["google_storage_bucket"]["config"]]
    assert bucket["attributes"]["location"]["required"] is True
    assert bucket["attributes"]["uniform_bucket_level_access"]["required"] is False
    condition = structs[structs[bucket["blocks"]["lifecycle_rule"]["type"]]["blocks"]["condition"]["type"]]
    assert "matches_prefix" in condition["attributes"]
    obj = structs[schema["resource"]["google_storage_bucket_object"]["config"]]
    assert "detect_md5hash" in obj["attributes"] and "detect_md5_hash" not in obj["attributes"]
    fn = structs[schema["resource"]["google_cloudfunctions2_function"]["config"]]
    trigger = structs[fn["blocks"]["event_trigger"]["type"]]
    assert {"retry_policy", "trigger_region", "event_type"} <= set(trigger["attributes"])
    assert "email" in schema["resource"]["google_service_account"]["exported"]
    assert "google_storage_project_service_account" in schema["data"]


MUTATIONS = [
    # (file, old, new, expected problem)
    (
        "storage.tf",
        '  uniform_bucket_level_access = true\n  public_access_prevention    = "enforced"\n'
        "  force_destroy               = false",
        '  uniform_bucket_level_acess  = true\n  public_access_prevention    = "enforced"\n'
        "  force_destroy               = false",
        "google_storage_bucket.data: unknown attribute or block 'uniform_bucket_level_acess'; did you mean "
        "'uniform_bucket_level_access'?",
    ),
    (
        "storage.tf",
        'matches_prefix = ["extract/", "inbox/"]',
        'match_prefix = ["extract/", "inbox/"]',
        "google_storage_bucket.data.lifecycle_rule.condition: unknown attribute or block 'match_prefix'",
    ),
    (
        "functions.tf",
        '    retry_policy          = "RETRY_POLICY_RETRY"\n'
        "    service_account_email = google_service_account.trigger.email\n"
        "  }\n\n  lifecycle",
        '    retry_polcy           = "RETRY_POLICY_RETRY"\n'
        "    service_account_email = google_service_account.trigger.email\n"
        "  }\n\n  lifecycle",
        "google_cloudfunctions2_function.extract.event_trigger: unknown attribute or block 'retry_polcy'",
    ),
    (
        "secrets.tf",
        "    auto {}",
        "    auto = {}",
        "google_secret_manager_secret.spotify.replication: 'auto' is a block",
    ),
    (
        "storage.tf",
        "  versioning {\n    enabled = true\n  }\n\n  # Raw",
        "  versioning = { enabled = true }\n\n  # Raw",
        "google_storage_bucket.data: 'versioning' is a block",
    ),
    (
        "trigger.tf",
        'resource "google_pubsub_topic" "ticks"',
        'resource "google_pubsub_topics" "ticks"',
        "unknown resource type 'google_pubsub_topics'; did you mean 'google_pubsub_topic'",
    ),
    (
        "bigquery.tf",
        "  dataset_id                 = var.dataset_id\n",
        "",
        "google_bigquery_dataset.charts: required attribute 'dataset_id' is missing",
    ),
    (
        "iam.tf",
        '  role    = "roles/eventarc.eventReceiver"\n  member  = google_service_account.trigger.member',
        '  role    = "roles/eventarc.eventReceiver"\n  member  = google_service_account.trigger.membr',
        "reference google_service_account.trigger.membr: google_service_account has no attribute 'membr'",
    ),
    (
        "functions.tf",
        "pubsub_topic          = google_pubsub_topic.ticks.id",
        "pubsub_topic          = google_pubsub_topic.tick.id",
        "reference to undeclared google_pubsub_topic.tick",
    ),
    (
        "iam.tf",
        'create_duration = "${var.iam_propagation_seconds}s"',
        'create_durations = "${var.iam_propagation_seconds}s"',
        "time_sleep.iam_propagation: unknown attribute or block 'create_durations'",
    ),
    (
        "versions.tf",
        "  default_labels = var.labels",
        "  default_label  = var.labels",
        "provider 'google': unknown attribute or block 'default_label'",
    ),
]


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"), MUTATIONS, ids=[m[3].split(":")[0][:48] for m in MUTATIONS]
)
def test_broken_copy_is_caught(
    scratch: Path, schema: dict[str, Any], file: str, old: str, new: str, expected: str
) -> None:
    path = scratch / "infra" / file
    text = path.read_text()
    assert old in text, f"{file} no longer contains the text this test breaks: update the test"
    path.write_text(text.replace(old, new, 1))
    problems = problems_in(scratch / "infra", schema)
    assert any(expected in p for p in problems), problems


def test_dynamic_blocks_are_checked(tmp_path: Path, schema: dict[str, Any]) -> None:
    (tmp_path / "main.tf").write_text(
        """
resource "google_storage_bucket" "b" {
  name     = "b"
  location = "EU"

  dynamic "lifecycle_rule" {
    for_each = [1]
    content {
      action {
        type = "Delete"
      }
      condition {
        agee = 3
      }
    }
  }

  dynamic "lifecycle_rules" {
    for_each = []
    content {}
  }
}
"""
    )
    problems = problems_in(tmp_path, schema)
    assert any("lifecycle_rule.condition: unknown attribute or block 'agee'" in p for p in problems), problems
    assert any("dynamic 'lifecycle_rules' is not a block" in p for p in problems), problems
    assert len(problems) == 2, problems
