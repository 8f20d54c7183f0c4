"""docs/deploy.md's figures against the Terraform they describe (python-hcl2, offline).

* every variable quoted with a figure, as "`name` (12)", "`name` (24 h)" or a table row
  "| `name` | 120 |", shows its default from variables.tf (hours for *_seconds given in h);
* the variables an operator needs to know are quoted that way (REQUIRED_FIGURES);
* the alerting cost counts the alert conditions of monitoring.tf at ALERTING_PRICE, and the
  monthly total with alerts is the total without them plus that.

Usage: ``check_deploy_doc(infra, text)`` returns the problems, like the other checks.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infra_model import Infra
from tfparse import blocks

# Cloud Monitoring's list price of one alerting condition a month, once alerting is billed.
ALERTING_PRICE = 1.50
REQUIRED_FIGURES = (
    "max_event_age_seconds",
    "raw_retention_weeks",
    "noncurrent_retention_days",
    "service_agent_wait_seconds",
    "iam_propagation_seconds",
)
FIGURE = re.compile(r"`(\w+)`(?: \(| \| )(\d+(?:\.\d+)?)( h)?(?:\)| \|)")
RANGE = r"\$(\d+\.\d\d)-(\d+\.\d\d)"


def alert_conditions(infra: Infra) -> int:
    return sum(len(blocks(p.get("conditions"))) for p in infra.resources("google_monitoring_alert_policy").values())


def check_figures(infra: Infra, text: str) -> list[str]:
    problems = []
    quoted = set()
    for name, figure, hours in FIGURE.findall(text):
        if name not in infra.config["variable"]:
            continue
        quoted.add(name)
        default = infra.variable_default(name)
        shown = float(figure) * (3600 if hours else 1)
        if not isinstance(default, int | float) or float(default) != shown:
            problems.append(f"docs/deploy.md: `{name}` shown as {figure}{hours}, but its default is {default}")
    for name in REQUIRED_FIGURES:
        if name not in quoted:
            problems.append(f"docs/deploy.md: `{name}` is not shown with its default, e.g. `{name}` (N)")
    return problems


def check_cost(infra: Infra, text: str) -> list[str]:
    conditions = alert_conditions(infra)
    alerting = conditions * ALERTING_PRICE
    problems = []
    row = re.search(r"\| Cloud Monitoring alerting \| (\d+) conditions × \$(\d+\.\d\d).*\| \$(\d+\.\d\d) \|", text)
    if row is None:
        problems.append("docs/deploy.md: the cost table has no `| Cloud Monitoring alerting | N conditions × $P` row")
    elif (int(row.group(1)), float(row.group(2)), float(row.group(3))) != (conditions, ALERTING_PRICE, alerting):
        problems.append(
            f"docs/deploy.md: alerting is {conditions} conditions × ${ALERTING_PRICE:.2f} = ${alerting:.2f}, "
            f"the table says {row.group(0)}"
        )
    without = re.search(r"without alerts.*?" + RANGE, text)
    with_alerts = re.search(r"with the default alerts.*?" + RANGE, text)
    if without is None or with_alerts is None:
        return [*problems, "docs/deploy.md: the monthly total must be given without alerts and with the default alerts"]
    low, high = (float(v) + alerting for v in without.groups())
    if (float(with_alerts.group(1)), float(with_alerts.group(2))) != (round(low, 2), round(high, 2)):
        problems.append(
            f"docs/deploy.md: with the default alerts the total is ${low:.2f}-{high:.2f} (without them plus "
            f"${alerting:.2f}), the doc says ${with_alerts.group(1)}-{with_alerts.group(2)}"
        )
    return problems


def check_deploy_doc(infra: Infra, text: str) -> list[str]:
    return [*check_figures(infra, text), *check_cost(infra, text)]
