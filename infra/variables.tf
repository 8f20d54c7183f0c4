# Inputs. Only project_id has no default; terraform.tfvars.example lists every input.
# No variable holds a secret: the Spotify credentials go into Secret Manager versions that are
# added outside Terraform (docs/deploy.md), so no secret value ever reaches the state.

variable "project_id" {
  description = "Google Cloud project to deploy into (it must exist and have billing enabled)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 characters: lower-case letters, digits, hyphens), not a project name or number."
  }
}

variable "region" {
  description = "Region of the functions, the Cloud Scheduler job and the Artifact Registry repository."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1 or europe-west1."
  }
}

variable "bucket_location" {
  description = "Location of the data bucket: a region (cheapest, e.g. US-CENTRAL1) or a multi-region (US, EU). The bucket-triggered functions' Eventarc triggers use it as trigger_region."
  type        = string
  default     = "US-CENTRAL1"

  validation {
    condition     = can(regex("^[A-Za-z]+(-[A-Za-z]+[0-9]+)?$", var.bucket_location))
    error_message = "bucket_location must be a Cloud Storage region (US-CENTRAL1) or multi-region (US, EU, ASIA)."
  }
}

variable "bigquery_location" {
  description = "Location of the BigQuery dataset (the loader sends Parquet bytes itself, so it need not match the bucket)."
  type        = string
  default     = "US"

  validation {
    condition     = can(regex("^[A-Za-z]+(-[A-Za-z]+[0-9]+)?$", var.bigquery_location))
    error_message = "bigquery_location must be a BigQuery location such as US, EU or europe-west1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name. The default makes the ticks topic `spotify-pipeline-ticks`, the name `spotify-pipeline trigger` uses when PIPELINE_TICKS_TOPIC is unset."
  type        = string
  default     = "spotify-pipeline"

  validation {
    # Service account ids are at most 30 characters: prefix + "-recommend" must fit.
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-20 characters: lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "dataset_id" {
  description = "BigQuery dataset of the tables and dashboard views (PIPELINE_DATASET)."
  type        = string
  default     = "spotify_charts"

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,1023}$", var.dataset_id))
    error_message = "dataset_id may contain only letters, digits and underscores."
  }
}

variable "markets" {
  description = "Default markets of a run (PIPELINE_MARKETS): GLOBAL or ISO 3166-1 alpha-2 codes. A tick's `markets` field overrides them."
  type        = list(string)
  default     = ["GLOBAL", "BR", "KR"]

  validation {
    condition     = length(var.markets) > 0 && alltrue([for m in var.markets : can(regex("^(GLOBAL|[A-Z]{2})$", m))])
    error_message = "markets must be a non-empty list of GLOBAL or upper-case ISO 3166-1 alpha-2 codes, e.g. [\"GLOBAL\", \"BR\"]."
  }
}

variable "playlist_ids" {
  description = "Chart playlist per market (PIPELINE_PLAYLISTS), overriding the built-in Top 50 ids; needed for every market without a built-in id. Empty: the built-in ids."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for market, playlist in var.playlist_ids :
      can(regex("^(GLOBAL|[A-Z]{2})$", market)) && can(regex("^[A-Za-z0-9]{22}$", playlist))
    ])
    error_message = "playlist_ids maps GLOBAL or an ISO alpha-2 code to a 22-character Spotify playlist id."
  }
}

variable "chart_source" {
  description = "Default chart source of a run (PIPELINE_CHART_SOURCE): spotify-playlist (the weekly schedule), or charts-csv (runs start from chart files dropped under inbox/; pause the schedule). A tick's `chart_source` overrides it."
  type        = string
  default     = "spotify-playlist"

  validation {
    # Mirrors spotify_pipeline.config.CHART_SOURCES (tests/infra checks they agree).
    condition     = contains(["spotify-playlist", "charts-csv"], var.chart_source)
    error_message = "chart_source must be one of: spotify-playlist, charts-csv."
  }
}

variable "feature_providers" {
  description = "Audio-feature providers in order (PIPELINE_FEATURE_PROVIDERS); the first with a track's features wins. A tick's `feature_providers` overrides them."
  type        = list(string)
  default     = ["spotify"]

  validation {
    # Mirrors spotify_pipeline.config.FEATURE_PROVIDERS (tests/infra checks they agree).
    condition     = length(var.feature_providers) > 0 && alltrue([for p in var.feature_providers : contains(["dataset", "spotify", "reccobeats"], p)])
    error_message = "feature_providers must be a non-empty list drawn from: dataset, spotify, reccobeats."
  }
}

variable "chart_inbox_enabled" {
  description = "Deploy `ingest`, which starts a run for each chart file (CSV) dropped under inbox/ of the data bucket."
  type        = bool
  default     = true
}

variable "retry_budget_seconds" {
  description = "Total seconds one extract run may wait on 429s and backoff (PIPELINE_RETRY_BUDGET_SECONDS); must stay 60 s below extract's timeout."
  type        = number
  default     = 180

  validation {
    condition     = var.retry_budget_seconds >= 0 && var.retry_budget_seconds <= 480
    error_message = "retry_budget_seconds must be between 0 and 480 (the extract timeout is at most 540 s)."
  }
}

variable "schedule" {
  description = "Cron schedule of the weekly tick (Cloud Scheduler syntax). Default: Mondays at 09:00."
  type        = string
  default     = "0 9 * * 1"

  validation {
    condition     = length(split(" ", trimspace(var.schedule))) == 5
    error_message = "schedule must be a five-field cron expression, e.g. \"0 9 * * 1\"."
  }
}

variable "time_zone" {
  description = "IANA time zone of the schedule, e.g. Etc/UTC, Europe/Berlin, America/Sao_Paulo."
  type        = string
  default     = "Etc/UTC"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.time_zone))
    error_message = "time_zone must be an IANA time zone name such as Etc/UTC or Europe/Berlin."
  }
}

variable "scheduler_paused" {
  description = "Create the weekly Cloud Scheduler job paused (manual runs still work)."
  type        = bool
  default     = false
}

variable "function_sizing" {
  description = "Memory, vCPU, timeout and instance bounds per function. See the reasoning in functions.tf and benchmarks/recommend.py."
  type = map(object({
    memory          = string
    cpu             = string
    timeout_seconds = number
    min_instances   = number
    max_instances   = number
  }))
  default = {
    # Spotify HTTP calls: I/O bound, no pandas. One instance: one run at a time, and Spotify
    # rate-limits per app, so parallel extracts would only earn 429s.
    extract = { memory = "512Mi", cpu = "0.333", timeout_seconds = 300, min_instances = 0, max_instances = 1 }
    # pandas + pyarrow over a few hundred rows: the imports dominate (~250 MB resident).
    transform = { memory = "1Gi", cpu = "0.583", timeout_seconds = 300, min_instances = 0, max_instances = 3 }
    # z-scores, KMeans and all-pairs distances: the heaviest stage (see functions.tf).
    recommend = { memory = "2Gi", cpu = "1", timeout_seconds = 540, min_instances = 0, max_instances = 2 }
    # google-cloud-bigquery only; mostly waits for ~30 load and query jobs.
    load = { memory = "512Mi", cpu = "0.333", timeout_seconds = 540, min_instances = 0, max_instances = 3 }
  }

  validation {
    condition     = length(setsubtract(toset(["extract", "transform", "recommend", "load"]), toset(keys(var.function_sizing)))) == 0 && length(var.function_sizing) == 4
    error_message = "function_sizing must have exactly the keys extract, transform, recommend and load."
  }
  validation {
    condition     = alltrue([for f in values(var.function_sizing) : can(regex("^[0-9]+(Mi|Gi)$", f.memory))])
    error_message = "memory must look like 512Mi or 2Gi."
  }
  validation {
    condition     = alltrue([for f in values(var.function_sizing) : can(tonumber(f.cpu)) && try(tonumber(f.cpu) >= 0.083 && tonumber(f.cpu) <= 8, false)])
    error_message = "cpu must be a number of vCPUs between 0.083 and 8, as a string (\"0.333\", \"1\")."
  }
  validation {
    # Event-driven gen2 functions may run at most 540 s.
    condition     = alltrue([for f in values(var.function_sizing) : f.timeout_seconds >= 60 && f.timeout_seconds <= 540])
    error_message = "timeout_seconds must be between 60 and 540 (the limit of event-triggered functions)."
  }
  validation {
    condition     = alltrue([for f in values(var.function_sizing) : f.min_instances >= 0 && f.max_instances >= 1 && f.max_instances <= 100 && f.min_instances <= f.max_instances])
    error_message = "instances must satisfy 0 <= min_instances <= max_instances <= 100 and max_instances >= 1."
  }
}

variable "python_runtime" {
  description = "Cloud Functions runtime of all four functions (the code is tested on Python 3.11)."
  type        = string
  default     = "python311"

  validation {
    condition     = can(regex("^python3[0-9]+$", var.python_runtime))
    error_message = "python_runtime must be a Cloud Functions Python runtime id such as python311."
  }
}

variable "functions_source_dir" {
  description = "Folder of the zips built by `make package` (relative to the folder terraform runs in)."
  type        = string
  default     = "../build/functions"

  validation {
    condition     = alltrue([for f in ["extract", "transform", "recommend", "load"] : fileexists("${var.functions_source_dir}/${f}.zip")])
    error_message = "The function zips are missing: run `make package` at the repository root first (it writes build/functions/<name>.zip)."
  }
}

# Retention and its cost (docs/operations.md, "Retention"). Raw responses are what
# `spotify-pipeline replay --stage transform` re-reads; older weeks can still be replayed from their
# clean tables (--stage recommend), which are kept. Size: ~0.7 MB per week for the demo's 3 markets
# (roughly 0.25 MB per market and week), at $0.02 per GB-month (Standard storage): the default 12
# weeks hold ~10 MB (< $0.001 a month); 520 weeks (10 years) ~0.4 GB (~$0.01 a month); 70 markets
# for 10 years ~9 GB (~$0.18 a month).
variable "raw_retention_weeks" {
  description = "Weeks raw Spotify responses and dropped chart files (the bucket's extract/ and inbox/ prefixes) are kept before deletion; also how far back `spotify-pipeline replay --stage transform` can go. Default 12: ~10 MB for 3 markets, well under $0.01 a month."
  type        = number
  default     = 12

  validation {
    condition     = var.raw_retention_weeks >= 1 && var.raw_retention_weeks <= 520 && floor(var.raw_retention_weeks) == var.raw_retention_weeks
    error_message = "raw_retention_weeks must be a whole number of weeks between 1 and 520."
  }
}

variable "noncurrent_retention_days" {
  description = "Days an overwritten or deleted object version is kept (re-runs overwrite a snapshot's objects)."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_retention_days >= 1 && var.noncurrent_retention_days <= 365
    error_message = "noncurrent_retention_days must be between 1 and 365."
  }
}

variable "max_event_age_seconds" {
  description = "Events older than this are acknowledged and dropped by the code, ending redelivery (PIPELINE_MAX_EVENT_AGE_SECONDS)."
  type        = number
  default     = 86400

  validation {
    condition     = var.max_event_age_seconds >= 60 && var.max_event_age_seconds <= 86400
    error_message = "max_event_age_seconds must be between 60 and 86400 (Eventarc stops retrying after 24 h anyway)."
  }
}

variable "deletion_protection" {
  description = "Protect the BigQuery tables from `terraform destroy` (set false, apply, then destroy to tear down)."
  type        = bool
  default     = true
}

variable "iam_propagation_seconds" {
  description = "Wait after the IAM grants Eventarc and Cloud Build need before creating the functions."
  type        = number
  default     = 60

  validation {
    condition     = var.iam_propagation_seconds >= 0 && var.iam_propagation_seconds <= 600
    error_message = "iam_propagation_seconds must be between 0 and 600."
  }
}

variable "service_agent_wait_seconds" {
  description = "Wait after enabling the APIs, for their service agents (Eventarc's first of all) to exist and hold their roles; re-run `terraform apply` if a fresh project needs longer (docs/deploy.md)."
  type        = number
  default     = 120

  validation {
    condition     = var.service_agent_wait_seconds >= 0 && var.service_agent_wait_seconds <= 900
    error_message = "service_agent_wait_seconds must be between 0 and 900."
  }
}

variable "looker_studio_template_report_id" {
  description = "Looker Studio report to copy for the dashboard (the id in its URL). Empty: the linking URL creates a new report from the views alone."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]*$", var.looker_studio_template_report_id))
    error_message = "looker_studio_template_report_id is the id from the report's URL: letters, digits, - and _."
  }
}

variable "looker_studio_aliases" {
  description = "Data source alias in the template report per dashboard view; a view not listed uses its own name as alias."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for a in values(var.looker_studio_aliases) : can(regex("^[A-Za-z0-9_]+$", a))])
    error_message = "Looker Studio aliases contain only letters, digits and underscores."
  }
}

variable "looker_studio_report_name" {
  description = "Name of the report the linking URL creates."
  type        = string
  default     = "Spotify weekly charts"
}

variable "labels" {
  description = "Labels put on every resource that takes labels (provider default_labels)."
  type        = map(string)
  default = {
    app        = "spotify-pipeline"
    managed-by = "terraform"
  }

  validation {
    condition = alltrue([
      for k, v in var.labels :
      can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))
    ])
    error_message = "Label keys must start with a lower-case letter; keys and values use only lower-case letters, digits, _ and - (max 63)."
  }
}

# Table partitions: every table is partitioned by day of snapshot_date (pipeline_runs: started_at).
# Cost of keeping them: recommendations dominate, N x (N - 1) rows per week up to
# PIPELINE_ALL_PAIRS_MAX_TRACKS; the demo's 3 markets (~143 tracks) store ~2 MB a week, ~110 MB a
# year, inside BigQuery's 10 GB of free storage for decades. At the 2000-track all-pairs limit a
# week is ~400 MB, ~20 GB a year: ~$0.20 a month after the first year, at $0.02 per GB-month
# (active) and $0.01 once a partition is 90 days unmodified (long-term); a 365-day expiration caps
# that at ~$0.20 a month for good. Views read recent weeks only, so history adds little query cost.
variable "table_partition_expiration_days" {
  description = "Days a table partition is kept after its date (snapshot_date; started_at for pipeline_runs) before BigQuery deletes it; 0 = keep every week (default: ~110 MB a year for 3 markets, inside the free 10 GB). A backfill of weeks older than this is deleted by BigQuery right after it loads."
  type        = number
  default     = 0

  validation {
    condition     = var.table_partition_expiration_days >= 0 && floor(var.table_partition_expiration_days) == var.table_partition_expiration_days
    error_message = "table_partition_expiration_days must be a whole number of days, 0 (never expire) or more."
  }
}

# Alerts (infra/monitoring.tf). Cost: log-based metrics and e-mails are free; Cloud Monitoring
# bills $1.50 a month per alerting condition (two) once its alerting charges apply
# (docs/deploy.md, "Monthly cost").
variable "alert_email" {
  description = "E-mail address notified when a stage fails or no load succeeds for no_load_alert_days days (a Cloud Monitoring notification channel). Empty: no channel, incidents show in the console only."
  type        = string
  default     = ""

  validation {
    condition     = var.alert_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be an e-mail address such as ops@example.com, or empty."
  }
}

variable "alerts_enabled" {
  description = "Create the two alert policies (a stage failed; no successful load), billed per condition. false: no policy exists (nothing billed); the log-based metrics exist either way."
  type        = bool
  default     = true
}

variable "no_load_alert_days" {
  description = "Days without a successful load after which the no-load alert fires (weekly schedule: 8 = one missed week plus a day)."
  type        = number
  default     = 8

  validation {
    condition     = var.no_load_alert_days >= 2 && var.no_load_alert_days <= 30 && floor(var.no_load_alert_days) == var.no_load_alert_days
    error_message = "no_load_alert_days must be a whole number of days between 2 and 30."
  }
}
