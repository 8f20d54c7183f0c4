"""The audio features, declared once: their names, their ranges and the model's standardisation.

Used by the chart-file reader and transform (the input contract), the feature gates (the
documented ranges), recommend and the ``recommend`` command (the model's four features, z-scored).

Two layers of ranges. :data:`INPUT_RANGES` is the input contract: a value outside it cannot be a
feature at all, and extract/transform refuse the record as corrupt input (no force).
:data:`FEATURE_RANGES` is what Spotify documents (Web API, "Get Track's Audio Features"; the
tracks table's column descriptions), inside the contract's (a unit test checks it): a plausible
value outside it fails the ``features_in_range`` gate, which the operator may force. Where the
documentation is narrower than what Spotify actually returns, the range is the observed one, so
real data never fails on it: loudness is "typically -60..0 dB" (a few masters measure slightly
above 0), time_signature is documented 3..7 but 0 and 1 occur, tempo has no documented bound (0
occurs for silence).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported by the callers that z-score; extract never does
    import numpy as np

# The seed model's features: z-scored, clustered and compared by euclidean distance.
MODEL_FEATURES = ("danceability", "energy", "loudness", "valence")
Z_COLUMNS = tuple(f"{c}_z" for c in MODEL_FEATURES)
OTHER_FEATURES = ("acousticness", "instrumentalness", "liveness", "speechiness", "tempo")
INT_FEATURES = ("key", "mode", "time_signature")

# Inclusive, in the column order of a chart file (Spotify's scales with room to spare for loudness
# and tempo); NaN, infinities and values outside are refused with the record and field.
INPUT_RANGES: dict[str, tuple[float, float]] = {
    "danceability": (0.0, 1.0),
    "energy": (0.0, 1.0),
    "key": (-1, 11),
    "loudness": (-100.0, 10.0),
    "mode": (0, 1),
    "speechiness": (0.0, 1.0),
    "acousticness": (0.0, 1.0),
    "instrumentalness": (0.0, 1.0),
    "liveness": (0.0, 1.0),
    "valence": (0.0, 1.0),
    "tempo": (0.0, 400.0),
    "time_signature": (0, 12),
}
AUDIO_FEATURES: tuple[str, ...] = tuple(INPUT_RANGES)

FEATURE_RANGES: dict[str, tuple[float, float]] = {
    "danceability": (0.0, 1.0),
    "energy": (0.0, 1.0),
    "valence": (0.0, 1.0),
    "loudness": (-60.0, 5.0),
    "acousticness": (0.0, 1.0),
    "instrumentalness": (0.0, 1.0),
    "liveness": (0.0, 1.0),
    "speechiness": (0.0, 1.0),
    "tempo": (0.0, 300.0),
    "key": (-1.0, 11.0),
    "mode": (0.0, 1.0),
    "time_signature": (0.0, 7.0),
}


def zscore(raw: np.ndarray) -> np.ndarray:
    """Column-wise (x - mean) / population std; 0 where the std is 0 (a feature constant over the
    snapshot), rather than NaN. The one standardisation: transform's ``_z`` columns and recommend's
    model input on a features file both come from here, so they agree to the bit."""
    import numpy as np

    out = np.empty_like(raw, dtype=np.float64)
    for j in range(raw.shape[1]):
        values = np.ascontiguousarray(raw[:, j], dtype=np.float64)
        std = values.std(ddof=0) if len(values) else 0.0
        out[:, j] = (values - values.mean()) / std if std > 0 else np.zeros(len(values))
    return out
