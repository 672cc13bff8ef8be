"""The image's build steps, run without Docker: install into a clean virtualenv, train, serve.

No Docker engine is available where the tests run, so this test does what the Dockerfile does, with the
Dockerfile as the source of truth: the build context is only what ``.dockerignore`` lets through, the
install command and the train command are the build stage's, and the service starts with the final
stage's environment and command. It needs PyPI (pip's cache makes reruns fast) and takes about a
minute; select it with ``-m image``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

import httpx
import pytest
from dockerfile import DOCKERFILE, stages

from model_service.serve import free_port

pytestmark = pytest.mark.image

SOURCE = DOCKERFILE.parent


def build_context(target: Path) -> None:
    """Copy what the .dockerignore allow-list lets into the build context."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(SOURCE / name, target / name)
    shutil.copytree(
        SOURCE / "model_service", target / "model_service", ignore=shutil.ignore_patterns("__pycache__")
    )


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> None:
    completed = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert completed.returncode == 0, (
        f"{shlex.join(command)} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    )


def test_build_steps_produce_a_serving_image(tmp_path: Path) -> None:
    build, final = stages()[0], stages()[-1]
    install = next(r for r in build.arguments("RUN") if r.startswith("pip install"))
    train = next(r for r in build.arguments("RUN") if "model_service.train" in r)
    assert re.fullmatch(r'pip install --no-cache-dir "\./\[serve\]"', install)

    context = tmp_path / "src"
    context.mkdir()
    build_context(context)
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(environment)
    bin_dir = environment / "bin"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "SOURCE_DATE_EPOCH": "1767225600",
    }
    # The Dockerfile's install, with pip's cache allowed (the image drops it only to stay small).
    run(shlex.split(install.replace("--no-cache-dir ", "")), context, env, timeout=600)
    artifact = tmp_path / "model"
    run(shlex.split(train.replace("/opt/model", str(artifact))), context, env, timeout=120)
    assert (artifact / "metadata.json").is_file() and (artifact / "model.joblib").is_file()

    # Serve from outside the source tree, so the installed package (not the checkout) is imported.
    runtime_env = (
        env
        | final.env()
        | {
            "PATH": env["PATH"],
            "MODEL_ARTIFACT_DIR": str(artifact),
            "MODEL_PORT": str(free_port()),
            "MODEL_HOST": "127.0.0.1",
            "MODEL_FEEDBACK_SIGNING_KEY": "image-build-test-key",
        }
    )
    workdir = tmp_path / "run"
    workdir.mkdir()
    located = subprocess.run(
        ["python", "-c", "import model_service; print(model_service.__file__)"],
        cwd=workdir,
        env=runtime_env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert located.stdout.strip().startswith(str(environment))
    server = subprocess.Popen(
        final.cmd(), cwd=workdir, env=runtime_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{runtime_env['MODEL_PORT']}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "service not ready within 60 s"
            time.sleep(0.2)
        record = dict.fromkeys([f"f{i}" for i in range(8)], 0.25)
        response = httpx.post(f"{base}/predict", json={"records": [record]}, timeout=5)
        assert response.status_code == 200
        prediction = response.json()["predictions"][0]
        feedback = httpx.post(
            f"{base}/feedback",
            json={"feedback": [{"prediction_id": prediction["id"], "actual_class": prediction["class"]}]},
            timeout=5,
        )
        assert feedback.json() == {"accepted": 1, "correct": 1}
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert 'model_info{model_name="synthetic-classifier",model_version="1.0.0"} 1.0' in metrics
        assert "model_trained_timestamp_seconds" in metrics and "1.7672256e+09" in metrics
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    output = server.stdout.read() if server.stdout else ""
    # uvicorn finishes in-flight work, then re-raises SIGTERM so the exit status tells how it ended.
    assert code in (0, -signal.SIGTERM), output
    assert "Finished server process" in output, output


def test_python_matches_the_image() -> None:
    # The image runs CPython 3.11; a different minor version here would not test the same build.
    base = stages()[-1].base
    assert base.startswith(f"python:{sys.version_info.major}.{sys.version_info.minor}.")
