# The four Cloud Functions (2nd gen), plus `ingest`: a second deployment of the extract source
# (entry point `ingest`) on the data bucket's finalize events, which starts a run for a chart file
# dropped under inbox/ (a gen2 function has a single trigger). Each zip's main.py defines an entry
# point named like the function (functions/<name>/main.py); tests/infra checks that.
#
# Sizing (defaults in var.function_sizing; measure before changing: benchmarks/recommend.py
# prints recommend's peak memory and time by number of tracks):
# - extract   512Mi / 0.333 vCPU / 300 s: HTTP to Spotify (and ReccoBeats), a few dozen requests
#             per market; the time goes to waiting, not to CPU. Waiting on 429s is capped by
#             PIPELINE_RETRY_BUDGET_SECONDS (var.retry_budget_seconds, 180 s), kept >= 60 s below
#             the timeout by a precondition. ingest shares extract's sizing.
# - transform 1Gi / 0.583 vCPU / 300 s: pandas and pyarrow imports take ~250 MB; the data is a
#             few hundred rows per market.
# - recommend 2Gi / 1 vCPU / 540 s: the heaviest stage (KMeans, all-pairs distances, a long
#             pair table). The default 3 markets give <= 150 tracks, ~22k pairs: far below
#             this. Up to PIPELINE_ALL_PAIRS_MAX_TRACKS (2000) tracks every pair is written
#             (~4M rows); for many markets, run benchmarks/recommend.py at the expected track
#             count and raise memory (4Gi / 2 vCPU) or lower that limit if its peak nears 2 GiB.
# - load      512Mi / 0.333 vCPU / 540 s: google-cloud-bigquery only; ~30 load/query jobs run
#             one after another, so the timeout is the event-function maximum.
# Below 1 vCPU Cloud Run allows one request per instance; every function uses concurrency 1.
# max_instances bounds cost and parallelism: the bucket-triggered functions receive every
# object event of the bucket (a run writes a few dozen objects) and return at once for
# foreign ones, so a handful of instances suffices; extract is limited to one.
#
# Secrets: no function mounts one (secret_environment_variables at version latest would make a
# deployment fail until a version exists). extract reads the Spotify credentials from Secret
# Manager when a run needs them; see secrets.tf.
#
# Retries: every stage acknowledges permanent errors itself and raises on transient ones, and
# re-processing a manifest is idempotent, so RETRY_POLICY_RETRY is right for all four; events
# older than PIPELINE_MAX_EVENT_AGE_SECONDS are dropped by the code, bounding the retries.

resource "google_cloudfunctions2_function" "extract" {
  name        = "${var.name_prefix}-extract"
  location    = var.region
  description = "Spotify charts, tracks, artists and audio features of one snapshot into extract/ of the data bucket."

  build_config {
    runtime           = var.python_runtime
    entry_point       = "extract"
    service_account   = google_service_account.builder.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.function_source["extract"].name
      }
    }
  }

  service_config {
    available_memory                 = var.function_sizing["extract"].memory
    available_cpu                    = var.function_sizing["extract"].cpu
    timeout_seconds                  = var.function_sizing["extract"].timeout_seconds
    min_instance_count               = var.function_sizing["extract"].min_instances
    max_instance_count               = var.function_sizing["extract"].max_instances
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function["extract"].email
    environment_variables            = merge(local.common_env, local.function_env["extract"])
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = google_pubsub_topic.ticks.id
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email
  }

  lifecycle {
    precondition {
      condition     = var.retry_budget_seconds + 60 <= var.function_sizing["extract"].timeout_seconds
      error_message = "retry_budget_seconds must stay at least 60 s below function_sizing.extract.timeout_seconds, or a run that waits on 429s is killed mid-way."
    }
  }

  depends_on = [time_sleep.iam_propagation]
}

# ingest: the extract source again, same identity and settings (so the same read of the Spotify
# secrets), triggered by the data bucket; it acts on inbox/<anything>.csv only and ignores every
# other object by name.
resource "google_cloudfunctions2_function" "ingest" {
  count = var.chart_inbox_enabled ? 1 : 0

  name        = "${var.name_prefix}-ingest"
  location    = var.region
  description = "Starts a run for a chart file dropped under inbox/ of the data bucket (extract source, entry point ingest)."

  build_config {
    runtime           = var.python_runtime
    entry_point       = "ingest"
    service_account   = google_service_account.builder.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.function_source["extract"].name
      }
    }
  }

  service_config {
    available_memory                 = var.function_sizing["extract"].memory
    available_cpu                    = var.function_sizing["extract"].cpu
    timeout_seconds                  = var.function_sizing["extract"].timeout_seconds
    min_instance_count               = var.function_sizing["extract"].min_instances
    max_instance_count               = var.function_sizing["extract"].max_instances
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function["extract"].email
    environment_variables            = merge(local.common_env, local.function_env["extract"])
  }

  event_trigger {
    trigger_region        = local.trigger_region
    event_type            = "google.cloud.storage.object.v1.finalized"
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email

    event_filters {
      attribute = "bucket"
      value     = google_storage_bucket.data.name
    }
  }

  depends_on = [time_sleep.iam_propagation]
}

resource "google_cloudfunctions2_function" "on_object" {
  for_each = toset(local.bucket_functions)

  name        = "${var.name_prefix}-${each.key}"
  location    = var.region
  description = "spotify-pipeline ${each.key}: acts on its upstream stage's _manifest.json in the data bucket, ignores every other object."

  build_config {
    runtime           = var.python_runtime
    entry_point       = each.key
    service_account   = google_service_account.builder.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.function_source[each.key].name
      }
    }
  }

  service_config {
    available_memory                 = var.function_sizing[each.key].memory
    available_cpu                    = var.function_sizing[each.key].cpu
    timeout_seconds                  = var.function_sizing[each.key].timeout_seconds
    min_instance_count               = var.function_sizing[each.key].min_instances
    max_instance_count               = var.function_sizing[each.key].max_instances
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function[each.key].email
    environment_variables            = merge(local.common_env, local.function_env[each.key])
  }

  event_trigger {
    # Eventarc requires the trigger in the bucket's location.
    trigger_region        = local.trigger_region
    event_type            = "google.cloud.storage.object.v1.finalized"
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email

    event_filters {
      attribute = "bucket"
      value     = google_storage_bucket.data.name
    }
  }

  depends_on = [time_sleep.iam_propagation]
}
