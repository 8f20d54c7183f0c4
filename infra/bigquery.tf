# One source of truth: the loader builds its BigQuery schemas from the same file
# (spotify_pipeline/schemas/tables.json), so a column is added in one place only.
locals {
  schema_file = "${path.module}/../src/spotify_pipeline/schemas/tables.json"
  schema      = jsondecode(file(local.schema_file))
  tables      = local.schema.tables
  # Dashboard views: {"views": {name: {"description": ..., "sql": ...}}} in the same file; the SQL
  # names tables as `{project}.{dataset}.table` (a `${project}` spelling is accepted too).
  views = try(local.schema.views, {})

  # The API answers with legacy type names; using them avoids a perpetual schema diff.
  bigquery_legacy_types = {
    INT64   = "INTEGER"
    FLOAT64 = "FLOAT"
    BOOL    = "BOOLEAN"
    STRUCT  = "RECORD"
  }
}

resource "google_bigquery_dataset" "charts" {
  # checkov:skip=CKV_GCP_81: Public chart data; Google-managed encryption is enough, CMEK would add KMS cost and key administration for no confidentiality gain.
  dataset_id                 = var.dataset_id
  location                   = var.bigquery_location
  friendly_name              = "Spotify weekly charts"
  description                = "Weekly Spotify charts, track features and cross-market recommendations (spotify-pipeline)."
  delete_contents_on_destroy = false

  depends_on = [google_project_service.enabled]
}

resource "google_bigquery_table" "tables" {
  # checkov:skip=CKV_GCP_80: Public chart data; Google-managed encryption is enough, CMEK would add KMS cost and key administration for no confidentiality gain.
  for_each = local.tables

  dataset_id          = google_bigquery_dataset.charts.dataset_id
  table_id            = each.key
  description         = each.value.description
  deletion_protection = var.deletion_protection

  schema = jsonencode([
    for column in each.value.columns : {
      name        = column.name
      type        = lookup(local.bigquery_legacy_types, column.type, column.type)
      mode        = column.mode
      description = column.description
    }
  ])

  # The loader replaces one snapshot_date partition per run (MERGE on the partition field).
  # Partitions older than var.table_partition_expiration_days are deleted by BigQuery (0: kept;
  # the cost of either is written next to the variable).
  time_partitioning {
    type  = "DAY"
    field = each.value.partition_field

    expiration_ms = var.table_partition_expiration_days > 0 ? var.table_partition_expiration_days * 86400000 : null
  }

  clustering = length(try(each.value.clustering, [])) > 0 ? each.value.clustering : null
}

resource "google_bigquery_table" "views" {
  # checkov:skip=CKV_GCP_80: A view stores no data; the tables it reads carry the encryption settings.
  # checkov:skip=CKV_GCP_121: A view stores no data and is rebuilt from tables.json; protecting it would only block removing a view from that file. The tables are protected.
  for_each = local.views

  dataset_id          = google_bigquery_dataset.charts.dataset_id
  table_id            = each.key
  description         = try(each.value.description, null)
  deletion_protection = false # see the checkov skip above

  view {
    use_legacy_sql = false
    query = replace(replace(replace(replace(each.value.sql,
      "$${project}", var.project_id), "{project}", var.project_id),
    "$${dataset}", var.dataset_id), "{dataset}", var.dataset_id)
  }

  depends_on = [google_bigquery_table.tables]
}
