"""Policy checks on the image build, read from the Dockerfile (no Docker engine needed)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

import yaml

from .conftest import CHART_DIR, DOCKERFILE, REPO_ROOT, SERVICES

IGNORE_FILE = DOCKERFILE.with_name("Dockerfile.dockerignore")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    logical = re.sub(r"\\\n", " ", text)  # join continuation lines
    result = []
    for line in logical.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        result.append((keyword.upper(), " ".join(rest.split())))
    return result


def _stages() -> tuple[dict[str, str], list[Stage]]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, arg in _instructions():
        if keyword == "FROM":
            base, _, name = arg.partition(" AS ")
            stages.append(Stage(name=name.strip(), base=base.strip()))
        elif not stages and keyword == "ARG":
            key, _, default = arg.partition("=")
            global_args[key] = default
        elif stages:
            stages[-1].instructions.append((keyword, arg))
    return global_args, stages


GLOBAL_ARGS, STAGES = _stages()
FINAL = STAGES[-1]


def test_the_build_is_multi_stage_and_the_runtime_comes_from_the_pinned_python() -> None:
    assert len(STAGES) >= 3
    assert FINAL.base == "${PYTHON_IMAGE}"
    python_image = GLOBAL_ARGS["PYTHON_IMAGE"]
    # an exact patch release of 3.11 on a named Debian release, never a floating tag
    assert re.fullmatch(r"python:3\.11\.\d+-slim-(bookworm|trixie)(@sha256:[a-f0-9]{64})?", python_image)
    assert re.fullmatch(
        r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+(@sha256:[a-f0-9]{64})?", GLOBAL_ARGS["UV_IMAGE"]
    )
    assert "latest" not in " ".join(GLOBAL_ARGS.values())
    # the digest pin is documented next to the tag
    assert "@sha256:<digest>" in DOCKERFILE.read_text(encoding="utf-8")


def test_uv_installs_exactly_the_lock_file_without_dev_dependencies() -> None:
    runs = [run for stage in STAGES for run in stage.all("RUN") if "uv sync" in run]
    assert runs
    for run in runs:
        assert "--frozen" in run
        assert "--no-dev" in run
        assert '--package "${SERVICE}"' in run
    builder = next(s for s in STAGES if s.name == "builder")
    assert any("uv.lock" in copy for copy in builder.all("COPY"))


def test_the_runtime_stage_has_no_build_tools() -> None:
    runtime = " ".join(arg for _, arg in FINAL.instructions)
    for tool in ("build-essential", "gcc", "g++", "make ", "uv sync", "pip install", "/uv"):
        assert tool not in runtime, tool
    # only the finished /app (venv + sources) is taken from the builder
    copies = FINAL.all("COPY")
    assert copies == ["--from=builder /app /app"]
    assert "rm -rf /var/lib/apt/lists/*" in runtime


def test_the_runtime_runs_as_an_unprivileged_user() -> None:
    (user,) = FINAL.all("USER")
    uid = user.split(":")[0]
    assert uid.isdigit()
    assert int(uid) == 10001
    assert "useradd --system --uid 10001" in " ".join(FINAL.all("RUN"))
    # the chart's runAsUser matches the image's user
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    assert values["defaults"]["podSecurityContext"]["runAsUser"] == int(uid)


def test_no_healthcheck_kubernetes_probes_do_that() -> None:
    assert all(keyword != "HEALTHCHECK" for keyword, _ in _instructions())


def test_oci_labels() -> None:
    labels = " ".join(FINAL.all("LABEL"))
    for key in ("title", "description", "version", "revision", "created", "source", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    rules = [
        line.strip()
        for line in IGNORE_FILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "allow-list: everything is ignored unless named"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    assert allowed == {"pyproject.toml", "uv.lock", "libs", "services", "feature_repo"}
    for excluded in ("**/tests/", "**/.venv/", "feature_repo/data/", "**/__pycache__/"):
        assert excluded in rules


def _workspace_packages() -> dict[str, str]:
    """service directory -> uv package name"""
    result = {}
    for pyproject in sorted((REPO_ROOT / "services").glob("*/pyproject.toml")):
        result[pyproject.parent.name] = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"][
            "name"
        ]
    return result


def test_make_images_builds_the_five_services_the_chart_deploys() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^\.PHONY:.*\bimages\b", makefile, flags=re.MULTILINE)
    (pairs,) = re.findall(r"^IMAGES := (.+)$", makefile, flags=re.MULTILINE)
    images = dict(pair.split("=") for pair in pairs.split())
    assert images == _workspace_packages()
    assert "deploy/docker/Dockerfile" in makefile
    # the package is also the console script the chart runs, and the image name the chart pulls
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    for key, (name, _, cli) in SERVICES.items():
        assert images[name] == cli
        assert values[key]["image"]["repository"] == f"qianmian/{name}"
