# Wiring overview (docs/deploy.md has the operator's view):
#
#   Cloud Scheduler (weekly) --tick--> Pub/Sub topic <name>-ticks --> extract
#   extract   writes extract/snapshot_date=D/...   + _manifest.json last
#   transform <- object.v1.finalized of the data bucket (acts on extract/.../_manifest.json only)
#   recommend <- object.v1.finalized (acts on transform/.../_manifest.json only)
#   load      <- object.v1.finalized (acts on recommend/.../_manifest.json only) -> BigQuery
#
# Eventarc filters Cloud Storage events by bucket only, so each bucket-triggered function sees
# every object and ignores the ones that are not its upstream manifest by name, cheaply.

locals {
  functions        = ["extract", "transform", "recommend", "load"]
  bucket_functions = ["transform", "recommend", "load"]

  # Eventarc requires a Cloud Storage trigger in the bucket's own location (lower case).
  trigger_region = lower(var.bucket_location)

  data_bucket_name    = "${var.project_id}-${var.name_prefix}-data"
  sources_bucket_name = "${var.project_id}-${var.name_prefix}-src"

  # Every name here is one the code reads (spotify_pipeline.config.ENVIRONMENT_VARIABLES);
  # tests/infra/test_wiring.py cross-checks them.
  common_env = {
    GOOGLE_CLOUD_PROJECT           = var.project_id
    PIPELINE_BUCKET                = local.data_bucket_name
    PIPELINE_DATASET               = var.dataset_id
    PIPELINE_BQ_LOCATION           = var.bigquery_location
    PIPELINE_MAX_EVENT_AGE_SECONDS = tostring(var.max_event_age_seconds)
  }
  function_env = {
    extract = {
      PIPELINE_MARKETS              = join(",", var.markets)
      PIPELINE_PLAYLISTS            = jsonencode(var.playlist_ids)
      PIPELINE_CHART_SOURCE         = var.chart_source
      PIPELINE_FEATURE_PROVIDERS    = join(",", var.feature_providers)
      PIPELINE_RETRY_BUDGET_SECONDS = tostring(var.retry_budget_seconds)
      # Which secrets hold the Spotify credentials (ids, not values): extract reads them from
      # Secret Manager when a run first needs Spotify (spotify_pipeline.sources.credentials), so
      # neither a deployment nor a chart-file run depends on a secret version existing.
      SPOTIFY_CLIENT_ID_SECRET_ID     = google_secret_manager_secret.spotify["SPOTIFY_CLIENT_ID"].secret_id
      SPOTIFY_CLIENT_SECRET_SECRET_ID = google_secret_manager_secret.spotify["SPOTIFY_CLIENT_SECRET"].secret_id
    }
    transform = {}
    recommend = {}
    load      = {}
  }

  # The weekly tick's body: `{}`. Every field of a run request is optional (README, "Event
  # contract"): snapshot_date defaults to the day extract handles the tick (UTC); markets, chart
  # source and feature providers to extract's PIPELINE_* variables above, so this configuration
  # lives in one place. A manual tick may name any of them, e.g.
  #   {"snapshot_date": "2026-11-23", "markets": ["GLOBAL", "BR"], "feature_providers": ["reccobeats"]}
  tick_message = {}
}

# The APIs the suite needs. disable_on_destroy = false: other workloads in the project may use
# them, and disabling an API on destroy can break those.
resource "google_project_service" "enabled" {
  for_each = toset([
    "artifactregistry.googleapis.com",     # function images (build_config.docker_repository)
    "bigquery.googleapis.com",             # dataset, tables, views, load and query jobs
    "cloudbuild.googleapis.com",           # gen2 functions are built by Cloud Build
    "cloudfunctions.googleapis.com",       # the four functions
    "cloudresourcemanager.googleapis.com", # project-level IAM bindings
    "cloudscheduler.googleapis.com",       # the weekly tick
    "eventarc.googleapis.com",             # the functions' event triggers
    "iam.googleapis.com",                  # service accounts
    "logging.googleapis.com",              # function and build logs, log-based metrics
    "monitoring.googleapis.com",           # alert policies and their notification channel
    "pubsub.googleapis.com",               # ticks topic, Eventarc transport
    "run.googleapis.com",                  # gen2 functions run as Cloud Run services
    "secretmanager.googleapis.com",        # Spotify credentials
    "storage.googleapis.com",              # data and source buckets
  ])

  project            = var.project_id
  service            = each.key
  disable_on_destroy = false
}

# Enabling an API returns before its service agents (Eventarc's, Cloud Functions', Cloud Build's,
# Pub/Sub's) exist and hold their roles: the first Eventarc trigger then fails with "Permission
# denied while using the Eventarc Service Agent". As Google's samples do, wait once after enabling,
# and again whenever the set of APIs changes (triggers). Everything that needs a service agent (the
# Cloud Storage agent's grant, the functions and their triggers) comes after this wait.
resource "time_sleep" "service_agents" {
  create_duration = "${var.service_agent_wait_seconds}s"
  triggers = {
    services = join(",", sort(keys(google_project_service.enabled)))
  }

  depends_on = [google_project_service.enabled]
}
