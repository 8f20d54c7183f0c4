"""The local stack: Google's emulators, the Spotify stand-in, one functions-framework server
per function and an Eventarc stand-in, wired exactly as the cloud deployment is."""
