# Alerts, from the functions' own JSON log lines (spotify_pipeline.logs): Cloud Logging parses each
# line into jsonPayload, so `severity`, `stage` (extract, transform, recommend, load) and `status`
# (succeeded, failed, retrying; spotify_pipeline.policy) are fields a filter can use.
#
#   <prefix>_stage_failures   log-based counter: ERROR lines of a stage that are not a transient
#                             retry (permanent failures, a failed data-quality gate, a rejected run
#                             request), labelled by stage  -> policy "a stage failed" (PromQL: any
#                             increase over the last 10 minutes, per stage)
#   <prefix>_load_succeeded   log-based counter: load's success lines -> policy "no successful load
#                             in var.no_load_alert_days days" (PromQL: an absence over days; a
#                             metric-absence condition stops at 23.5 hours)
#
# Transient errors are retried by Eventarc and are not alerts by themselves; one that never
# recovers ends as no load, which the second policy reports. Notifications go to var.alert_email
# (no channel when empty: incidents show in the console only). docs/operations.md has the runbook.
#
# Both conditions are PromQL with disable_metric_validation: the policies are created in the same
# apply as their log-based metrics, and a condition on a metric that has not propagated yet is
# rejected with 404 "Cannot find metric(s)" for up to 10 minutes (provider issue #11102).
#
# Cost: log-based metrics and e-mail notifications are free; Cloud Monitoring bills alerting per
# condition ($1.50 a month each, two here) plus $0.35 per million time series returned, once its
# alerting charges apply to the project. var.alerts_enabled = false keeps the metrics and creates
# no policy.

locals {
  # Metric names with underscores only, so their PromQL names are predictable.
  metric_prefix  = replace(var.name_prefix, "-", "_")
  alert_channels = [for channel in google_monitoring_notification_channel.email : channel.name]
  # PromQL name of each log-based metric: logging.googleapis.com/user/NAME -> logging_googleapis_com:user_NAME
  metric_promql = {
    for key, metric in {
      stage_failures = google_logging_metric.stage_failures
      load_succeeded = google_logging_metric.load_succeeded
    } : key => "logging_googleapis_com:user_${metric.name}{monitored_resource=\"cloud_run_revision\"}"
  }
}

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == "" ? 0 : 1

  display_name = "${var.name_prefix} operator"
  description  = "Alerts of the spotify-pipeline (failed stages, no weekly load)."
  type         = "email"
  labels = {
    email_address = var.alert_email
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "stage_failures" {
  name        = "${local.metric_prefix}_stage_failures"
  description = "Failed spotify-pipeline stages: ERROR log lines of a stage, except transient errors being retried."
  filter      = "${local.logs_filter} AND severity>=ERROR AND jsonPayload.stage:* AND NOT jsonPayload.status=\"retrying\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "spotify-pipeline failed stages"

    labels {
      key         = "stage"
      value_type  = "STRING"
      description = "Stage that failed: extract, transform, recommend or load."
    }
  }

  label_extractors = {
    stage = "EXTRACT(jsonPayload.stage)"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "load_succeeded" {
  name        = "${local.metric_prefix}_load_succeeded"
  description = "Successful spotify-pipeline loads (one per snapshot loaded into BigQuery)."
  filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.name_prefix}-load\" AND jsonPayload.stage=\"load\" AND jsonPayload.status=\"succeeded\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "spotify-pipeline successful loads"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "stage_failed" {
  count = var.alerts_enabled ? 1 : 0

  display_name          = "${var.name_prefix}: a stage failed"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.alert_channels

  conditions {
    display_name = "Failed stages (${google_logging_metric.stage_failures.name}) > 0"

    # One series per failing stage. Without failure lines the query returns nothing: the incident
    # closes, and the next failure opens a new one (and notifies again). A threshold condition
    # would need evaluation_missing_data for that, which the API rejects with a zero duration.
    condition_prometheus_query_language {
      query                     = "sum by (stage) (increase(${local.metric_promql.stage_failures}[10m])) > 0"
      duration                  = "0s"
      evaluation_interval       = "60s"
      disable_metric_validation = true # the log-based metric is created in the same apply
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    subject   = "spotify-pipeline: a stage failed"
    mime_type = "text/markdown"
    content   = "A stage of the weekly Spotify charts pipeline failed permanently (bad input, an unusable source, or a failed data-quality gate: nothing of that snapshot was loaded). See which and why: `spotify-pipeline status --project ${var.project_id}`, or the ERROR lines of the logs (`terraform output logs_url`). Runbook: docs/operations.md."
  }
}

resource "google_monitoring_alert_policy" "no_load" {
  count = var.alerts_enabled ? 1 : 0

  display_name          = "${var.name_prefix}: no successful load in ${var.no_load_alert_days} days"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.alert_channels

  conditions {
    display_name = "No ${google_logging_metric.load_succeeded.name} for ${var.no_load_alert_days} days"

    # True when no load succeeded in the last N days although one did within the metric's
    # retention (35 days here, of 6 weeks kept): silent right after the first deployment, before
    # any load; the first run's failure, if any, is reported by the other policy.
    condition_prometheus_query_language {
      query                     = "absent_over_time(${local.metric_promql.load_succeeded}[${var.no_load_alert_days}d]) unless on() absent_over_time(${local.metric_promql.load_succeeded}[35d])"
      duration                  = "0s"
      evaluation_interval       = "300s"
      disable_metric_validation = true # the log-based metric has no data until the first load
    }
  }

  alert_strategy {
    auto_close = "604800s"
  }

  documentation {
    subject   = "spotify-pipeline: no successful load in ${var.no_load_alert_days} days"
    mime_type = "text/markdown"
    content   = "No snapshot of the weekly Spotify charts pipeline was loaded into BigQuery for ${var.no_load_alert_days} days: the schedule is paused or failing, or every run stops on an error or a data-quality gate. Check `spotify-pipeline status --project ${var.project_id}` and the Cloud Scheduler job; run a week now with `terraform output -raw run_now_command`. Runbook: docs/operations.md."
  }
}
