"""Weekly Spotify charts pipeline: the typed core shared by the four Cloud Functions."""

__version__ = "0.1.0"
