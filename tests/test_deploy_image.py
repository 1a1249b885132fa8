"""The Dockerfile and docker-compose.yml agree with the repository and the settings. No Docker daemon is needed.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy_support import COMPOSE, ROOT, RUNTIME_UID, settings_env_names


def dockerfile_stages() -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = "(preamble)"
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
        stages.setdefault(current, []).append(line)
    return stages


def test_dockerfile_is_multistage_pinned_gpu_capable_and_runs_unprivileged() -> None:
    stages = dockerfile_stages()
    assert len([s for s in stages if s != "(preamble)"]) >= 2
    assert list(stages)[-1] == "runtime", "the default target (last stage) must be the serving image"
    build, runtime = " ".join(stages["build"]), stages["runtime"]
    assert "ARG GPU=0" in build and '".[gpu]"' in build and "pip install -c constraints.txt ." in build
    assert "torch" not in build and "[train" not in build, "the serving image must not install torch"
    assert f"USER {RUNTIME_UID}" in " ".join(runtime)
    assert any(line.startswith("HEALTHCHECK") and "/healthz" in line for line in runtime)
    assert 'ENTRYPOINT ["session-intent", "serve"]' in runtime
    assert any("models/default" in line for line in runtime if line.startswith("COPY"))
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'gpu = \[.*onnxruntime-gpu.*tensorrt', pyproject), "the gpu extra must hold ORT-GPU + TensorRT"


def test_dockerfile_copies_only_files_that_exist_and_are_in_the_context() -> None:
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    copies = [line.split()[1:] for lines in dockerfile_stages().values() for line in lines if line.startswith("COPY")]
    sources = [src for parts in copies if not any(p.startswith("--from") for p in parts) for src in parts[:-1]]
    assert {"constraints.txt", "pyproject.toml", "model/", "service/", "cli/", "models/default/"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert source.rstrip("/") not in ignored, f"COPY {source}: excluded by .dockerignore"


def test_compose_services_mounts_and_settings() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"redis", "service", "prometheus", "grafana", "locust"} <= set(services)
    assert services["locust"]["profiles"] == ["loadtest"]
    assert all("profiles" not in services[name] for name in ("redis", "service", "prometheus", "grafana"))
    stages = set(dockerfile_stages())
    assert services["service"]["build"]["target"] in stages and services["locust"]["build"]["target"] in stages
    for service in services.values():
        assert all(str(p).startswith("127.0.0.1:") for p in service.get("ports", [])), "publish on loopback only"
        for volume in service.get("volumes", []):
            assert (ROOT / volume.split(":")[0]).exists(), f"mounted file missing: {volume}"
    unknown = set(services["service"]["environment"]) - settings_env_names()
    assert not unknown, f"compose sets SI_* keys that Settings ignores: {sorted(unknown)}"
    assert services["service"]["environment"]["SI_REDIS_URL"].startswith("redis://redis:")


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_docker_compose_config_is_valid() -> None:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("docker CLI without the compose plugin")
    result = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
