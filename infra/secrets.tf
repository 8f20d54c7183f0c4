# Spotify app credentials. Terraform creates the secrets only, never a version: the values are
# added with `gcloud secrets versions add ... --data-file=-` (docs/deploy.md), so they are never
# in a .tf file, a variable, a plan or the state. Only extract's account (extract and ingest) can
# read them, at run time, when a run first calls Spotify (spotify_pipeline.sources.credentials):
# a deployment never waits for a version, and one that only imports chart files needs none.
locals {
  spotify_secrets = {
    SPOTIFY_CLIENT_ID     = "${var.name_prefix}-spotify-client-id"
    SPOTIFY_CLIENT_SECRET = "${var.name_prefix}-spotify-client-secret"
  }
}

resource "google_secret_manager_secret" "spotify" {
  for_each = local.spotify_secrets

  secret_id = each.value
  labels    = { env-var = lower(replace(each.key, "_", "-")) }

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}
