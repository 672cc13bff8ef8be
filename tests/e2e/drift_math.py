"""PSI and Jensen-Shannon distance as numpy and scipy compute them, and the training shares they compare with:
what the suites check Prometheus' recorded drift against."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from model_service import contract
from scipy.spatial.distance import jensenshannon


def reference_shares(artifact: Path) -> dict[str, dict[str, float]]:
    """Training shares per feature and bin, from the artifact the service loaded (not from Prometheus)."""
    metadata = json.loads((artifact / "metadata.json").read_text())
    shares = {
        feature["name"]: {contract.bin_label(i): share for i, share in enumerate(feature["shares"])}
        for feature in metadata["features"]
    }
    prediction = metadata["prediction"]
    shares[contract.PREDICTION_FEATURE] = dict(zip(prediction["classes"], prediction["shares"], strict=True))
    return shares


def psi_of(counts: np.ndarray, reference: np.ndarray) -> float:
    q = np.maximum(counts / counts.sum(), contract.PSI_EPSILON)
    p = np.maximum(reference, contract.PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def js_of(counts: np.ndarray, reference: np.ndarray) -> float:
    q = np.maximum(counts / counts.sum(), contract.JS_EPSILON)
    p = np.maximum(reference, contract.JS_EPSILON)
    return float(jensenshannon(q, p, base=2))
