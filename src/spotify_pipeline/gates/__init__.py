"""Data-quality gates: the checks a snapshot's clean tables must pass before they go any further.

Split by concern:

* :mod:`.thresholds`: :data:`GATES`, the checks by name (the names appear in errors, logs and
  ``pipeline_runs``), and :class:`GateThresholds`, their limits as data, each with its default, its
  environment variable and its documentation (``config.Settings.from_env`` reads them; config
  imports the gates, never the reverse). The documented range of every audio feature is
  :data:`spotify_pipeline.features.FEATURE_RANGES`;
* :mod:`.checks`: pure; measurements (pyarrow), every check, the report and its message;
* :mod:`.bucket`: the stored weeks, the previous loaded week, :func:`check_chart` and
  :func:`check_features` as extract and recommend call them.

Where they run, split by what they protect (:data:`CHART_GATES`, :data:`FEATURE_GATES`):

* **chart gates** check the chart data a run brings (its markets' entries) in extract, before
  anything is written: a failure is a permanent error, the run is recorded ``failed`` with a message
  naming each failed check, its value and its threshold, and the stored week (its other markets,
  its tables, its raw objects) stays exactly as it was;
* **feature gates** check the audio features of the week's tracks at the start of recommend: a
  failure stops only the model. Chart entries, tracks, artists and genres still load; the model
  tables of the week are empty and the reason is recorded (``pipeline_runs.error`` of recommend and
  load, the manifests' ``model`` summary, the dashboard). A week with fewer modelled tracks than
  clusters is skipped the same way, forced or not. They run where the features are consumed, not
  in transform: what they decide is whether to model, and ``replay --stage recommend --force``
  re-runs them with the model alone.

Forcing: a run request with ``"force_gates": true`` (``spotify-pipeline run --force-gates``), or
``spotify-pipeline replay ... --force``, evaluates the gates, logs the failures as a warning and
goes on; the stage's ``pipeline_runs`` row says ``forced past failed gates: ...`` in ``error``.

"Previous week" is the latest snapshot *loaded* (it has a load receipt) before this one, at most
``previous_max_age_days`` older, from the same chart source: what the dashboard shows now.
"""

from spotify_pipeline.gates.bucket import check_chart, check_features, previous_snapshot, stored_snapshots
from spotify_pipeline.gates.checks import (
    GateFailed,
    GateReport,
    GateResult,
    Measurements,
    OutOfRange,
    Previous,
    evaluate,
    measure,
)
from spotify_pipeline.gates.thresholds import CHART_GATES, FEATURE_GATES, GATES, GateThresholds, threshold_variables

__all__ = [
    "CHART_GATES",
    "FEATURE_GATES",
    "GATES",
    "GateFailed",
    "GateReport",
    "GateResult",
    "GateThresholds",
    "Measurements",
    "OutOfRange",
    "Previous",
    "check_chart",
    "check_features",
    "evaluate",
    "measure",
    "previous_snapshot",
    "stored_snapshots",
    "threshold_variables",
]
