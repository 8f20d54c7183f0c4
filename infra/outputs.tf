locals {
  function_names = merge(
    { extract = google_cloudfunctions2_function.extract.name },
    { for fn in google_cloudfunctions2_function.ingest : "ingest" => fn.name },
    { for name, fn in google_cloudfunctions2_function.on_object : name => fn.name },
  )

  # Cloud Logging filter of the four functions (gen2 functions log as Cloud Run revisions).
  logs_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=(${join(" OR ", [for f in concat(local.functions, ["ingest"]) : "\"${var.name_prefix}-${f}\""])})"

  # Looker Studio linking API: a copy of the template report (or a new report) with one BigQuery
  # data source per dashboard view of tables.json. The template's data source aliases must match
  # the view names, or be mapped with var.looker_studio_aliases. urlencode writes a space as "+",
  # which a URL path (the logs URL) and Looker Studio keep as a plus sign: every value is encoded
  # with replace(urlencode(...), "+", "%20") (a literal "+" is already %2B by then).
  dashboard_views = sort(keys(local.views))
  looker_studio_params = concat(
    var.looker_studio_template_report_id == "" ? [] : ["c.reportId=${replace(urlencode(var.looker_studio_template_report_id), "+", "%20")}"],
    ["r.reportName=${replace(urlencode(var.looker_studio_report_name), "+", "%20")}"],
    flatten([
      for view in local.dashboard_views : [
        for key, value in {
          connector = "bigQuery"
          type      = "TABLE"
          projectId = var.project_id
          datasetId = var.dataset_id
          tableId   = view
        } : "ds.${lookup(var.looker_studio_aliases, view, view)}.${key}=${replace(urlencode(value), "+", "%20")}"
      ]
    ]),
  )
}

output "data_bucket" {
  description = "Data bucket: extract/, transform/, recommend/ and load/ prefixes per snapshot."
  value       = google_storage_bucket.data.name
}

output "sources_bucket" {
  description = "Bucket of the function source zips."
  value       = google_storage_bucket.sources.name
}

output "dataset" {
  description = "BigQuery dataset of the tables and dashboard views (project.dataset)."
  value       = "${var.project_id}.${google_bigquery_dataset.charts.dataset_id}"
}

output "tables" {
  description = "Tables created from src/spotify_pipeline/schemas/tables.json."
  value       = sort(keys(google_bigquery_table.tables))
}

output "dashboard_views" {
  description = "Views created from the `views` of tables.json."
  value       = local.dashboard_views
}

output "ticks_topic" {
  description = "Pub/Sub topic whose messages start a run."
  value       = google_pubsub_topic.ticks.id
}

output "scheduler_job" {
  description = "Cloud Scheduler job publishing the weekly tick."
  value       = google_cloud_scheduler_job.weekly.id
}

output "functions" {
  description = "Function names by stage."
  value       = local.function_names
}

output "spotify_secrets" {
  description = "Secret Manager secrets to give a version each (docs/deploy.md); environment variable => secret id."
  value       = { for env, secret in google_secret_manager_secret.spotify : env => secret.secret_id }
}

output "add_secret_versions_commands" {
  description = "Adds each Spotify credential from a hidden prompt, through stdin: never in shell history or the Terraform state."
  value = [
    for env, secret in google_secret_manager_secret.spotify :
    "read -rsp '${env}: ' v && printf %s \"$v\" | gcloud secrets versions add ${secret.secret_id} --project=${var.project_id} --data-file=- && unset v"
  ]
}

output "run_now_command" {
  description = "Starts a run for today's snapshot now."
  value       = "gcloud pubsub topics publish ${google_pubsub_topic.ticks.name} --project=${var.project_id} --message=\"{\\\"snapshot_date\\\": \\\"$(date -u +%F)\\\"}\""
}

output "trigger_command" {
  description = "The same with the project's CLI (add --snapshot-date, --markets, --chart-source as needed)."
  value       = "spotify-pipeline trigger --project ${var.project_id} --topic ${google_pubsub_topic.ticks.name}"
}

output "logs_filter" {
  description = "Cloud Logging filter of the four functions (Logs Explorer, or gcloud logging read)."
  value       = local.logs_filter
}

output "logs_url" {
  description = "Logs Explorer with that filter."
  value       = "https://console.cloud.google.com/logs/query;query=${replace(urlencode(local.logs_filter), "+", "%20")}?project=${var.project_id}"
}

output "looker_studio_create_url" {
  description = "Opens Looker Studio and creates the dashboard bound to the deployed views (null until tables.json has views)."
  value       = length(local.dashboard_views) == 0 ? null : "https://lookerstudio.google.com/reporting/create?${join("&", local.looker_studio_params)}"
}

output "alert_policies" {
  description = "Cloud Monitoring alert policies (a stage failed; no successful load), notifying alert_email; null with alerts_enabled = false."
  value = {
    stage_failed = one(google_monitoring_alert_policy.stage_failed[*].name)
    no_load      = one(google_monitoring_alert_policy.no_load[*].name)
  }
}
