"""Developer and operator tools around the core package: the CLI, the local stack, the Spotify stand-in,
the dashboard, replay and backfill, packaging. Installed with the CLI, never in a function zip: the
core (``spotify_pipeline``) never imports this package, so each zip is the core package as it is."""
