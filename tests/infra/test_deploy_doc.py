"""docs/deploy.md ("Deploy to Google Cloud") stays in step with infra/."""

from __future__ import annotations

import re

import wiring
from infra_support import INFRA, REPO

DOC = REPO / "docs" / "deploy.md"


def test_deploy_doc_covers_the_operator_steps() -> None:
    text = DOC.read_text()
    for needle in (
        "# Deploy to Google Cloud",
        "## Prerequisites",
        "make package",
        "terraform init",
        "terraform apply",
        "--data-file=-",
        "## 5. First run",
        "gcloud pubsub topics publish",
        "spotify-pipeline trigger --project",
        "## Where the logs are",
        'resource.type="cloud_run_revision"',
        "## Monthly cost",
        "## Teardown",
        "deletion_protection=false",
    ):
        assert needle in text, f"docs/deploy.md lost {needle!r}"


def test_outputs_named_in_the_doc_exist() -> None:
    infra = wiring.Infra.load(INFRA, REPO)
    named = set(re.findall(r"terraform output(?: -raw)? (\w+)", DOC.read_text()))
    assert named, "the doc should point at terraform outputs"
    assert named <= set(infra.config["output"]), named - set(infra.config["output"])


def test_doc_names_match_the_defaults() -> None:
    """Secret ids, topic and bucket names shown in the doc are the ones the defaults create."""
    infra = wiring.Infra.load(INFRA, REPO)
    prefix = infra.variable_default("name_prefix")
    text = DOC.read_text()
    for secret in infra.local("spotify_secrets").values():
        assert secret.replace("${var.name_prefix}", prefix) in text
    assert f"{prefix}-ticks" in text
    assert f"PROJECT-{prefix}-data" in text
