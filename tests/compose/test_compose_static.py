"""docker/compose.yaml read, not run: real commands, defined variables, volumes, health, 127.0.0.1 only."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer

from sweeper.cli import app

DOCKER = Path(__file__).resolve().parents[2] / "docker"
SERVICES = {"postgres", "ray-head", "ray-worker", "ray-worker-gpu", "sweeper", "dashboard"}
#: What the images install under these names (the Dockerfiles' COPY lines are checked below).
ENTRYPOINT_SCRIPTS = {"sweeper-entrypoint": DOCKER / "sweeper-entrypoint.sh"}


def _parse(group: click.Group, prog: str, args: list[str]) -> None:
    """Parses ``args`` (a subcommand and its arguments) as ``group`` would: click raises on anything unknown."""
    if args in (["--help"], []):
        return
    ctx = group.make_context(prog, [], resilient_parsing=True)
    command = group.get_command(ctx, args[0])
    assert command is not None, f"{prog}: no command {args[0]!r}"
    command.make_context(args[0], list(args[1:]), parent=ctx, resilient_parsing=False)


def sweeper_args(args: list[str]) -> None:
    _parse(typer.main.get_command(app), "sweeper", args)


def ray_args(args: list[str]) -> None:
    from ray.scripts.scripts import cli

    _parse(cli, "ray", args)


def optuna_dashboard_args(args: list[str]) -> None:
    usage = subprocess.run(
        [str(Path(sys.executable).parent / "optuna-dashboard"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for arg in args:
        if arg.startswith("--"):
            assert f"{arg.split('=')[0]} " in usage or f"{arg.split('=')[0]}\n" in usage, (
                f"optuna-dashboard has no option {arg}"
            )
    positional = [a for a in args if not a.startswith("-")]
    assert len(positional) == 1 and positional[0].startswith("postgresql+psycopg://"), positional


def _argv(service: dict) -> list[str]:
    entrypoint = service.get("entrypoint") or []
    command = service.get("command") or []
    entrypoint = shlex.split(entrypoint) if isinstance(entrypoint, str) else entrypoint
    command = shlex.split(command) if isinstance(command, str) else command
    return [*entrypoint, *command]


def _check_argv(argv: list[str]) -> None:
    program, args = argv[0], argv[1:]
    if program in ("sweeper", "sweeper-entrypoint"):  # the entrypoint hands its arguments to sweeper
        sweeper_args(args)
    elif program == "ray":
        ray_args(args)
    elif program == "optuna-dashboard":
        optuna_dashboard_args(args)
    else:
        raise AssertionError(f"unexpected program {program!r} in {argv}")


@pytest.fixture(scope="module")
def services(compose, env_example, syntax) -> dict:
    return syntax.interpolate(compose["services"], env_example)


def test_the_stack_has_every_service(compose):
    assert set(compose["services"]) == SERVICES


def test_every_service_command_is_a_real_cli_command(services):
    for name, service in services.items():
        if name == "postgres":
            continue  # the postgres image's own server
        _check_argv(_argv(service))
        health = (service.get("healthcheck") or {}).get("test")
        if health:
            assert health[0] in ("CMD", "CMD-SHELL"), name
            _check_argv(health[1:] if health[0] == "CMD" else shlex.split(health[1]))


def test_every_command_of_the_readme_is_a_real_cli_command_on_a_real_service(compose):
    readme = (DOCKER.parent / "docs" / "cluster.md").read_text()  # its "Run on a cluster" section
    commands = re.findall(r"docker compose -f docker/compose\.yaml run --rm sweeper (.+)", readme)
    assert len(commands) >= 5 and any(c.startswith("run ") and "--executor ray" in c for c in commands)
    for command in commands:
        sweeper_args(shlex.split(command))
    profiles = {p for service in compose["services"].values() for p in service.get("profiles", [])}
    for line in re.findall(r"docker compose -f docker/compose\.yaml (.+)", readme):
        assert set(re.findall(r"--scale ([\w-]+)=", line)) <= SERVICES, line
        assert set(re.findall(r"--profile ([\w-]+)", line)) <= profiles, line


def test_every_variable_read_is_defined_in_env_example_and_every_one_there_is_read(compose_text, env_example, syntax):
    used = syntax.variables(compose_text)
    required = syntax.required_variables(compose_text)
    assert required <= set(env_example), f"not in .env.example: {sorted(required - set(env_example))}"
    assert set(env_example) <= used, f"in .env.example but never read: {sorted(set(env_example) - used)}"
    assert {"POSTGRES_PASSWORD", "RAY_AUTH_TOKEN"} <= required  # secrets have no default


def test_nothing_publishes_a_port_beyond_127_0_0_1(services):
    published = 0
    for name, service in services.items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port} listens beyond 127.0.0.1"
            published += 1
        assert service.get("network_mode") != "host", name
    assert published == 3  # postgres, Ray's dashboard, optuna-dashboard


def test_postgres_keeps_its_data_in_a_named_volume_and_reports_health(compose, services):
    postgres = services["postgres"]
    volume = next(v.split(":")[0] for v in postgres["volumes"] if v.endswith(":/var/lib/postgresql/data"))
    assert volume in compose["volumes"]
    health = postgres["healthcheck"]["test"]
    assert "pg_isready" in " ".join(health)
    for waits in ("sweeper", "dashboard"):
        assert services[waits]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for waits in ("ray-worker", "ray-worker-gpu", "sweeper"):
        assert services[waits]["depends_on"]["ray-head"]["condition"] == "service_healthy"
    assert services["ray-head"]["healthcheck"]["test"]


def test_the_sweeper_url_names_the_postgres_service_user_database_and_password(services, env_example):
    env = services["postgres"]["environment"]
    url = services["sweeper"]["environment"]["SWEEPER_DB"]
    assert url == (
        f"postgresql+psycopg://{env['POSTGRES_USER']}:{env_example['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{env['POSTGRES_DB']}"
    )
    assert url in services["dashboard"]["command"]
    assert services["sweeper"]["environment"]["RAY_ADDRESS"] == "ray-head:6379"


def test_every_ray_process_shares_the_token_and_the_search_spaces_are_mounted(services):
    for name in ("ray-head", "ray-worker", "ray-worker-gpu", "sweeper"):
        env = services[name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN"], name
    sweeper = services["sweeper"]
    assert "../search_spaces:/work/search_spaces:ro" in sweeper["volumes"] and sweeper["working_dir"] == "/work"
    assert sweeper["profiles"] == ["cli"]


def test_the_gpu_worker_reserves_nvidia_gpus_under_the_gpu_profile(services):
    gpu = services["ray-worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.cuda"


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cuda"])
def test_the_images_install_the_package_its_extras_and_the_entrypoint(dockerfile):
    text = (DOCKER / dockerfile).read_text()
    assert "build-essential" in text  # the C kernels are compiled in the image, and can be again
    # ... from the installed package, for both CPU variants, into a cache the image keeps.
    assert re.search(r"ENV SWEEPER_CACHE=/\S+\nRUN cd / && python -m sweeper._native all\n", text)
    assert re.search(r'pip install "?\.\[ray,dashboard\]"?', text)
    assert "torch==2.13.0" in text
    for name, script in ENTRYPOINT_SCRIPTS.items():
        assert f"COPY docker/{script.name} /usr/local/bin/{name}" in text
        assert script.stat().st_mode & 0o111, f"{script} is not executable"
    assert (
        re.search(r"RAY_VERSION=(\S+)", text)[1]
        == re.search(r"RAY_VERSION=(\S+)", (DOCKER / "Dockerfile").read_text())[1]
    )  # one Ray version on every node
    ignore = (DOCKER / f"{dockerfile}.dockerignore").read_text()
    for needed in ("pyproject.toml", "README.md", "sweeper/", "search_spaces/", f"docker/{script.name}"):
        assert f"!{needed}" in ignore


def test_the_cpu_image_uses_cpu_torch_on_python_3_11_slim():
    text = (DOCKER / "Dockerfile").read_text()
    assert "python:3.11-slim" in text
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in text


def test_the_entrypoint_script_is_valid_sh():
    for script in ENTRYPOINT_SCRIPTS.values():
        subprocess.run(["sh", "-n", str(script)], check=True)
