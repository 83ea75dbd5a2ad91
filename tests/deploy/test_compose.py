"""docker-compose.yml and deploy/Dockerfile: the real docker-compose validates the stack, and its
parts agree with each other and with the code (settings, topics, ports, the image's file layout).
No Docker engine here, so the image is not built; its layout is rebuilt in a directory instead."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
import yaml

from streams.cli import main as cli
from streams.config import ENV_PREFIX, EVENT_SCHEMA_FILE, Settings, settings_to_toml
from streams.core.contract import parse_time_ms
from streams.tools.kafkaio import consume
from tests.support.debian_tools import run_tool

pytestmark = pytest.mark.needs_debian("docker-compose")

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    """The compose file as docker-compose resolves it (anchors, defaults, paths)."""
    result = run_tool("docker-compose", "-f", str(COMPOSE), "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_docker_compose_config_is_valid() -> None:
    result = run_tool("docker-compose", "-f", str(COMPOSE), "config", "-q", cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_stack_has_every_part(stack: dict[str, Any]) -> None:
    assert {"kafka", "topics", "worker", "simulator", "prometheus", "alertmanager", "grafana"} <= set(stack)
    assert stack["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in stack["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper


def test_worker_scales_and_is_built_from_the_dockerfile(stack: dict[str, Any]) -> None:
    worker = stack["worker"]
    assert "ports" not in worker, "a fixed host port would stop `--scale worker=N`"
    assert "container_name" not in worker
    assert Path(worker["build"]["context"]) / worker["build"]["dockerfile"] == DOCKERFILE
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_engagement_variables_are_settings_the_workers_know(stack: dict[str, Any]) -> None:
    fields = Settings.__dataclass_fields__
    seen = 0
    for name, service in stack.items():
        for var in service.get("environment", {}):
            if var.startswith(ENV_PREFIX):
                assert var[len(ENV_PREFIX):].lower() in fields, f"{name}: {var} is not a setting"
                seen += 1
    assert seen >= 8
    env = stack["worker"]["environment"]
    assert env["ENGAGEMENT_BOOTSTRAP"] == "kafka:9092" and env["ENGAGEMENT_WEB_HOST"] == "0.0.0.0"


def test_topic_service_creates_the_pipeline_topics(stack: dict[str, Any]) -> None:
    defaults = Settings()
    script = " ".join(stack["topics"]["command"])
    created = set(re.search(r"for topic in ([^;]+);", script).group(1).split())
    assert created == {defaults.events_topic, *defaults.output_topics}


def test_prometheus_finds_every_worker_replica(stack: dict[str, Any]) -> None:
    mounts = {v.split(":")[1]: Path(v.split(":")[0]) for v in stack["prometheus"]["volumes"] if v.startswith("/")}
    assert mounts["/etc/prometheus"] == REPO / "deploy" / "prometheus"
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "engagement-worker")
    sd = job["dns_sd_configs"][0]
    assert sd["names"] == ["worker"] and sd["type"] == "A"
    assert str(sd["port"]) == str(stack["worker"]["environment"]["ENGAGEMENT_WEB_PORT"])
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_grafana_is_provisioned_from_the_repo(stack: dict[str, Any]) -> None:
    mounts = {v.split(":")[1]: Path(v.split(":")[0]) for v in stack["grafana"]["volumes"] if v.startswith("/")}
    assert mounts["/etc/grafana/provisioning"] == REPO / "deploy" / "grafana" / "provisioning"
    provider = yaml.safe_load((mounts["/etc/grafana/provisioning"] / "dashboards" / "engagement.yml").read_text())
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert mounts[dashboards_path] == REPO / "deploy" / "grafana" / "dashboards"
    home = stack["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (mounts[dashboards_path] / Path(home).name).is_file()


def test_simulator_pipes_a_simulation_into_produce(stack: dict[str, Any]) -> None:
    script = " ".join(stack["simulator"]["command"])
    simulate, produce = (part.split() for part in script.split("|"))
    assert simulate[:2] == ["streams", "simulate"] and produce[:2] == ["streams", "produce"]
    assert produce[-1] == "-"
    for argv in (simulate, produce):
        command = cli.commands[argv[1]]  # the command exists and accepts these options
        options = {opt for param in command.params if isinstance(param, click.Option) for opt in param.opts}
        assert {arg for arg in argv[2:] if arg.startswith("--")} <= options, argv


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def test_image_layout_finds_the_event_contract(tmp_path: Path) -> None:
    """Rebuild the image's /app from the Dockerfile's COPY lines and run the contract from it,
    both with the Dockerfile's ENGAGEMENT_SCHEMAS_DIR and with the default (next to the package)."""
    app = tmp_path / "app"
    app.mkdir()
    env: dict[str, str] = {}
    for word, args in dockerfile_instructions():
        if word == "FROM":
            assert args.startswith("python:3.11-slim")
        elif word == "COPY":
            *sources, dest = args.split()
            for source in sources:
                src = REPO / source
                assert src.exists(), f"COPY {source}: not in the repository"
                target = app / dest / (src.name if dest.endswith("/") and src.is_file() else "")
                if src.is_dir():
                    shutil.copytree(src, target, dirs_exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(src, target)
        elif word == "ENV":
            env.update(pair.split("=", 1) for pair in args.split())
    assert env["ENGAGEMENT_WEB_HOST"] == "0.0.0.0"
    schemas_dir = env["ENGAGEMENT_SCHEMAS_DIR"]
    assert schemas_dir.startswith("/app/")
    probe = ("import sys, time, orjson; from streams.config import SCHEMAS_DIR, Settings; "
             "from streams.core.contract import Decoder; print(SCHEMAS_DIR); "
             "print(type(Decoder(Settings()).decode(sys.stdin.buffer.read(), int(time.time() * 1000))).__name__)")
    event = orjson.dumps({"event_id": "e1", "type": "track", "event": "x", "user_id": "u1",
                          "timestamp": int(time.time() * 1000)})
    base = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    for extra in ({"ENGAGEMENT_SCHEMAS_DIR": str(app / schemas_dir.removeprefix("/app/"))}, {}):
        result = subprocess.run([sys.executable, "-c", probe], input=event, capture_output=True, cwd=app,
                                env={**base, **extra, "PYTHONPATH": str(app)})
        assert result.returncode == 0, result.stderr.decode()
        where, verdict = result.stdout.decode().split()
        assert Path(where).is_relative_to(app) and (Path(where) / EVENT_SCHEMA_FILE).is_file()
        assert verdict == "Event"


@pytest.mark.integration
def test_simulator_command_publishes_a_simulated_history(stack: dict[str, Any], make_settings: Any,
                                                          tmp_path: Path) -> None:
    """The compose simulator's shell command, run as the container would (``$$`` is compose's
    escape for ``$``), against the embedded broker: the events reach the events topic."""
    settings = make_settings(partitions=2)
    config = tmp_path / "settings.toml"
    config.write_text(settings_to_toml(settings))
    service = stack["simulator"]
    assert service["entrypoint"][:2] == ["/bin/sh", "-c"]
    script = service["command"][0].replace("$$", "$")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update({k: str(v) for k, v in service["environment"].items()},
               SIM_USERS="30", SIM_DAYS="2", ENGAGEMENT_CONFIG=str(config),
               ENGAGEMENT_BOOTSTRAP=settings.bootstrap,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    records = asyncio.run(read_json_or_raw(settings))
    valid = [doc for doc in records if isinstance(doc, dict) and "event_id" in doc]
    assert len(valid) > 30 * 2  # every user does something over two days
    newest = max(parse_time_ms(doc["timestamp"]) or 0 for doc in valid)
    assert time.time() * 1000 - 86_400_000 < newest <= time.time() * 1000  # the history ends now


async def read_json_or_raw(settings: Settings) -> list[Any]:
    """Every record on the events topic: decoded JSON, or the raw bytes of a malformed one."""
    found: list[Any] = []
    async for record in consume(settings, settings.events_topic, idle_timeout=3):
        try:
            found.append(orjson.loads(record.value))
        except orjson.JSONDecodeError:
            found.append(record.value)
    return found
