"""``portbench fleet render``: one Kubernetes Job per target of a fleet file (targets.toml).

Each Job runs one platform's image (containers/) on its node pool: node selector and tolerations
from the file (with the device plugins' resource names as defaults), Guaranteed QoS (requests ==
limits, integer CPUs), a memory-backed /dev/shm, non-root UID 1000, read-only root filesystem,
``backoffLimit``, ``activeDeadlineSeconds``, a pod failure policy that fails the Job at once on
portbench's input-error exit code 2, and results on a PersistentVolumeClaim under ``/results/<name>``.
Manifests are written as JSON, which ``kubectl apply -f`` reads as it reads YAML.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from portbench.errors import PortbenchError
from portbench.harness.container import TARGETS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

# Extended-resource names of the vendors' device plugins (paddle-platforms §12).
RESOURCE_NAMES: Mapping[str, str | None] = {
    "cpu": None,
    "cuda": "nvidia.com/gpu",
    "ascend": "huawei.com/Ascend910",
    "mlu": "cambricon.com/mlu",
    "xpu": "kunlunxin.com/xpu",
    "dcu": "hygon.com/dcu",
}
UID = 1000
DEFAULTS: Mapping[str, Any] = {
    "namespace": "portbench",
    "results_claim": "portbench-results",
    "backoff_limit": 1,
    "active_deadline_seconds": 4 * 3600,
    "ttl_seconds_after_finished": 7 * 24 * 3600,  # long enough to collect logs; it deletes the pods
    "cpu": 8,
    "memory": "16Gi",
    "shm": "2Gi",
    "devices": 1,
    "args": [],
}
TARGET_KEYS = {"name", "platform", "image", "node_selector", "tolerations", "resource", "supplemental_groups",
               *DEFAULTS}
NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?")


def load_fleet(path: Path) -> list[dict[str, Any]]:
    """The targets of ``path``, each with the file's ``[defaults]`` and the built-in defaults applied."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise PortbenchError(f"cannot read {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise PortbenchError(f"{path} is not valid TOML: {error}") from None
    defaults = {**DEFAULTS, **data.get("defaults", {})}
    targets = data.get("target", [])
    if not targets:
        raise PortbenchError(f"{path}: no [[target]] tables")
    resolved = []
    for index, raw in enumerate(targets):
        where = f"{path}: target {raw.get('name', index + 1)}"
        unknown = set(raw) - TARGET_KEYS
        if unknown:
            raise PortbenchError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        target = {**defaults, **raw}
        for key in ("name", "platform", "image"):
            if not target.get(key):
                raise PortbenchError(f"{where}: '{key}' is required")
        if not NAME.fullmatch(target["name"]):
            raise PortbenchError(f"{where}: name must be lower-case letters, digits and '-' (a Job name)")
        if target["platform"] not in TARGETS:
            raise PortbenchError(f"{where}: platform must be one of {', '.join(TARGETS)}")
        if not isinstance(target["cpu"], int) or target["cpu"] < 1:
            raise PortbenchError(f"{where}: cpu must be a whole number (exclusive CPUs need integers)")
        resolved.append(target)
    names = [t["name"] for t in resolved]
    if len(set(names)) != len(names):
        raise PortbenchError(f"{path}: target names repeat")
    return resolved


def job_manifest(target: Mapping[str, Any]) -> dict[str, Any]:
    platform = target["platform"]
    name = target["name"]
    resources: dict[str, Any] = {"cpu": str(target["cpu"]), "memory": target["memory"]}
    resource_name = target.get("resource", RESOURCE_NAMES[platform])
    if resource_name:
        resources[resource_name] = str(target["devices"])
    command = ["portbench", "run", "--out", f"/results/{name}", "--threads", str(target["cpu"])]
    args = list(target["args"])
    if "--backend" not in args:
        for backend in TARGETS[platform].backends:
            command += ["--backend", backend]
    labels = {"app.kubernetes.io/name": "portbench", "portbench/target": name, "portbench/platform": platform}
    pod_security: dict[str, Any] = {
        "runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if target.get("supplemental_groups"):
        pod_security["supplementalGroups"] = list(target["supplemental_groups"])
    container = {
        "name": "portbench",
        "image": target["image"],
        "imagePullPolicy": "IfNotPresent",
        "command": command + args,
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "results", "mountPath": "/results"},
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"portbench-{name}", "namespace": target["namespace"], "labels": labels},
        "spec": {
            "backoffLimit": target["backoff_limit"],
            "activeDeadlineSeconds": target["active_deadline_seconds"],
            "ttlSecondsAfterFinished": target["ttl_seconds_after_finished"],
            # Exit 2 is a bad input (model, dataset, backend): retrying cannot help. Evictions and
            # preemptions do not count against backoffLimit.
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"containerName": "portbench", "operator": "In",
                                                      "values": [2]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": dict(target.get("node_selector", {})),
                    "tolerations": list(target.get("tolerations", [])),
                    "securityContext": pod_security,
                    "containers": [container],
                    "volumes": [
                        {"name": "results", "persistentVolumeClaim": {"claimName": target["results_claim"]}},
                        # --shm-size: a memory emptyDir; it counts against the memory limit.
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": target["shm"]}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def render(fleet_file: Path, out_dir: Path) -> list[Path]:
    targets = load_fleet(fleet_file)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for target in targets:
        path = out_dir / f"job-{target['name']}.json"
        path.write_text(json.dumps(job_manifest(target), indent=2) + "\n")
        written.append(path)
    return written


@click.group("fleet")
def fleet() -> None:
    """Kubernetes Jobs for running the platform images across a fleet."""


@fleet.command("render")
@click.argument("fleet_file", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Directory for one job-<name>.json per target.")
def fleet_render(fleet_file: Path, out_dir: Path) -> None:
    """One Job manifest per [[target]] of FLEET_FILE (see containers/k8s/targets.example.toml)."""
    for path in render(fleet_file, out_dir):
        click.echo(str(path))
