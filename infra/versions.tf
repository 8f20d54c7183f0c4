# Provider versions are pinned: infra/checks/provider_schema.py validates every attribute and
# block name offline against the schema of exactly this google provider release (taken from the
# npm package @cdktf/provider-google 16.12.1, built from hashicorp/google 6.50.0; see
# infra/checks/package.json). Bump both together.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50.0"
    }
    time = {
      source  = "hashicorp/time"
      version = "~> 0.13.1"
    }
  }
}

provider "google" {
  project        = var.project_id
  region         = var.region
  default_labels = var.labels
}
