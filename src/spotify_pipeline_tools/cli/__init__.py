"""The ``spotify-pipeline`` command line (entry point: :func:`spotify_pipeline_tools.cli.main.main`)."""
