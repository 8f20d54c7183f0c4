"""docs/deploy.md ("Deploy to Google Cloud") stays in step with infra/."""

from __future__ import annotations

import re
from pathlib import Path

import deploy_doc
import pytest
import wiring
from infra_support import INFRA, REPO, edit

DOC = REPO / "docs" / "deploy.md"


def test_deploy_doc_covers_the_operator_steps() -> None:
    """Each step's command or setting, from the zips to the teardown (facts, not headings)."""
    text = DOC.read_text()
    for needle in (
        "gcloud auth application-default login",  # prerequisites
        "make package",  # build
        "terraform init",  # configure
        "terraform apply",  # deploy
        "gcloud secrets versions add",  # the Spotify secrets, from stdin
        "--data-file=-",
        "gcloud pubsub topics publish",  # the first run
        "spotify-pipeline trigger --project",
        "service_agent_wait_seconds",  # a fresh project's waits
        "iam_propagation_seconds",
        'resource.type="cloud_run_revision"',  # the logs
        "gcloud logging read",
        "| Cloud Monitoring alerting |",  # the monthly cost (figures: test_figures_and_costs_match_the_terraform)
        "terraform destroy",  # teardown
        "deletion_protection=false",
    ):
        assert needle in text, f"docs/deploy.md lost {needle!r}"
    assert "-target" not in text, "one `terraform apply` deploys everything; no targeted first step"


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


def test_figures_and_costs_match_the_terraform() -> None:
    assert deploy_doc.check_deploy_doc(wiring.Infra.load(INFRA, REPO), DOC.read_text()) == []


def doc_problems(root: Path) -> list[str]:
    return deploy_doc.check_deploy_doc(
        wiring.Infra.load(root / "infra", root), (root / "docs" / "deploy.md").read_text()
    )


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        pytest.param(
            "docs/deploy.md",
            "`max_event_age_seconds` (24 h)",
            "`max_event_age_seconds` (6 h)",
            "`max_event_age_seconds` shown as 6 h, but its default is 86400",
            id="6 event age drifts from its default",
        ),
        pytest.param(
            "infra/variables.tf",
            "default     = 120",
            "default     = 30",
            "`service_agent_wait_seconds` shown as 120, but its default is 30",
            id="a wait changed in Terraform only",
        ),
        pytest.param(
            "docs/deploy.md",
            "| with the default alerts (2 conditions × $1.50) | **$3.20-3.40** |",
            "| with the default alerts (2 conditions × $1.50) | **$0.20-0.40** |",
            "with the default alerts the total is $3.20-3.40",
            id="6 total leaves out alerting",
        ),
        pytest.param(
            "docs/deploy.md",
            "| Cloud Monitoring alerting |",
            "| Cloud Monitoring |",
            "the cost table has no `| Cloud Monitoring alerting | N conditions",
            id="6 alerting not priced",
        ),
        pytest.param(
            "infra/monitoring.tf",
            '  conditions {\n    display_name = "No ',
            '  conditions {\n    display_name = "x"\n  }\n  conditions {\n    display_name = "No ',
            "alerting is 3 conditions × $1.50 = $4.50",
            id="a third alert condition not priced",
        ),
    ],
)
def test_drift_is_caught(scratch: Path, file: str, old: str, new: str, expected: str) -> None:
    (scratch / "docs").mkdir(exist_ok=True)
    (scratch / "docs" / "deploy.md").write_text(DOC.read_text())
    edit(scratch / file, old, new)
    problems = doc_problems(scratch)
    assert any(expected in p for p in problems), problems
