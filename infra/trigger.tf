# Ticks: anything that publishes a run request to this topic starts a run (Cloud Scheduler
# weekly, `spotify-pipeline trigger`, or `gcloud pubsub topics publish`, see outputs).
resource "google_pubsub_topic" "ticks" {
  # checkov:skip=CKV_GCP_83: Ticks carry only a date, market codes and source names; Google-managed encryption is enough and CMEK would add KMS cost and key administration.
  name = "${var.name_prefix}-ticks"

  depends_on = [google_project_service.enabled]
}

# The weekly tick. Body: `{}` (base64 of jsonencode(local.tick_message)); extract fills every
# field from its environment (markets, chart source, feature providers) and takes the day it
# handles the tick (UTC) as snapshot_date.
resource "google_cloud_scheduler_job" "weekly" {
  name        = "${var.name_prefix}-weekly"
  region      = var.region
  description = "Publishes the weekly run request of spotify-pipeline to ${google_pubsub_topic.ticks.name}."
  schedule    = var.schedule
  time_zone   = var.time_zone
  paused      = var.scheduler_paused

  # Retries cover a failed publish only; the run itself is retried by Eventarc/Pub/Sub.
  retry_config {
    retry_count          = 3
    min_backoff_duration = "30s"
    max_backoff_duration = "600s"
  }

  pubsub_target {
    topic_name = google_pubsub_topic.ticks.id
    data       = base64encode(jsonencode(local.tick_message))
  }

  lifecycle {
    precondition {
      condition     = var.chart_source != "charts-csv" || var.scheduler_paused
      error_message = "With chart_source = charts-csv, runs start from chart files dropped under inbox/; a weekly tick without a file would be rejected. Set scheduler_paused = true."
    }
  }

  depends_on = [google_project_service.enabled]
}
