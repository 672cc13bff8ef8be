"""Train the sample model and write its artifact: ``python -m model_service.train --output DIR``.

Training is deterministic (fixed data seed, deterministic solver), so the image build produces the same
estimator on every run. The training time is the only varying field; set ``SOURCE_DATE_EPOCH`` (the
reproducible-builds convention) to pin it as well.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sklearn.linear_model import LogisticRegression

from model_service import contract, data
from model_service.artifact import ArtifactMetadata, library_versions, save_artifact, utc_now
from model_service.drift import feature_reference, prediction_reference

DEFAULT_MODEL_NAME = "synthetic-classifier"
DEFAULT_MODEL_VERSION = "1.0.0"


def training_time() -> datetime:
    """When the model counts as trained: ``SOURCE_DATE_EPOCH`` if set (reproducible builds), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return datetime.fromtimestamp(int(epoch), UTC)
    return utc_now()


def train(
    output: Path,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
    model_version: str = DEFAULT_MODEL_VERSION,
    bin_count: int = contract.DEFAULT_DRIFT_BIN_COUNT,
) -> ArtifactMetadata:
    """Fit the classifier on the training split and write the artifact with its drift reference.

    A multinomial logistic regression: tens of microseconds per prediction, so request latency is
    dominated by the serving stack it is meant to exercise, and about 0.89 held-out accuracy, so feedback
    with ground truth gives a realistic, imperfect accuracy.
    """
    dataset = data.load_dataset()
    trained_at = training_time()
    started = time.perf_counter()
    estimator = LogisticRegression(max_iter=1000)
    estimator.fit(dataset.x_train, dataset.y_train)
    duration = time.perf_counter() - started
    classes = tuple(str(c) for c in estimator.classes_)
    metadata = {
        "model_name": model_name,
        "model_version": model_version,
        "trained_at": trained_at,
        "training_duration_seconds": duration,
        "training_rows": len(dataset.x_train),
        "holdout_accuracy": float(estimator.score(dataset.x_holdout, dataset.y_holdout)),
        "estimator": repr(estimator),
        "feature_names": dataset.feature_names,
        "classes": classes,
        "drift_bin_count": bin_count,
        "features": [
            feature_reference(name, dataset.x_train[:, column], bin_count)
            for column, name in enumerate(dataset.feature_names)
        ],
        "prediction": prediction_reference(classes, estimator.predict(dataset.x_train)),
        "data": data.generation_parameters(),
        "library_versions": library_versions(),
    }
    return save_artifact(output, estimator, metadata)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m model_service.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--output", type=Path, required=True, help="artifact directory to create or overwrite"
    )
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--model-version", default=DEFAULT_MODEL_VERSION)
    parser.add_argument(
        "--bins",
        type=int,
        default=contract.DEFAULT_DRIFT_BIN_COUNT,
        help="drift bins per feature (training quantiles); default %(default)s",
    )
    args = parser.parse_args(argv)
    metadata = train(
        args.output, model_name=args.model_name, model_version=args.model_version, bin_count=args.bins
    )
    print(
        f"trained {metadata.model_name} {metadata.model_version}: {metadata.training_rows} rows, "
        f"held-out accuracy {metadata.holdout_accuracy:.4f}, "
        f"{metadata.training_duration_seconds:.2f} s; artifact in {args.output}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
