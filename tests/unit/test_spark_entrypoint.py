"""components/spark-entrypoint.sh, the entrypoint of the FreightML image's containers in a
Spark on Kubernetes application (a Spark Operator SparkApplication), run for real here.

- driver: the script is started with the arguments Spark's Kubernetes backend gives a driver
  pod (driver --properties-file F --class C RESOURCE ARGS) and runs a PySpark job through
  spark-submit in client mode, with SPARK_HOME found from the python on PATH (here as the
  executor test's driver; tests/integration/test_spark_application.py runs FreightML's
  feature build through it).
- executor: the script starts the executor JVM from the environment Spark sets on executor
  pods; it registers with a live driver and runs that driver's tasks (see the test's own
  docstring for how the driver is made to have no other executor).
- the exact command lines (option order, class path, optional arguments) are checked with
  SPARK_ENTRYPOINT_DRY_RUN=1, which prints the command instead of running it.
- any other command passes through unchanged.

The JVM tests need Java 17 (JAVA_HOME or java on PATH) and the pyspark extra; without them
they fail, they do not skip."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "components" / "spark-entrypoint.sh"
VENV_BIN = Path(sys.executable).parent
EXECUTOR_MAIN = "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend"
PYTHON_RUNNER = "org.apache.spark.deploy.PythonRunner"


def _spark_home() -> Path:
    spec = importlib.util.find_spec("pyspark")
    assert spec is not None and spec.origin, "pyspark is not installed (uv sync --extra spark)"
    return Path(spec.origin).parent


def _require_java() -> None:
    java_home = os.environ.get("JAVA_HOME")
    found = (Path(java_home) / "bin" / "java").is_file() if java_home else shutil.which("java")
    assert found, "the Spark entrypoint tests need Java 17: set JAVA_HOME or put java on PATH"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any Spark setting, the venv first on PATH (so that
    `python` can import pyspark) and the scratch directory inside tmp_path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPARK_", "PYSPARK_")) and k != "TMPDIR"
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    env["TMPDIR"] = str(scratch)
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60):
    return subprocess.run(
        [str(SCRIPT), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _printed_command(stdout: str) -> list[str]:
    """A dry run's command, one argument per line, without tini in front when it is installed."""
    words = stdout.splitlines()
    if words and Path(words[0]).name == "tini":
        assert words[1:3] == ["-s", "--"], words[:3]
        words = words[3:]
    return words


def _fake_java_home(tmp_path: Path) -> Path:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text("#!/bin/sh\nexit 0\n")
    java.chmod(0o755)
    return home


def _tree_state(root: Path) -> dict[str, int]:
    """Every file under root with its modification time, so a new or changed file shows.
    Bytecode caches are left out: other tests' imports of pyspark may write them at the same
    time (the image's venv is compiled at build time and the script keeps Python from writing
    bytecode)."""
    state = {}
    for here, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in [*dirs, *files]:
            path = Path(here) / name
            state[str(path.relative_to(root))] = 0 if name in dirs else path.lstat().st_mtime_ns
    return state


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ---- driver ---------------------------------------------------------------------------

EXECUTOR_DRIVER_JOB = """\
import json, os, sys
from pyspark.sql import SparkSession

out = sys.argv[1]
spark = SparkSession.builder.getOrCreate()
sc = spark.sparkContext
with open(out + ".tmp", "w") as f:
    json.dump({"app_id": sc.applicationId, "port": sc.getConf().get("spark.driver.port")}, f)
os.replace(out + ".tmp", out + ".ready")
# waits until an executor registers: this driver has none of its own
rows = (
    sc.parallelize(range(100), 4)
    .map(lambda x: (os.environ.get("SPARK_EXECUTOR_POD_NAME"), os.environ.get("TMPDIR"), x))
    .collect()
)
with open(out, "w") as f:
    json.dump(
        {
            "pods": sorted({pod or "" for pod, _, _ in rows}),
            "tmpdirs": sorted({tmp or "" for _, tmp, _ in rows}),
            "sum": sum(x for _, _, x in rows),
        },
        f,
    )
spark.stop()
"""


@pytest.mark.integration
@pytest.mark.slow
def test_executor_mode_registers_with_a_live_driver_and_runs_its_tasks(tmp_path: Path) -> None:
    """An end-to-end executor: the driver (itself started through the script) runs with
    spark.master local-cluster[0,1,1024], Spark's in-process standalone cluster with zero
    workers, so its CoarseGrainedScheduler endpoint is up but no executor of its own ever
    starts. The executor the script launches from the pod environment (SPARK_DRIVER_URL,
    SPARK_EXECUTOR_ID, SPARK_JAVA_OPT_0, ...) registers with it, every task runs there (its
    Python workers see SPARK_EXECUTOR_POD_NAME), and it exits 0 when the driver stops it."""
    _require_java()
    job = tmp_path / "job.py"
    job.write_text(EXECUTOR_DRIVER_JOB)
    props = tmp_path / "spark.properties"
    props.write_text(
        "spark.master local-cluster[0,1,1024]\nspark.app.name entrypoint-executor\n"
        "spark.ui.enabled false\nspark.driver.host 127.0.0.1\n"
    )
    result = tmp_path / "result.json"
    ready = tmp_path / "result.json.ready"
    spark_home = _spark_home()
    before = _tree_state(spark_home)
    driver_out, driver_err = tmp_path / "driver.out", tmp_path / "driver.err"
    env = _env(tmp_path, SPARK_DRIVER_BIND_ADDRESS="127.0.0.1")
    with driver_out.open("w") as out, driver_err.open("w") as err:
        driver = subprocess.Popen(
            [str(SCRIPT), "driver", "--properties-file", str(props), "--class", PYTHON_RUNNER,
             f"local://{job}", str(result)],
            env=env, cwd=tmp_path, stdout=out, stderr=err, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():
            assert driver.poll() is None, f"the driver exited early:\n{_tail(driver_err)}"
            assert time.monotonic() < deadline, f"the driver never started:\n{_tail(driver_err)}"
            time.sleep(0.2)
        driver_info = json.loads(ready.read_text())

        executor_env = _env(
            tmp_path,
            SPARK_DRIVER_URL=f"spark://CoarseGrainedScheduler@127.0.0.1:{driver_info['port']}",
            SPARK_EXECUTOR_ID="7",
            SPARK_EXECUTOR_CORES="1",
            SPARK_EXECUTOR_MEMORY="512m",
            SPARK_APPLICATION_ID=driver_info["app_id"],
            SPARK_EXECUTOR_POD_IP="127.0.0.1",
            SPARK_EXECUTOR_POD_NAME="entrypoint-test-exec-7",
            SPARK_RESOURCE_PROFILE_ID="0",
            SPARK_JAVA_OPT_0="-XX:+PrintCommandLineFlags",
        )
        executor = _run(["executor"], executor_env, tmp_path, timeout=180)
        assert executor.returncode == 0, executor.stderr[-4000:]
        assert driver.wait(timeout=120) == 0, _tail(driver_err)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()

    got = json.loads(result.read_text())
    assert got == {
        "pods": ["entrypoint-test-exec-7"],
        "tmpdirs": [str(tmp_path / "tmp")],
        "sum": 4950,
    }
    # the JVM got SPARK_JAVA_OPT_0 and a 512 MiB heap from SPARK_EXECUTOR_MEMORY
    assert "-XX:+PrintCommandLineFlags" in executor.stdout
    assert "-XX:MaxHeapSize=536870912" in executor.stdout
    assert "-XX:InitialHeapSize=536870912" in executor.stdout
    assert "Successfully registered with driver" in executor.stderr
    assert "Driver commanded a shutdown" in executor.stderr
    assert "with ID 7" in driver_err.read_text()
    assert _tree_state(spark_home) == before, "driver or executor wrote into SPARK_HOME"


def test_executor_command_line_follows_the_pod_environment(tmp_path: Path) -> None:
    """Dry run: java options in the order of their numbers (one argument each, spaces kept),
    the heap from SPARK_EXECUTOR_MEMORY, the conf dir first on the class path, then
    SPARK_CLASSPATH, the jars and the working directory, and the backend's arguments."""
    spark_home = _spark_home()
    java_home = _fake_java_home(tmp_path)
    env = _env(
        tmp_path,
        SPARK_ENTRYPOINT_DRY_RUN="1",
        SPARK_HOME=str(spark_home),
        JAVA_HOME=str(java_home),
        SPARK_CONF_DIR="/opt/spark/conf",
        SPARK_CLASSPATH="/extra/lib.jar",
        SPARK_DRIVER_URL="spark://CoarseGrainedScheduler@10.0.0.1:7078",
        SPARK_EXECUTOR_ID="3",
        SPARK_EXECUTOR_CORES="2",
        SPARK_EXECUTOR_MEMORY="1024m",
        SPARK_APPLICATION_ID="spark-0123",
        SPARK_EXECUTOR_POD_IP="10.0.0.9",
        SPARK_EXECUTOR_POD_NAME="job-exec-3",
        SPARK_RESOURCE_PROFILE_ID="1",
        SPARK_JAVA_OPT_10="-Dten=a b",
        SPARK_JAVA_OPT_2="-Dtwo",
        SPARK_JAVA_OPT_0="-Dzero",
    )
    proc = _run(["executor"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    classpath = f"/opt/spark/conf:/extra/lib.jar:{spark_home}/jars/*:{tmp_path}"
    assert _printed_command(proc.stdout) == [
        str(java_home / "bin" / "java"),
        f"-Djava.io.tmpdir={tmp_path / 'tmp'}",
        "-Dzero", "-Dtwo", "-Dten=a b",
        "-Xms1024m", "-Xmx1024m",
        "-cp", classpath,
        EXECUTOR_MAIN,
        "--driver-url", "spark://CoarseGrainedScheduler@10.0.0.1:7078",
        "--executor-id", "3",
        "--cores", "2",
        "--app-id", "spark-0123",
        "--resourceProfileId", "1",
        "--hostname", "10.0.0.9",
        "--podName", "job-exec-3",
    ]  # fmt: skip


def test_executor_without_pod_address_or_id_leaves_them_to_spark(tmp_path: Path) -> None:
    """No pod IP or name: no --hostname/--podName (the backend uses the host name); no id:
    EXECID, which makes the backend ask the driver for one; no conf dir on the class path."""
    spark_home = _spark_home()
    env = _env(
        tmp_path,
        SPARK_ENTRYPOINT_DRY_RUN="1",
        SPARK_HOME=str(spark_home),
        JAVA_HOME=str(_fake_java_home(tmp_path)),
        SPARK_DRIVER_URL="spark://CoarseGrainedScheduler@driver-svc:7078",
        SPARK_EXECUTOR_CORES="1",
        SPARK_EXECUTOR_MEMORY="2g",
        SPARK_APPLICATION_ID="spark-0123",
    )
    command = _printed_command(_run(["executor"], env, tmp_path).stdout)
    assert "--hostname" not in command and "--podName" not in command
    assert command[command.index("--executor-id") + 1] == "EXECID"
    assert command[command.index("--resourceProfileId") + 1] == "0"
    assert command[command.index("-cp") + 1] == f"{spark_home}/jars/*:{tmp_path}"


@pytest.mark.parametrize(
    "missing",
    ["SPARK_DRIVER_URL", "SPARK_EXECUTOR_CORES", "SPARK_EXECUTOR_MEMORY", "SPARK_APPLICATION_ID"],
)
def test_executor_without_a_required_setting_fails_naming_it(tmp_path: Path, missing: str) -> None:
    settings = {
        "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@driver-svc:7078",
        "SPARK_EXECUTOR_CORES": "1",
        "SPARK_EXECUTOR_MEMORY": "1g",
        "SPARK_APPLICATION_ID": "spark-0123",
    }
    del settings[missing]
    env = _env(
        tmp_path,
        SPARK_HOME=str(_spark_home()),
        JAVA_HOME=str(_fake_java_home(tmp_path)),
        **settings,
    )
    proc = _run(["executor"], env, tmp_path)
    assert proc.returncode != 0
    assert missing in proc.stderr and proc.stdout == ""


def test_driver_command_line_is_spark_submit_in_client_mode(tmp_path: Path) -> None:
    """Dry run with SPARK_HOME unset: spark-submit of the pyspark package found from the python
    on PATH, the pod address as bind address (and passed to the executors), client mode, then
    Spark's arguments exactly as given."""
    spark_args = [
        "--properties-file", "/opt/spark/conf/spark.properties",
        "--class", PYTHON_RUNNER,
        "local:///app/jobs/build.py", "--shards", "16",
    ]  # fmt: skip
    env = _env(tmp_path, SPARK_ENTRYPOINT_DRY_RUN="1", SPARK_DRIVER_BIND_ADDRESS="10.1.2.3")
    proc = _run(["driver", *spark_args], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _printed_command(proc.stdout) == [
        str(_spark_home() / "bin" / "spark-submit"),
        "--conf", "spark.driver.bindAddress=10.1.2.3",
        "--conf", "spark.executorEnv.SPARK_DRIVER_POD_IP=10.1.2.3",
        "--deploy-mode", "client",
        *spark_args,
    ]  # fmt: skip


def test_driver_without_a_bind_address_sets_none(tmp_path: Path) -> None:
    env = _env(tmp_path, SPARK_ENTRYPOINT_DRY_RUN="1", SPARK_HOME=str(_spark_home()))
    command = _printed_command(_run(["driver", "--class", "x", "a.py"], env, tmp_path).stdout)
    assert not any("bindAddress" in word for word in command)
    assert command[1:] == ["--deploy-mode", "client", "--class", "x", "a.py"]


# ---- pass-through ---------------------------------------------------------------------


def test_any_other_command_passes_through_unchanged(tmp_path: Path) -> None:
    """Arguments (spaces included) and the exit status are the command's own, and no Spark
    setup happens (no SPARK_HOME is exported, no java is needed)."""
    code = "import os, sys; print(sys.argv[1:], os.environ.get('SPARK_HOME')); sys.exit(3)"
    env = _env(tmp_path, JAVA_HOME=str(tmp_path / "no-such-jdk"))
    proc = _run([sys.executable, "-c", code, "a b", "--flag"], env, tmp_path)
    assert proc.returncode == 3
    assert proc.stdout.strip() == "['a b', '--flag'] None"
    assert proc.stderr == ""


def test_the_image_commands_still_work_through_it(tmp_path: Path) -> None:
    proc = _run(["freightml", "--help"], _env(tmp_path), REPO)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout and "freightml" in proc.stdout


def test_no_command_is_an_error_not_a_silent_success(tmp_path: Path) -> None:
    proc = _run([], _env(tmp_path), tmp_path)
    assert proc.returncode != 0
    assert "usage" in proc.stderr
