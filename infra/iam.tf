# Identity: one service account per function (its runtime identity), one for the event
# triggers (Eventarc and the Pub/Sub push subscription invoke the functions as it), one for
# Cloud Build. Every role is granted on the narrowest resource that can carry it; the five
# project-level grants below say why no narrower resource exists.

resource "google_service_account" "function" {
  for_each = toset(local.functions)

  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "spotify-pipeline ${each.key} function"
  description  = "Runtime identity of the ${each.key} Cloud Function."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "trigger" {
  account_id   = "${var.name_prefix}-trigger"
  display_name = "spotify-pipeline event triggers"
  description  = "Eventarc triggers (ticks topic, data bucket) invoke the functions as this account."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "builder" {
  account_id   = "${var.name_prefix}-builder"
  display_name = "spotify-pipeline function builds"
  description  = "Cloud Build builds the function images as this account."

  depends_on = [google_project_service.enabled]
}

# ---------------------------------------------------------------- data bucket
# Every stage creates its objects, overwrites them when a snapshot is re-run (an overwrite needs
# storage.objects.delete) and deletes stale ones of its own prefix; transform, recommend and load
# also read their upstream's objects. roles/storage.objectUser is exactly that (objects: create,
# get, list, update, delete) without objectAdmin's object IAM permissions, granted on the data
# bucket only, never on the project.
resource "google_storage_bucket_iam_member" "function_objects" {
  for_each = toset(local.functions)

  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectUser"
  member = google_service_account.function[each.key].member
}

# ---------------------------------------------------------------- BigQuery
# load: staging tables, load jobs and the partition-replacing MERGE, in this dataset only.
resource "google_bigquery_dataset_iam_member" "load_edits_dataset" {
  dataset_id = google_bigquery_dataset.charts.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.function["load"].member
}

# load: load and query jobs are project resources; BigQuery has no narrower resource on which
# bigquery.jobs.create can be granted, so this is the one project-level role of a function.
resource "google_project_iam_member" "load_runs_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.function["load"].member
}

# extract, transform, recommend: they only stream their stage record into pipeline_runs and a
# run's outcome into run_outcomes (tabledata.insertAll, no job), so they get dataEditor on those
# two tables only. Rows the warehouse could not take wait in the bucket; load writes them.
resource "google_bigquery_table_iam_member" "stage_records_runs" {
  for_each = toset(["extract", "transform", "recommend"])

  dataset_id = google_bigquery_dataset.charts.dataset_id
  table_id   = google_bigquery_table.tables["pipeline_runs"].table_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.function[each.key].member
}

resource "google_bigquery_table_iam_member" "stage_records_outcomes" {
  for_each = toset(["extract", "transform", "recommend"])

  dataset_id = google_bigquery_dataset.charts.dataset_id
  table_id   = google_bigquery_table.tables["run_outcomes"].table_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.function[each.key].member
}

# ---------------------------------------------------------------- secrets
# extract's account only (ingest runs as it too), and only these two secrets; read at run time.
resource "google_secret_manager_secret_iam_member" "extract_reads_spotify" {
  for_each = google_secret_manager_secret.spotify

  secret_id = each.value.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function["extract"].member
}

# ---------------------------------------------------------------- triggers
# Eventarc requires eventarc.eventReceiver of the trigger's service account; the role exists
# at project level only (triggers carry no IAM policy of their own).
resource "google_project_iam_member" "trigger_receives_events" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.trigger.member
}

# The trigger account may invoke each function's own Cloud Run service, nothing else. A gen2
# function's service has the function's name. Granted once the functions exist; events that
# arrive before it propagates get 403 and are redelivered (RETRY_POLICY_RETRY).
resource "google_cloud_run_v2_service_iam_member" "trigger_invokes" {
  for_each = merge(
    { extract = google_cloudfunctions2_function.extract.name },
    { for fn in google_cloudfunctions2_function.ingest : "ingest" => fn.name },
    { for name, fn in google_cloudfunctions2_function.on_object : name => fn.name },
  )

  project  = var.project_id
  location = var.region
  name     = each.value
  role     = "roles/run.invoker"
  member   = google_service_account.trigger.member
}

# Cloud Storage publishes object events to a Pub/Sub topic that Eventarc creates per trigger,
# with a generated name Terraform does not manage: project level is the narrowest resource
# available (as in Google's functions/basic_gcs sample).
data "google_storage_project_service_account" "gcs" {
  project = var.project_id

  depends_on = [time_sleep.service_agents]
}

resource "google_project_iam_member" "gcs_agent_publishes_events" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = data.google_storage_project_service_account.gcs.member
}

# ---------------------------------------------------------------- builds
# Build logs: Cloud Logging has no narrower resource to which a writer can be granted.
resource "google_project_iam_member" "builder_writes_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.builder.member
}

resource "google_artifact_registry_repository_iam_member" "builder_pushes_images" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.builder.member
}

# Gen2 functions copy build_config.source into Google's own bucket
# gcf-v2-sources-<PROJECT_NUMBER>-<REGION>, and Cloud Build reads it from there as this account
# ("Access to bucket gcf-v2-sources-... denied" otherwise: provider issue #20571; Google's
# cloudfunctions2_basic_builder sample grants objectAdmin on the whole project). Cloud Functions
# creates that bucket during the first deployment, so no bucket-level grant can exist before the
# build needs it: the read is granted at project level, narrowed by an IAM condition to that one
# bucket and its objects (Cloud Storage evaluates resource.name in conditions for both).
resource "google_project_iam_member" "builder_reads_gcf_sources" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = google_service_account.builder.member

  condition {
    title       = "gcf-v2-sources bucket only"
    description = "The bucket Cloud Functions copies function sources into for Cloud Build."
    expression  = "resource.name == \"projects/_/buckets/${local.gcf_sources_bucket}\" || resource.name.startsWith(\"projects/_/buckets/${local.gcf_sources_bucket}/\")"
  }
}

data "google_project" "this" {
  project_id = var.project_id

  depends_on = [google_project_service.enabled]
}

locals {
  gcf_sources_bucket = "gcf-v2-sources-${data.google_project.this.number}-${var.region}"
}

# Our own source bucket, where Terraform uploads the zips (Cloud Functions copies from it).
resource "google_storage_bucket_iam_member" "builder_reads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.builder.member
}

# IAM is eventually consistent: Eventarc refuses to create a trigger whose account cannot yet
# receive events, and a build fails if its account cannot yet read the source. Wait once
# after the grants the functions' creation depends on (and after the service agents' wait, so
# the functions come after both).
resource "time_sleep" "iam_propagation" {
  create_duration = "${var.iam_propagation_seconds}s"

  depends_on = [
    time_sleep.service_agents,
    google_project_iam_member.trigger_receives_events,
    google_project_iam_member.gcs_agent_publishes_events,
    google_project_iam_member.builder_writes_logs,
    google_artifact_registry_repository_iam_member.builder_pushes_images,
    google_project_iam_member.builder_reads_gcf_sources,
    google_storage_bucket_iam_member.builder_reads_sources,
    google_storage_bucket_iam_member.function_objects,
    google_secret_manager_secret_iam_member.extract_reads_spotify,
  ]
}
