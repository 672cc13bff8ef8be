"""The model artifact: a fitted scikit-learn estimator plus the metadata that monitoring needs.

The artifact is a directory with ``model.joblib`` (the estimator) and ``metadata.json`` (name, version,
training time, feature names, classes, and the training reference distribution of every feature and of
the prediction). The metadata is validated on load and pins the SHA-256 of the estimator file, so a
truncated copy or a file from another training run is refused instead of served.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import sklearn
from numpy.typing import NDArray
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from model_service import contract
from model_service.drift import FeatureReference, PredictionReference

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
NAME_PATTERN = contract.NAME_PATTERN
"""Model names and versions become label values and parts of paths: keep them short and plain."""


class ArtifactError(RuntimeError):
    """The artifact is missing, inconsistent, or was built with other library versions."""


class ArtifactMetadata(BaseModel):
    """Everything about a trained model except its weights; written next to the estimator file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: Literal[1] = 1
    model_name: str = Field(pattern=NAME_PATTERN)
    model_version: str = Field(pattern=NAME_PATTERN)
    trained_at: AwareDatetime
    training_duration_seconds: float = Field(ge=0)
    training_rows: int = Field(gt=0)
    holdout_accuracy: float = Field(ge=0, le=1)
    estimator: str
    feature_names: tuple[str, ...] = Field(min_length=1)
    classes: tuple[str, ...] = Field(min_length=2)
    drift_bin_count: int = Field(ge=2, le=contract.MAX_DRIFT_BIN_COUNT)
    features: tuple[FeatureReference, ...]
    prediction: PredictionReference
    data: dict[str, Any]
    library_versions: dict[str, str]
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _consistent(self) -> ArtifactMetadata:
        if tuple(f.name for f in self.features) != self.feature_names:
            raise ValueError("features must hold one reference per feature name, in the same order")
        if len(set(self.feature_names)) != len(self.feature_names):
            raise ValueError("feature names must be unique")
        if contract.PREDICTION_FEATURE in self.feature_names:
            raise ValueError(f"{contract.PREDICTION_FEATURE!r} is reserved for the prediction's drift series")
        if self.prediction.classes != self.classes:
            raise ValueError("prediction reference classes must equal the model classes")
        return self


@dataclass(frozen=True)
class ModelArtifact:
    """A loaded artifact: the metadata and the estimator it describes."""

    metadata: ArtifactMetadata
    estimator: Any

    def predict_proba(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Class probabilities, one row per record, columns in :attr:`ArtifactMetadata.classes` order."""
        return self.estimator.predict_proba(x)  # type: ignore[no-any-return]


def library_versions() -> dict[str, str]:
    """Versions an artifact depends on: a pickled estimator is only safe to load with the same ones."""
    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__, "numpy": np.__version__}


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_artifact(directory: Path, estimator: Any, metadata: dict[str, Any]) -> ArtifactMetadata:
    """Write the estimator and its metadata (completed with the estimator file's hash) to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILE
    joblib.dump(estimator, model_path)
    validated = ArtifactMetadata.model_validate({**metadata, "model_sha256": sha256_of(model_path)})
    (directory / METADATA_FILE).write_text(validated.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return validated


def read_metadata(directory: Path) -> ArtifactMetadata:
    """Read and validate ``metadata.json`` without loading the estimator (cheap; no unpickling)."""
    path = directory / METADATA_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ArtifactError(f"no model artifact at {directory}: {METADATA_FILE} is missing") from error
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{path} is not valid JSON: {error}") from error
    return ArtifactMetadata.model_validate(raw)


def load_artifact(directory: Path) -> ModelArtifact:
    """Load and check an artifact: file hash, library versions, and that the estimator fits the metadata."""
    metadata = read_metadata(directory)
    model_path = directory / MODEL_FILE
    if not model_path.is_file():
        raise ArtifactError(f"{model_path} is missing")
    actual = sha256_of(model_path)
    if actual != metadata.model_sha256:
        raise ArtifactError(f"{model_path} has SHA-256 {actual}, metadata expects {metadata.model_sha256}")
    current = library_versions()
    for library in ("scikit-learn", "numpy"):
        if metadata.library_versions.get(library) != current[library]:
            raise ArtifactError(
                f"artifact was trained with {library} {metadata.library_versions.get(library)}, "
                f"this environment has {current[library]}; retrain or install the same version"
            )
    estimator = joblib.load(model_path)
    classes = tuple(str(c) for c in getattr(estimator, "classes_", ()))
    if classes != metadata.classes:
        raise ArtifactError(f"estimator classes {classes} differ from metadata classes {metadata.classes}")
    if getattr(estimator, "n_features_in_", None) != len(metadata.feature_names):
        raise ArtifactError("estimator expects a different number of features than the metadata lists")
    return ModelArtifact(metadata=metadata, estimator=estimator)


def utc_now() -> datetime:
    """Current time, timezone-aware, so ``trained_at`` is unambiguous in the metadata."""
    return datetime.now(UTC)
