"""The synthetic data set the sample model is trained on and the traffic generator draws from.

scikit-learn's bundled data sets are too small to serve as a drift reference: wine's own train and
held-out splits already differ by a PSI of about 0.2 with 10 bins, so traffic from the training
distribution would look drifted. ``make_classification`` generates as many rows as needed, needs no
download and is reproducible from a seed, so training, tests and the traffic generator all see the same
distribution. The data is synthetic; its features have no meaning beyond their role:

* ``f0`` to ``f4`` are informative (they carry the class signal),
* ``f5`` is a linear combination of informative features (redundant),
* ``f6`` and ``f7`` are pure noise: the model hardly uses them, so shifting them drifts the inputs
  without moving the predictions, which is how the tests tell input drift from prediction drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import make_classification

from model_service import contract

SEED: Final = 20240501
"""Seed of the generator and of the row shuffle; changing it changes the data set and the model."""

N_ROWS: Final = 100_000
"""Rows generated; half train the model and define the drift reference, half are held out."""

TRAIN_FRACTION: Final = 0.5
"""Share of rows used for training. Large on both sides so that quantile edges and reference shares are
estimated from 50,000 rows (negligible noise next to a 1,000-observation window)."""

FEATURE_NAMES: Final[tuple[str, ...]] = contract.SAMPLE_FEATURE_NAMES
"""Input feature names, in column order."""

INFORMATIVE_FEATURES: Final[tuple[str, ...]] = FEATURE_NAMES[:5]
"""Features that carry the class signal."""

NOISE_FEATURES: Final[tuple[str, ...]] = FEATURE_NAMES[6:]
"""Features the labels do not depend on."""

CLASS_NAMES: Final[tuple[str, ...]] = ("class_0", "class_1", "class_2")
"""Class labels as the API returns them and as they appear in metric labels."""


@dataclass(frozen=True)
class Dataset:
    """Train and held-out splits of the synthetic data, with string class labels."""

    x_train: NDArray[np.float64]
    y_train: NDArray[np.str_]
    x_holdout: NDArray[np.float64]
    y_holdout: NDArray[np.str_]

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Column names of ``x_train`` and ``x_holdout``."""
        return FEATURE_NAMES


def generation_parameters() -> dict[str, object]:
    """Return the arguments of the generator, recorded in the model artifact for provenance."""
    return {
        "generator": "sklearn.datasets.make_classification",
        "n_samples": N_ROWS,
        "n_features": len(FEATURE_NAMES),
        "n_informative": len(INFORMATIVE_FEATURES),
        "n_redundant": 1,
        "n_repeated": 0,
        "n_classes": len(CLASS_NAMES),
        "n_clusters_per_class": 1,
        "class_sep": 1.0,
        "flip_y": 0.01,
        "random_state": SEED,
        "train_fraction": TRAIN_FRACTION,
    }


def load_dataset() -> Dataset:
    """Generate the data set; the same call returns the same arrays on every machine and run.

    Features are generated unshuffled (so their roles stay in the documented columns) and the rows are
    then permuted, because ``make_classification`` with ``shuffle=False`` also orders rows by class.
    """
    x, y = make_classification(
        n_samples=N_ROWS,
        n_features=len(FEATURE_NAMES),
        n_informative=len(INFORMATIVE_FEATURES),
        n_redundant=1,
        n_repeated=0,
        n_classes=len(CLASS_NAMES),
        n_clusters_per_class=1,
        class_sep=1.0,
        flip_y=0.01,
        shuffle=False,
        random_state=SEED,
    )
    order = np.random.default_rng(SEED).permutation(N_ROWS)
    x = np.ascontiguousarray(x[order], dtype=np.float64)
    labels = np.asarray(CLASS_NAMES)[y[order]]
    split = int(N_ROWS * TRAIN_FRACTION)
    return Dataset(x_train=x[:split], y_train=labels[:split], x_holdout=x[split:], y_holdout=labels[split:])
