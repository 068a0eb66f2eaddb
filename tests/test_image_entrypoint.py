"""The image's entrypoint, run the way a container runs it, without a container engine.

The command is read from the Dockerfile (ENTRYPOINT and CMD, exec form), with the installed
``observer`` console script of this environment standing in for the image's
``/opt/venv/bin/observer``. The environment is a container's: the Dockerfile's ENV over Docker's
default PATH, HOME as the image's user has it, plus the settings each platform example passes
(Kubernetes' mounted secret files, Cloud Run's, ECS's and Container Apps' environment
variables), with a real redis-server on loopback standing in for the state store each example
names in STATE_URL (its Valkey, Memorystore, ElastiCache, Azure Cache for Redis). When the tests
run as root the command runs as the Dockerfile's numeric USER, and, where the kernel lets us, as
PID 1 of its own PID namespace, which is how SIGTERM reaches it in a container. Its working
directory and HOME are not writable, and afterwards no file of that user may exist anywhere it
could have written: the service writes nothing.

Two differences from a real container: HOST is 127.0.0.1 instead of the image's 0.0.0.0 (servers
here bind to loopback only) and PORT is a free port instead of 8080.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests import dockerfile
from tests.processes import free_port, wait_until_ready
from tests.signing import sign

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PING = ROOT / "tests" / "fixtures" / "github" / "ping.json"
SECRET = "entrypoint-smoke-secret"

IMAGE_VENV_BIN = "/opt/venv/bin"
LOCAL_VENV_BIN = Path(sys.executable).parent
# What Docker sets when the image's ENV does not override it.
DOCKER_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Directories any user may write to: where a stray file of the service would land.
SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")

STAGE = dockerfile.stages()[-1]
UID, GID = dockerfile.user(STAGE)


def image_command() -> list[str]:
    """ENTRYPOINT + CMD of the runtime stage, with the local console script for the image's."""
    entrypoint = STAGE.last("ENTRYPOINT")
    assert entrypoint is not None, "the runtime stage has no ENTRYPOINT"
    command = dockerfile.exec_form(entrypoint.arguments)
    cmd = STAGE.last("CMD")
    if cmd is not None:
        command += dockerfile.exec_form(cmd.arguments)
    return [local_path(command[0]), *command[1:]]


def local_path(program: str) -> str:
    if not program.startswith(IMAGE_VENV_BIN + "/"):
        return program
    local = LOCAL_VENV_BIN / Path(program).name
    if not local.exists():
        pytest.skip(f"{local.name} is not installed here: run `pip install -e .` first")
    return str(local)


def image_home() -> str:
    """HOME of the image's user: the --home-dir the Dockerfile gives it, else /."""
    for item in STAGE.all("RUN"):
        words = item.arguments.split()
        if "--home-dir" in words:
            return words[words.index("--home-dir") + 1]
    return "/"


def base_environment() -> dict[str, str]:
    env = dockerfile.environment(STAGE, {"PATH": DOCKER_DEFAULT_PATH})
    env["PATH"] = env["PATH"].replace(IMAGE_VENV_BIN, str(LOCAL_VENV_BIN))
    env["HOME"] = image_home()
    return env


# --- the settings each example passes -------------------------------------------------------


def kubernetes_settings(secret_dir: Path, values: dict[str, str]) -> dict[str, str]:
    """The Deployment's env, its secret volume emulated by files in ``secret_dir``."""
    deployment = yaml.safe_load((EXAMPLES / "k8s" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    # Mount path -> file mode, as the Secret volume gives it (group: the pod's fsGroup).
    secret_mounts = {
        mounts[volume["name"]]: volume["secret"].get("defaultMode", 0o644)
        for volume in pod["volumes"]
        if "secret" in volume
    }
    settings: dict[str, str] = {}
    for variable in container["env"]:
        value = variable["value"]
        for mount_path, mode in secret_mounts.items():
            if value.startswith(mount_path + "/"):
                path = secret_dir / value[len(mount_path) + 1 :]
                path.write_text(values.get(path.name, ""))
                if os.geteuid() == 0:
                    os.chown(path, 0, pod["securityContext"]["fsGroup"])
                path.chmod(mode)
                value = str(path)
        settings[variable["name"]] = value
    return settings


def kubernetes(secret_dir: Path) -> dict[str, str]:
    return kubernetes_settings(secret_dir, {"webhook-secret": SECRET + "\n"})


def cloudrun(_: Path) -> dict[str, str]:
    service = yaml.safe_load((EXAMPLES / "cloudrun" / "service.yaml").read_text())
    container = next(
        item for item in service["spec"]["template"]["spec"]["containers"] if item.get("ports")
    )
    return env_list(container["env"], "valueFrom")


def ecs(_: Path) -> dict[str, str]:
    task = json.loads((EXAMPLES / "ecs" / "taskdef.json").read_text())
    container = next(item for item in task["containerDefinitions"] if item["essential"])
    settings = {item["name"]: item["value"] for item in container.get("environment", [])}
    for item in container.get("secrets", []):
        settings[item["name"]] = secret_value(item["name"])
    return settings


def azure(_: Path) -> dict[str, str]:
    app = yaml.safe_load((EXAMPLES / "azure" / "containerapp.yaml").read_text())
    container = app["properties"]["template"]["containers"][0]
    return env_list(container["env"], "secretRef")


def env_list(variables: list[dict[str, Any]], secret_key: str) -> dict[str, str]:
    settings = {}
    for variable in variables:
        if secret_key in variable:
            settings[variable["name"]] = secret_value(variable["name"])
        else:
            settings[variable["name"]] = variable["value"]
    return settings


def secret_value(name: str) -> str:
    """The webhook secret is real; other secrets stay empty, so nothing calls out.

    STATE_URL stays empty too: ``with_local_store`` points it at the stand-in store."""
    return SECRET if name == "WEBHOOK_SECRET" else ""


def with_local_store(settings: dict[str, str], port: int) -> dict[str, str]:
    """The example's STATE_URL (a value or a secret) aimed at the redis-server on ``port``.

    The scheme becomes plain redis (the stand-in has no TLS) and the database is kept."""
    url = settings.get("STATE_URL")
    if url is None:
        return settings
    database = urlsplit(url).path or "/0"
    return {**settings, "STATE_URL": f"redis://127.0.0.1:{port}{database}"}


PLATFORMS = {"kubernetes": kubernetes, "cloudrun": cloudrun, "ecs": ecs, "azure": azure}


# --- running it as the image's user -------------------------------------------------------


def probe(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass(frozen=True)
class Launcher:
    namespace: tuple[str, ...]
    drop: tuple[str, ...]
    note: str

    @property
    def prefix(self) -> tuple[str, ...]:
        return (*self.namespace, *self.drop)

    @property
    def pid_namespace(self) -> bool:
        return bool(self.namespace)

    @property
    def as_image_user(self) -> bool:
        return bool(self.drop)


@functools.cache
def launcher() -> Launcher:
    """How to start the entrypoint: as the image's user, as PID 1, when this machine allows."""
    if os.geteuid() != 0:
        return Launcher((), (), "tests do not run as root: the current user runs it")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to run the entrypoint as the image's user")
    drop = (setpriv, f"--reuid={UID}", f"--regid={GID}", "--clear-groups")
    # The interpreter must be readable by that user. Some machines install Python under
    # /root (mode 700); then the process keeps CAP_DAC_READ_SEARCH, which lets it read and
    # list, never write, so the checks below on writes still hold.
    check = (
        "import json, sys; "
        f"assert sys.base_prefix == {sys.base_prefix!r}, sys.base_prefix; "
        "assert json.__file__.startswith(sys.base_prefix), json.__file__"
    )
    python = str(LOCAL_VENV_BIN / "python")
    note = "runs as the image's user"
    if not probe([*drop, python, "-c", check]):
        drop = (
            *drop,
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
        )
        note = (
            "runs as the image's user with CAP_DAC_READ_SEARCH only, because the Python "
            "installation is not readable by that user here"
        )
        if not probe([*drop, python, "-c", check]):
            pytest.skip(
                f"the Python at {python} is not usable by uid {UID} on this machine; "
                "make the installation world-readable to run this test"
            )
    unshare = shutil.which("unshare")
    namespace: tuple[str, ...] = ()
    if unshare and probe([unshare, "--pid", "--fork", "--kill-child", "true"]):
        namespace = (unshare, "--pid", "--fork", "--kill-child")
    return Launcher(namespace, drop, note)


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    pid: int
    port: int
    stdout: Path
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


def service_pid(process: subprocess.Popen[bytes], pid_namespace: bool) -> int:
    """The service's own pid: unshare's child when it runs in its own PID namespace."""
    if not pid_namespace:
        return process.pid
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                # pid (comm) state ppid ...: comm may hold spaces, so split after it.
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == process.pid:
                    return int(stat.parent.name)
        time.sleep(0.02)
    raise RuntimeError("unshare started no child")


@contextlib.contextmanager
def run_entrypoint(
    how: Launcher, env: dict[str, str], logs: Path, *, ready: bool = True
) -> Iterator[Running]:
    port = free_port()
    full_env = {**env, "HOST": "127.0.0.1", "PORT": str(port)}
    stdout, stderr = logs / "stdout.log", logs / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [*how.prefix, *image_command()],
            env=full_env,
            cwd="/",
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    running = Running(process, process.pid, port, stdout, stderr)
    try:
        if ready:
            running.pid = service_pid(process, how.pid_namespace)
            try:
                wait_until_ready(f"{running.url}/healthz", process)
            except RuntimeError as error:
                raise AssertionError(f"{error}\n{running.logs()}") from None
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def files_of(uid: int) -> set[str]:
    """Every file or directory owned by ``uid`` in the places anyone may write to."""
    found: set[str] = set()
    for top in SHARED_WRITABLE:
        for directory, subdirectories, files in os.walk(top, onerror=lambda _: None):
            for name in subdirectories + files:
                path = os.path.join(directory, name)
                with contextlib.suppress(OSError):
                    if os.lstat(path).st_uid == uid:
                        found.add(path)
    return found


def signed_ping(url: str, secret: str) -> httpx.Response:
    body = PING.read_bytes()
    return httpx.post(
        f"{url}/webhook",
        content=body,
        headers={
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(secret, body),
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/smoke",
        },
        timeout=5,
    )


def redis_answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")
    return False


@pytest.fixture
def state_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server on a free loopback port, keeping nothing on disk: the examples' store."""
    server = shutil.which("redis-server") or shutil.which("valkey-server")
    if server is None:
        message = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}, and CI must run these tests")
        pytest.skip(message)
    port = free_port()
    directory = tmp_path_factory.mktemp("state-store")
    process = subprocess.Popen(
        [
            *(server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory)),
            *("--save", "", "--appendonly", "no", "--protected-mode", "no"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not redis_answers(port):
            assert process.poll() is None, f"{server} exited with {process.returncode}"
            assert time.monotonic() < deadline, f"{server} did not answer on port {port}"
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the image's user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="observer-entrypoint-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- the tests ------------------------------------------------------------------------------


def test_dockerfile_runtime_stage_runs_the_service_as_an_unprivileged_user() -> None:
    assert UID != 0 and GID != 0
    assert image_command()[0].endswith("/observer")
    assert base_environment()["PATH"].startswith(str(LOCAL_VENV_BIN) + ":")


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_entrypoint_serves_signed_deliveries_and_stops_on_sigterm(
    platform: str, tmp_path: Path, shared_dir: Path, state_store: int
) -> None:
    how = launcher()
    secret_dir = shared_dir / "secrets"
    secret_dir.mkdir(mode=0o755)
    private_tmp = shared_dir / "tmp"
    private_tmp.mkdir()
    private_tmp.chmod(0o1777)
    settings = with_local_store(PLATFORMS[platform](secret_dir), state_store)
    assert "STATE_URL" in settings, "every example shares its state"
    env = {**base_environment(), **settings, "TMPDIR": str(private_tmp)}
    shutdown_timeout = float(env.get("SHUTDOWN_TIMEOUT", "10"))
    before = files_of(UID) if how.as_image_user else set()

    with run_entrypoint(how, env, tmp_path) as running:
        status = Path(f"/proc/{running.pid}/status").read_text()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        if how.as_image_user:
            assert uid_line.split()[1:] == [str(UID)] * 4, how.note
        if how.pid_namespace:
            nspid = next(line for line in status.splitlines() if line.startswith("NSpid:"))
            assert nspid.split()[-1] == "1", "the entrypoint is not PID 1 of its namespace"

        assert httpx.get(f"{running.url}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{running.url}/readyz", timeout=5).status_code == 200

        answer = signed_ping(running.url, SECRET)
        assert answer.status_code == 200, answer.text
        assert "pong" in answer.text
        # The secret the platform passes is the one in force.
        assert signed_ping(running.url, SECRET + "-wrong").status_code == 401

        metrics = httpx.get(f"{running.url}/metrics", timeout=5).text
        assert "observer_webhook_deliveries_total" in metrics

        # The image's HEALTHCHECK and the ECS health check pass, run the same way.
        _, healthcheck = dockerfile.healthcheck(STAGE)
        task = json.loads((EXAMPLES / "ecs" / "taskdef.json").read_text())
        ecs_check = task["containerDefinitions"][0]["healthCheck"]["command"]
        assert ecs_check[0] == "CMD"
        for command in (healthcheck, ecs_check[1:]):
            result = subprocess.run(
                [*how.drop, local_path(command[0]), *command[1:]],
                env={**env, "PORT": str(running.port)},
                cwd="/",
                capture_output=True,
                timeout=15,
            )
            assert result.returncode == 0, result.stderr.decode()

        os.kill(running.pid, signal.SIGTERM)
        # A bound on a hung stop, not a figure: the test asserts how it ends, not how fast.
        returncode = running.process.wait(timeout=shutdown_timeout + 60)

    assert returncode == 0, running.logs()
    lines = [line for line in running.stdout.read_text().splitlines() if line.strip()]
    assert lines, "no logs on stdout"
    for line in lines:
        assert isinstance(json.loads(line), dict), line
    assert list(private_tmp.iterdir()) == []
    if how.as_image_user:
        assert files_of(UID) - before == set(), "the service wrote files"


def test_entrypoint_with_the_secret_template_refuses_to_start(
    tmp_path: Path, shared_dir: Path
) -> None:
    """The Kubernetes Secret template holds no secret: a pod given it as is does not start."""
    how = launcher()
    secret_dir = shared_dir / "secrets"
    secret_dir.mkdir(mode=0o755)
    template = yaml.safe_load((EXAMPLES / "k8s" / "secret.yaml").read_text())
    settings = kubernetes_settings(secret_dir, template["stringData"])
    env = {**base_environment(), **settings}
    with run_entrypoint(how, env, tmp_path, ready=False) as running:
        returncode = running.process.wait(timeout=20)
    assert returncode != 0
    error = running.stderr.read_text()
    assert "WEBHOOK_SECRET" in error
    assert len(error.strip().splitlines()) == 1, error
