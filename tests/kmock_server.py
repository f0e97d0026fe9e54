"""kmock's in-memory Kubernetes API, served from a background thread for sync clients.

kmock is asyncio-native; the kubernetes and kserve clients are blocking. The emulator
runs on its own event loop in a daemon thread, and :attr:`KMockCluster.url` is a real
loopback HTTP address any client can use.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

import kmock
from kubernetes import client as k8s_client

ISVC_RESOURCE = "serving.kserve.io/v1beta1/inferenceservices"
SPARK_RESOURCE = "sparkoperator.k8s.io/v1beta2/sparkapplications"


class KMockCluster:
    """``with KMockCluster() as cluster:`` a stateful fake API server on 127.0.0.1."""

    def __init__(self, start_timeout: float = 10.0) -> None:
        self.start_timeout = start_timeout
        self.emulator: kmock.KubernetesEmulator | None = None
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kmock", daemon=True)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            # kmock answers a create with 200, but kubernetes-client only decodes the body of a
            # 201 for create_* calls (and returns None otherwise). Answer like a real API server.
            emulator[kmock.action.CREATE] << 201 << (lambda request: request.data)
            emulator.resources[ISVC_RESOURCE] = kmock.ResourceInfo(
                kind="InferenceService",
                singular="inferenceservice",
                namespaced=True,
                verbs={"create", "get", "list", "watch", "patch", "delete"},
            )
            emulator.resources[SPARK_RESOURCE] = kmock.ResourceInfo(
                kind="SparkApplication",
                singular="sparkapplication",
                namespaced=True,
                verbs={"create", "get", "list", "watch", "patch", "delete"},
            )
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(self.start_timeout) or self._error is not None:
            raise RuntimeError(f"kmock did not start: {self._error or 'timed out'}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        """A kubeconfig dict pointing at this server (for ``KServeClient(config_dict=...)``)."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "kmock", "user": {"token": "not-a-secret"}}],
            "contexts": [
                {
                    "name": "kmock",
                    "context": {"cluster": "kmock", "user": "kmock", "namespace": namespace},
                }
            ],
            "current-context": "kmock",
        }

    def stored(self, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
        """The object as the server holds it now (for assertions)."""
        assert self.emulator is not None
        return dict(self.emulator.objects[resource, namespace, name].raw)

    def history(
        self, resource: str, namespace: str | None, name: str
    ) -> list[dict[str, Any] | None]:
        """Every stored version of the object, oldest first (None = deleted)."""
        assert self.emulator is not None
        versions = self.emulator.objects[resource, namespace, name].history
        return [None if v is None else dict(v.raw) for v in versions]


@contextmanager
def kserve_client(kubeconfig: dict[str, Any]) -> Iterator[Any]:
    """A KServeClient for ``kubeconfig`` (e.g. ``cluster.kubeconfig()``).

    ``KServeClient(config_dict=...)`` replaces the global default kubernetes
    configuration; it is restored afterwards.
    """
    from kserve import KServeClient

    saved = k8s_client.Configuration._default
    try:
        yield KServeClient(config_dict=kubeconfig)
    finally:
        k8s_client.Configuration.set_default(saved)
