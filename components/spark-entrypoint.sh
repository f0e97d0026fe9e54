#!/usr/bin/env bash
# FreightML's entrypoint for the containers of a Spark on Kubernetes application (the driver
# and executor pods of a Kubeflow Spark Operator SparkApplication) that run the FreightML image.
#
# The image's own ENTRYPOINT/CMD stay as they are; a SparkApplication sets this script as the
# command of its driver and executor containers. Spark's Kubernetes backend then passes the
# arguments, and this script turns them into a process:
#
#   driver --properties-file F --class C RESOURCE [ARGS...]
#       spark-submit in client deploy mode inside the driver pod, bound to the pod's address
#       (SPARK_DRIVER_BIND_ADDRESS); every argument after `driver` goes to spark-submit.
#   executor
#       the JVM of one executor (Spark's KubernetesExecutorBackend), configured from the
#       environment Spark sets on executor pods (SPARK_DRIVER_URL, SPARK_EXECUTOR_ID, ...).
#   anything else
#       pass-through: the arguments are run as the command, unchanged, so that a container
#       started with this entrypoint can still run `freightml ...`, `python ...` or a shell.
#
# Where things are in this image: pyspark is a pip package in the venv, so SPARK_HOME is the
# pyspark package directory (with bin/ and jars/, no conf/); it is found from the `python` on
# PATH when SPARK_HOME is unset. Java comes from JAVA_HOME, or from PATH.
#
# The containers run as a non-root user with a read-only root filesystem where only /tmp (and
# the volumes Spark mounts, e.g. its local dirs and /opt/spark/conf) are writable. This script
# therefore writes no file itself, never writes into SPARK_HOME, and points the scratch
# directories (TMPDIR, SPARK_LOCAL_DIRS, java.io.tmpdir) under /tmp when they are not set.
#
# SPARK_ENTRYPOINT_DRY_RUN=1 prints the command, one argument per line, instead of running it.
#
# Written for FreightML from the contract of Spark's Kubernetes backend (the arguments and the
# environment it gives driver and executor pods); tests/unit/test_spark_entrypoint.py runs it.

set -euo pipefail

readonly EXECUTOR_MAIN_CLASS=org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend

say() {
    printf 'spark-entrypoint: %s\n' "$*" >&2
}

fail() {
    say "error: $*"
    exit 1
}

# launch with-init|as-is COMMAND...: run (or, for a dry run, print) the assembled command.
# with-init: when tini is installed it becomes the parent of the Spark process, forwarding
# signals and reaping the orphans of the Python workers.
launch() {
    local init="$1"
    shift
    local -a command=("$@")
    if [[ "$init" == with-init ]] && command -v tini >/dev/null 2>&1; then
        command=("$(command -v tini)" -s -- "${command[@]}")
    fi
    if [[ "${SPARK_ENTRYPOINT_DRY_RUN:-0}" == 1 ]]; then
        printf '%s\n' "${command[@]}"
        exit 0
    fi
    exec "${command[@]}"
}

# ---- the settings the driver and the executors share ---------------------------------

setup_spark_environment() {
    if [[ -z "${SPARK_HOME:-}" ]]; then
        SPARK_HOME="$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')" \
            || fail "SPARK_HOME is unset and the python on PATH cannot import pyspark"
    fi
    [[ -d "$SPARK_HOME/jars" ]] || fail "no Spark jars under SPARK_HOME=$SPARK_HOME"
    export SPARK_HOME

    if [[ -n "${JAVA_HOME:-}" ]]; then
        JAVA_BIN="$JAVA_HOME/bin/java"
        [[ -x "$JAVA_BIN" ]] || fail "JAVA_HOME=$JAVA_HOME has no bin/java"
    else
        JAVA_BIN="$(command -v java)" || fail "no java: set JAVA_HOME or put java on PATH"
    fi

    # Scratch space under /tmp unless the pod says otherwise. On Kubernetes, Spark itself sets
    # SPARK_LOCAL_DIRS to the emptyDir volumes it mounts for its local dirs.
    export TMPDIR="${TMPDIR:-/tmp}"
    export SPARK_LOCAL_DIRS="${SPARK_LOCAL_DIRS:-$TMPDIR/spark-local}"
    # The venv is read-only: Python must not try to write bytecode next to the sources.
    export PYTHONDONTWRITEBYTECODE="${PYTHONDONTWRITEBYTECODE:-1}"

    # Spark and Hadoop look the user up by uid; an unknown uid (a pod securityContext with
    # another runAsUser) fails inside Hadoop's login, and /etc/passwd is read-only here.
    if [[ "$(id -u)" == 0 ]]; then
        say "warning: running as root; the FreightML image is meant to run as uid 10001"
    elif command -v getent >/dev/null 2>&1 && ! getent passwd "$(id -u)" >/dev/null; then
        say "warning: uid $(id -u) has no passwd entry; run the pod as the image's user (10001)"
    fi
}

# Append the non-empty arguments to CLASSPATH, colon-separated (an empty entry would put the
# working directory on the class path by accident).
classpath_add() {
    local entry
    for entry in "$@"; do
        if [[ -n "$entry" ]]; then
            CLASSPATH_VALUE="${CLASSPATH_VALUE:+$CLASSPATH_VALUE:}$entry"
        fi
    done
}

# ---- driver ---------------------------------------------------------------------------

run_driver() {
    setup_spark_environment
    local -a submit=("$SPARK_HOME/bin/spark-submit")
    # The pod IP (Spark sets it from status.podIP). The executors get it too, as
    # SPARK_DRIVER_POD_IP, which is what the Spark 4 images pass on.
    if [[ -n "${SPARK_DRIVER_BIND_ADDRESS:-}" ]]; then
        submit+=(--conf "spark.driver.bindAddress=$SPARK_DRIVER_BIND_ADDRESS")
        submit+=(--conf "spark.executorEnv.SPARK_DRIVER_POD_IP=$SPARK_DRIVER_BIND_ADDRESS")
    fi
    # The driver pod is the driver: Spark's arguments (--properties-file, --class, the primary
    # resource and the application's arguments) follow unchanged.
    submit+=(--deploy-mode client "$@")

    # spark-submit starts the driver JVM with SPARK_SUBMIT_OPTS first and the application's
    # spark.driver.extraJavaOptions after them, so this default never overrides the user's.
    if [[ "${SPARK_SUBMIT_OPTS:-}" != *java.io.tmpdir=* ]]; then
        export SPARK_SUBMIT_OPTS="-Djava.io.tmpdir=$TMPDIR${SPARK_SUBMIT_OPTS:+ $SPARK_SUBMIT_OPTS}"
    fi
    launch with-init "${submit[@]}"
}

# ---- executor -------------------------------------------------------------------------

run_executor() {
    setup_spark_environment
    # The executor's settings, as Spark's Kubernetes backend sets them on the pod.
    : "${SPARK_DRIVER_URL:?is unset (the executor needs the driver to register with)}"
    : "${SPARK_EXECUTOR_CORES:?is unset}"
    : "${SPARK_EXECUTOR_MEMORY:?is unset (a JVM heap size, e.g. 1024m)}"
    : "${SPARK_APPLICATION_ID:?is unset}"

    # The JVM options Spark passes as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ...: one option per
    # variable (values may hold spaces), applied in the order of their numbers.
    local -a java_options=("-Djava.io.tmpdir=$TMPDIR")
    local name
    while IFS= read -r name; do
        if [[ -n "$name" ]]; then
            java_options+=("${!name}")
        fi
    done < <(compgen -A variable SPARK_JAVA_OPT_ | sort -t _ -k 4,4n || true)

    # Class path: the configuration directories first (Spark mounts its conf at SPARK_CONF_DIR,
    # Hadoop's at HADOOP_CONF_DIR), then spark.executor.extraClassPath (SPARK_CLASSPATH),
    # Spark's jars, any extra and Hadoop-distribution jars, and the working directory.
    if [[ -n "${HADOOP_HOME:-}" && -z "${SPARK_DIST_CLASSPATH:-}" && -x "$HADOOP_HOME/bin/hadoop" ]]; then
        SPARK_DIST_CLASSPATH="$("$HADOOP_HOME/bin/hadoop" classpath)"
    fi
    CLASSPATH_VALUE=""
    if [[ -n "${SPARK_CONF_DIR:-}" ]]; then
        classpath_add "$SPARK_CONF_DIR"
    elif [[ -d "$SPARK_HOME/conf" ]]; then
        classpath_add "$SPARK_HOME/conf"
    fi
    classpath_add "${HADOOP_CONF_DIR:-}" "${SPARK_CLASSPATH:-}" "$SPARK_HOME/jars/*" \
        "${SPARK_EXTRA_CLASSPATH:-}" "${SPARK_DIST_CLASSPATH:-}" "$PWD"

    local -a executor=(
        "$JAVA_BIN"
        "${java_options[@]}"
        "-Xms$SPARK_EXECUTOR_MEMORY"
        "-Xmx$SPARK_EXECUTOR_MEMORY"
        -cp "$CLASSPATH_VALUE"
        "$EXECUTOR_MAIN_CLASS"
        --driver-url "$SPARK_DRIVER_URL"
        # EXECID asks the driver for an id (the statefulset/deployment pod allocators)
        --executor-id "${SPARK_EXECUTOR_ID:-EXECID}"
        --cores "$SPARK_EXECUTOR_CORES"
        --app-id "$SPARK_APPLICATION_ID"
        --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}"
    )
    # The pod IP is the address the executor advertises and binds; without it the backend
    # falls back to the host name.
    if [[ -n "${SPARK_EXECUTOR_POD_IP:-}" ]]; then
        executor+=(--hostname "$SPARK_EXECUTOR_POD_IP")
    fi
    if [[ -n "${SPARK_EXECUTOR_POD_NAME:-}" ]]; then
        executor+=(--podName "$SPARK_EXECUTOR_POD_NAME")
    fi
    say "executor ${SPARK_EXECUTOR_ID:-EXECID} of ${SPARK_APPLICATION_ID}, driver ${SPARK_DRIVER_URL}"
    launch with-init "${executor[@]}"
}

# ---- dispatch -------------------------------------------------------------------------

if [[ $# -eq 0 ]]; then
    fail "no command; usage: $0 driver SPARK-SUBMIT-ARGS... | executor | COMMAND [ARGS...]"
fi

case "$1" in
    driver)
        shift
        run_driver "$@"
        ;;
    executor)
        shift
        run_executor
        ;;
    *)
        # Not a Spark role: run the given command as it is (no Spark setup, no tini).
        launch as-is "$@"
        ;;
esac
