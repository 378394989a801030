"""The wheel and the two packages made with it: the container image and the zip.

`pip wheel --no-deps` makes the wheel, copied into examples/shop (the build context) as the
README says. No Docker engine runs here, so the Dockerfile is executed the way `docker build`
would, step by step, in a clean virtualenv standing in for the `python:3.13-slim` image: ENV and
WORKDIR apply, COPY copies from the build context, RUN runs, and CMD is the command
`holdfast emulate` starts. That virtualenv is also the packaging test: the wheel installs
cleanly and serves the example. The zip is built by the Makefile target `sam build` runs, and
served by unmodified awslambdaric, as the managed runtime does.

Cost, once per session: a wheel build (~10 s) and two installs of the shop's dependencies from
pip's cache (~15 s each on an idle machine).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from shop_support import HOSTS, ROOT, SHOP, ShopFunction, shop_env

DOCKERFILE = SHOP / "Dockerfile"


def dockerfile_steps(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    steps: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, arguments = (pending + line).partition(" ")
        steps.append((instruction.upper(), arguments.strip()))
        pending = ""
    return steps


def exec_form(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.startswith("[") else ["/bin/sh", "-c", arguments]


class Image:
    """The result of "building" the Dockerfile into a virtualenv + a task root directory."""

    def __init__(self, root: Path, venv: Path, env: dict[str, str], workdir: Path, cmd: list[str]):
        self.root, self.venv, self.env, self.workdir, self.cmd = root, venv, env, workdir, cmd


def build_context(tmp: Path, wheel: Path) -> Path:
    """examples/shop with holdfast's wheel in it: `python -m build --outdir examples/shop`."""
    context = tmp / "context"
    shutil.copytree(SHOP, context, ignore=shutil.ignore_patterns("__pycache__", "*.whl"))
    shutil.copy(wheel, context)
    return context


def build_image(tmp: Path, context: Path) -> Image:
    root, venv = tmp / "image", tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    env.update((key, value) for key, value in os.environ.items() if key.startswith("PIP_"))
    workdir, cmd = root, None
    steps = dockerfile_steps(DOCKERFILE)
    assert steps[0] == ("FROM", "python:3.13-slim")
    for instruction, arguments in steps[1:]:
        if instruction == "ENV":
            for assignment in shlex.split(arguments):
                name, _, value = assignment.partition("=")
                env[name] = value
        elif instruction == "WORKDIR":
            workdir = root / arguments.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            *sources, destination = shlex.split(arguments)
            target = (
                root / destination.lstrip("/")
                if destination.startswith("/")
                else workdir / destination
            )
            # As in Docker, a destination ending in "/" is a directory.
            (target if destination.endswith("/") else target.parent).mkdir(
                parents=True, exist_ok=True
            )
            for pattern in sources:
                matches = sorted(context.glob(pattern.rstrip("/")))
                assert matches, f"COPY {pattern}: nothing in the build context"
                for source in matches:
                    # As in Docker, a directory's contents are copied, not the directory.
                    copied = f"{source}/." if source.is_dir() else str(source)
                    subprocess.run(["cp", "-r", copied, str(target)], check=True)
        elif instruction == "RUN":
            # Absolute paths in the image are below `root` here.
            command = arguments.replace(" /tmp/", f" {root}/tmp/")
            subprocess.run(exec_form(command), cwd=workdir, env=env, check=True, timeout=600)
        elif instruction == "CMD":
            cmd = exec_form(arguments)
        else:
            raise AssertionError(f"the test does not know how to run {instruction}")
    assert cmd is not None, "the Dockerfile has no CMD"
    # Paths under / in the image live below `root` here.
    env["LAMBDA_TASK_ROOT"] = str(root / env["LAMBDA_TASK_ROOT"].lstrip("/"))
    return Image(root, venv, env, workdir, cmd)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # The README's command, from a folder with a `build/` in it (which shadowed `python -m
    # build` there): pip builds the wheel, no `build` package needed.
    (out / "build").mkdir()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
        cwd=out,
    )
    [built] = out.glob("holdfast-*.whl")
    return built


@pytest.fixture(scope="session")
def context(tmp_path_factory, wheel) -> Path:
    return build_context(tmp_path_factory.mktemp("context"), wheel)


@pytest.fixture(scope="session")
def image(tmp_path_factory, context) -> Image:
    return build_image(tmp_path_factory.mktemp("docker"), context)


def test_the_wheel_carries_the_package_its_license_and_extras(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
    tracked = subprocess.run(
        ["git", "ls-files", "src/holdfast"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    shipped = {name.removeprefix("src/") for name in tracked if "__pycache__" not in name}
    assert shipped <= names, f"not in the wheel: {sorted(shipped - names)}"
    assert not [name for name in names if name.startswith(("tests/", "examples/", "bench/"))]
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    text = metadata.decode()
    assert "License-Expression: Apache-2.0" in text
    assert {"Provides-Extra: aws", "Provides-Extra: wsgi"} <= set(text.splitlines())
    assert "holdfast = holdfast.cli:main" in entry_points.decode()


def test_the_clean_install_reports_its_version(image):
    from importlib.metadata import version

    answer = subprocess.run(
        [str(image.venv / "bin" / "holdfast"), "--version"],
        env=image.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (answer.returncode, answer.stdout.strip()) == (0, version("holdfast"))
    # Installed from the wheel, not linked to this checkout.
    located = subprocess.run(
        [str(image.venv / "bin" / "python"), "-c", "import holdfast; print(holdfast.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(image.venv) in located and str(ROOT / "src") not in located


def test_the_image_has_its_code_compiled(image):
    compiled = list((image.workdir / "shop" / "__pycache__").glob("app.*.pyc"))
    assert compiled, "RUN python -m compileall left no bytecode"


def test_the_image_cmd_serves_the_shop_under_the_emulator(image, tmp_path):
    # The container variant's settings, as template.yaml gives them (Packaging=image).
    env = shop_env(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}")
    env = {key: value for key, value in env.items() if key.startswith(("SHOP_", "PYTHON"))}
    env.update(image.env, HOLDFAST_INVOKE_MODE="response_stream")
    command = [str(image.venv / "bin" / image.cmd[0]), *image.cmd[1:]]
    function = ShopFunction(
        command,
        env,
        "--invoke-mode",
        "response_stream",
        holdfast=image.venv / "bin" / "holdfast",
        cwd=image.workdir,
    )
    try:
        assert function.request("GET", "/healthz").json() == {"status": "ok"}
        signup = function.request("POST", "/signup", {"email": "bo@example.com", "name": "Bo"})
        assert signup.status == 201
        assert "Post-Response Duration" in function.report(signup.headers["x-amzn-RequestId"])
        assert len(list((tmp_path / "outbox").iterdir())) == 1  # sent before the freeze
        events = function.request("GET", "/orders/o-1/events")
        assert events.headers.get("Transfer-Encoding") == "chunked"
        assert events.body.count(b"event: status") == 4
        assert (
            function.request("POST", "/checkout", {"order_id": "o", "amount_cents": 1}).status
            == 502
        )
    finally:
        function.close()


def test_the_zip_built_by_the_makefile_serves_the_shop_on_the_managed_runtime(context, tmp_path):
    artifacts = tmp_path / "artifacts"
    # What `sam build` runs for BuildMethod: makefile; PIP_PLATFORM= builds for this Python
    # instead of Lambda's python3.13 (the wheels must import here).
    subprocess.run(
        [
            "make",
            "-C",
            str(context),
            "build-ShopFunction",
            f"ARTIFACTS_DIR={artifacts}",
            "PIP_PLATFORM=",
            f"PYTHON={sys.executable}",
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    assert (artifacts / "shop" / "app.py").is_file()
    # The managed runtime puts the task root first on sys.path; boto3 and awslambdaric are the
    # runtime's own (here: this virtualenv's).
    env = shop_env(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}", PYTHONPATH=str(artifacts))
    located = subprocess.run(
        [
            sys.executable,
            "-c",
            "import holdfast, fastapi; print(holdfast.__file__, fastapi.__file__)",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(path.startswith(str(artifacts)) for path in located), located
    function = ShopFunction(HOSTS["awslambdaric"], env, cwd=artifacts)
    try:
        signup = function.request("POST", "/signup", {"email": "cy@example.com", "name": "Cy"})
        assert signup.status == 201
        assert "Post-Response Duration" in function.report(signup.headers["x-amzn-RequestId"])
        assert len(list((tmp_path / "outbox").iterdir())) == 1  # sent before the freeze
    finally:
        function.close()
