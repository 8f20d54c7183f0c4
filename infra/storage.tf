# The data bucket holds every object of every run under <stage>/snapshot_date=YYYY-MM-DD/
# (extract/ = raw Spotify responses, transform/, recommend/, load/ = receipts).
resource "google_storage_bucket" "data" {
  # checkov:skip=CKV_GCP_62: Access is audited by Cloud Audit Logs (Data Access logs can be enabled on storage.googleapis.com); a usage-log bucket would add a second bucket that itself fails this check.
  name                        = local.data_bucket_name
  location                    = var.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Re-running a snapshot overwrites its objects: versioning keeps the previous generation for
  # noncurrent_retention_days, long enough to undo a bad re-run.
  versioning {
    enabled = true
  }

  # Raw inputs (Spotify responses under extract/, dropped chart files under inbox/) are kept
  # raw_retention_weeks weeks; clean data, model output, receipts and the fetch cache (cache/)
  # stay: they are small and BigQuery holds the same rows.
  lifecycle_rule {
    condition {
      age            = var.raw_retention_weeks * 7
      matches_prefix = ["extract/", "inbox/"]
      with_state     = "LIVE"
    }
    action {
      type = "Delete"
    }
  }

  # Overwritten and deleted generations are dropped after noncurrent_retention_days.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# Function sources. The zips come from `make package` (deterministic: same code, same bytes);
# the object name carries the zip's SHA-256, so a code change uploads a new object, which
# changes build_config.source and redeploys that function, and nothing else does.
resource "google_storage_bucket" "sources" {
  # checkov:skip=CKV_GCP_62: Holds only build inputs written by Terraform; Cloud Audit Logs cover access, and a usage-log bucket would itself fail this check.
  name                        = local.sources_bucket_name
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # only Terraform-managed, reproducible zips live here

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_storage_bucket_object" "function_source" {
  for_each = toset(local.functions)

  bucket       = google_storage_bucket.sources.name
  name         = "functions/${each.key}-${filesha256("${var.functions_source_dir}/${each.key}.zip")}.zip"
  source       = "${var.functions_source_dir}/${each.key}.zip"
  content_type = "application/zip"
}

# Images built from the sources. A repository of our own (instead of the default gcf-artifacts)
# lets the build service account get writer on this repository only, and lets old images expire.
resource "google_artifact_registry_repository" "functions" {
  # checkov:skip=CKV_GCP_84: Images are built from public-source code with no secrets inside; Google-managed encryption is enough and a CMEK key would add KMS cost and key administration.
  location               = var.region
  repository_id          = "${var.name_prefix}-functions"
  description            = "Images of the spotify-pipeline Cloud Functions (built by Cloud Build)."
  format                 = "DOCKER"
  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 3
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "2592000s" # 30 days; KEEP wins, so the live image always survives
    }
  }

  depends_on = [google_project_service.enabled]
}
