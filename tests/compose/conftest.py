"""docker/compose.yaml as data: its services, with ``${VAR}`` filled in the way docker compose does it."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, and $$ for a literal $.
_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


def variables(text: str) -> set[str]:
    """The variables a piece of the compose file reads."""
    return {m["name"] for m in _VARIABLE.finditer(text) if m["name"]}


def required_variables(text: str) -> set[str]:
    """The variables read without a default (compose leaves them empty, or refuses with ``?``)."""
    return {m["name"] for m in _VARIABLE.finditer(text) if m["name"] and m["op"] not in (":-", "-")}


def interpolate(value, env: dict[str, str]):
    """``value`` (a string, list or mapping from the compose file) with every ``${VAR}`` filled from ``env``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def fill(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m["name"], m["op"], m["arg"]
        given = env.get(name)
        if op in (":-", ":?") and not given or op in ("-", "?") and given is None:
            if op.endswith("?"):
                raise KeyError(f"${{{name}}}: {arg or 'required'}")
            return arg
        return given or ""

    return _VARIABLE.sub(fill, value)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose .env file (comments and blank lines skipped)."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip().strip("'\"")
    return env


def service_environment(service: dict) -> dict[str, str]:
    """A service's ``environment:`` as a mapping (compose allows a list of KEY=VALUE too)."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    return {k: "" if v is None else str(v) for k, v in environment.items()}


@pytest.fixture(scope="session")
def syntax() -> SimpleNamespace:
    """The helpers above, for test modules (which cannot import a conftest)."""
    return SimpleNamespace(
        interpolate=interpolate,
        variables=variables,
        required_variables=required_variables,
        service_environment=service_environment,
    )


@pytest.fixture(scope="session")
def compose_text() -> str:
    return (DOCKER / "compose.yaml").read_text()


@pytest.fixture(scope="session")
def compose(compose_text) -> dict:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="session")
def env_example() -> dict[str, str]:
    return read_env_file(DOCKER / ".env.example")
