"""``portbench fleet submit`` / ``status``: the rendered Jobs through the official Kubernetes client.

The client (``kubernetes`` on PyPI, extra ``portbench[fleet]``) is imported only here and only when a
command needs the cluster, so ``render`` and ``submit --dry-run`` work without it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portbench.errors import PortbenchError

# A deleted Job lingers while its pods are cleaned up; how long --replace waits before giving up.
REPLACE_WAIT_S = 60.0


def _client(kubeconfig: Path | None, context: str | None) -> Any:
    """BatchV1Api configured from the in-cluster service account or a kubeconfig."""
    try:
        from kubernetes import client, config
    except ImportError:
        raise PortbenchError(
            "the Kubernetes client is not installed: pip install 'portbench[fleet]'"
        ) from None
    try:
        # Inside a pod (a CI job on the cluster) the service account is the natural identity.
        if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
        else:
            config.load_kube_config(config_file=str(kubeconfig) if kubeconfig else None, context=context)
    except (config.ConfigException, OSError, TypeError) as error:
        raise PortbenchError(f"cannot load the Kubernetes configuration: {error}") from None
    return client.BatchV1Api()


def _api_error(action: str, error: Exception) -> PortbenchError:
    """One line from an ApiException (HTTP status + the server's message) or a connection error."""
    status = getattr(error, "status", None)
    if status is not None:
        reason = getattr(error, "reason", "")
        body = getattr(error, "body", "") or ""
        try:
            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            message = ""
        detail = f"{status} {reason}" + (f": {message}" if message else "")
        return PortbenchError(f"{action}: {detail}")
    return PortbenchError(f"{action}: cannot reach the API server ({type(error).__name__})")


def _call(action: str, function: Any, *args: Any, **kwargs: Any) -> Any:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return function(*args, **kwargs)
    except (ApiException, HTTPError, OSError) as error:
        raise _api_error(action, error) from None


def _read(api: Any, name: str, namespace: str) -> Any | None:
    """The Job, or None where the server answers 404."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return api.read_namespaced_job(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise _api_error(f"reading Job {namespace}/{name}", error) from None
    except (HTTPError, OSError) as error:
        raise _api_error(f"reading Job {namespace}/{name}", error) from None


@dataclass(frozen=True)
class JobState:
    """A Job's state as ``fleet status`` shows it."""

    state: str  # not submitted | pending | running | succeeded | failed
    reason: str = ""

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed")


def job_state(job: Any | None) -> JobState:
    """pending / running / succeeded / failed (with the condition's reason) of a V1Job, or not submitted."""
    if job is None:
        return JobState("not submitted")
    status = job.status
    conditions = (status.conditions if status is not None else None) or []
    for condition in conditions:
        if condition.status != "True":
            continue
        # Complete (and SuccessCriteriaMet, 1.31+) mean success; Failed carries BackoffLimitExceeded,
        # DeadlineExceeded or PodFailurePolicy as its reason.
        if condition.type in ("Complete", "SuccessCriteriaMet"):
            return JobState("succeeded", condition.reason or "")
        if condition.type in ("Failed", "FailureTarget"):
            return JobState("failed", condition.reason or condition.message or "")
    if status is not None and status.active:
        # active counts pods not yet finished, scheduled or not; ready ones are running the suite.
        if status.ready:
            return JobState("running")
        return JobState("pending", "pod not ready (scheduling, pulling the image)")
    if conditions and any(c.type == "Suspended" and c.status == "True" for c in conditions):
        return JobState("pending", "suspended")
    return JobState("pending")


def submit(
    manifests: Sequence[Mapping[str, Any]], replace: bool, kubeconfig: Path | None, context: str | None
) -> list[str]:
    """Create every Job; with ``replace``, a finished Job of the same name is deleted first.

    Every name is checked before anything is created, so a conflict leaves the cluster unchanged.
    """
    api = _client(kubeconfig, context)
    existing: dict[str, JobState] = {}
    for manifest in manifests:
        name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
        job = _read(api, name, namespace)
        if job is None:
            continue
        state = job_state(job)
        if not state.finished:
            raise PortbenchError(f"Job {namespace}/{name} exists and is {state.state}; not replaced")
        if not replace:
            raise PortbenchError(f"Job {namespace}/{name} exists ({state.state}); pass --replace to rerun it")
        existing[name] = state
    lines = []
    for manifest in manifests:
        name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
        if name in existing:
            # Background: the Job object goes at once, its pods after; the old results stay on the volume.
            _call(f"deleting Job {namespace}/{name}", api.delete_namespaced_job, name, namespace,
                  propagation_policy="Background")
            deadline = time.monotonic() + REPLACE_WAIT_S
            while _read(api, name, namespace) is not None:
                if time.monotonic() > deadline:
                    raise PortbenchError(f"Job {namespace}/{name} not deleted after {REPLACE_WAIT_S:.0f} s")
                time.sleep(0.5)
        _call(f"creating Job {namespace}/{name}", api.create_namespaced_job, namespace, dict(manifest))
        lines.append(f"{'replaced' if name in existing else 'created'} job {namespace}/{name}")
    return lines


def status(
    manifests: Sequence[Mapping[str, Any]], kubeconfig: Path | None, context: str | None
) -> list[tuple[str, JobState]]:
    """(Job name, state) of every rendered Job."""
    api = _client(kubeconfig, context)
    return [
        (manifest["metadata"]["name"],
         job_state(_read(api, manifest["metadata"]["name"], manifest["metadata"]["namespace"])))
        for manifest in manifests
    ]
