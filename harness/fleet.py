"""``portbench fleet render``: one Kubernetes Job per target of a fleet file (targets.toml).

Each Job runs one platform's image (containers/) on its node pool: node selector and tolerations
from the file (with the device plugins' resource names as defaults), Guaranteed QoS (requests ==
limits, integer CPUs), a memory-backed /dev/shm, non-root UID 1000, read-only root filesystem,
``backoffLimit``, ``activeDeadlineSeconds``, a pod failure policy that fails the Job at once on
portbench's input-error exit code 2, and results on a PersistentVolumeClaim under ``/results/<name>``
or, with ``results = "s3://bucket/prefix"``, uploaded to ``s3://bucket/prefix/<name>/`` by
``portbench fleet upload`` after the run (credentials from a Secret, never in the manifest).
Manifests are written as JSON, which ``kubectl apply -f`` reads as it reads YAML.

``submit`` and ``status`` (harness/fleet_kube.py, extra ``fleet``) talk to the cluster with the
official Kubernetes client; ``upload`` and ``collect`` (harness/fleet_store.py, extra ``s3`` for a
bucket) move run directories.
"""

from __future__ import annotations

import json
import re
import shlex
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
    # "pvc" (the claim above) or "s3://bucket/prefix"; s3_* only matter for a bucket.
    "results": "pvc",
    "s3_endpoint": "",
    "s3_region": "us-east-1",
    "s3_secret": "portbench-s3",
}
TARGET_KEYS = {"name", "platform", "image", "node_selector", "tolerations", "resource", "supplemental_groups",
               *DEFAULTS}
NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?")
# Bucket names per S3's rules (3-63 of a-z, 0-9, '.', '-'), then an optional key prefix.
S3_URL = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?")


def s3_destination(target: Mapping[str, Any]) -> str:
    """Where target's run directory goes in the bucket: ``s3://bucket/prefix/<name>``."""
    return f"{str(target['results']).rstrip('/')}/{target['name']}"


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
        results = target["results"]
        if results != "pvc" and not (isinstance(results, str) and S3_URL.fullmatch(results)):
            raise PortbenchError(f"{where}: results must be 'pvc' or 's3://bucket[/prefix]', not {results!r}")
        if target["s3_endpoint"] and not str(target["s3_endpoint"]).startswith(("http://", "https://")):
            raise PortbenchError(f"{where}: s3_endpoint must be an http:// or https:// URL")
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
    command += args
    volumes: list[dict[str, Any]] = [
        {"name": "results", "persistentVolumeClaim": {"claimName": target["results_claim"]}},
        # --shm-size: a memory emptyDir; it counts against the memory limit.
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": target["shm"]}},
        {"name": "tmp", "emptyDir": {}},
    ]
    env: list[dict[str, Any]] = []
    if target["results"] != "pvc":
        # The run writes to a pod-local volume; the upload runs whatever the run's exit status (a run
        # with failing cells still has results worth keeping) and the pod exits with the run's status,
        # so the failure policy still sees exit 2. An upload failure is exit 3.
        volumes[0] = {"name": "results", "emptyDir": {}}
        upload = ["portbench", "fleet", "upload", f"/results/{name}", s3_destination(target)]
        if target["s3_endpoint"]:
            upload += ["--endpoint-url", target["s3_endpoint"]]
        command = ["sh", "-c", f"{shlex.join(command)}; rc=$?; {shlex.join(upload)} || exit 3; exit $rc"]
        secret = target["s3_secret"]
        env = [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        ] + [{"name": "AWS_DEFAULT_REGION", "value": target["s3_region"]}]
    container = {
        "name": "portbench",
        "image": target["image"],
        "imagePullPolicy": "IfNotPresent",
        "command": command,
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
    if env:
        container["env"] = env
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
                    "volumes": volumes,
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


def _manifests(fleet_file: Path) -> list[dict[str, Any]]:
    return [job_manifest(target) for target in load_fleet(fleet_file)]


_kube_options = [
    click.option("--kubeconfig", type=click.Path(path_type=Path), default=None,
                 help="Kubeconfig (default: $KUBECONFIG, ~/.kube/config; in a pod: its service account)."),
    click.option("--context", default=None, help="Kubeconfig context to use."),
]


def kube_options(function: Any) -> Any:
    for option in reversed(_kube_options):
        function = option(function)
    return function


@fleet.command("submit")
@click.argument("fleet_file", type=click.Path(path_type=Path))
@click.option("--replace", is_flag=True, help="Delete and recreate a finished Job of the same name.")
@click.option("--dry-run", is_flag=True, help="Print the Jobs that would be created; contact no cluster.")
@kube_options
def fleet_submit(fleet_file: Path, replace: bool, dry_run: bool, kubeconfig: Path | None,
                 context: str | None) -> None:
    """Create one Job per [[target]] of FLEET_FILE with the Kubernetes client (extra `fleet`)."""
    from portbench.harness import fleet_kube

    manifests = _manifests(fleet_file)
    if dry_run:
        for manifest in manifests:
            meta = manifest["metadata"]
            box = manifest["spec"]["template"]["spec"]["containers"][0]
            click.echo(f"would create job {meta['namespace']}/{meta['name']}: image {box['image']}, "
                       f"limits {json.dumps(box['resources']['limits'], sort_keys=True)}")
            click.echo(json.dumps(manifest, indent=2))
        return
    for line in fleet_kube.submit(manifests, replace, kubeconfig, context):
        click.echo(line)


@fleet.command("status")
@click.argument("fleet_file", type=click.Path(path_type=Path))
@kube_options
def fleet_status(fleet_file: Path, kubeconfig: Path | None, context: str | None) -> None:
    """State of each target's Job: not submitted, pending, running, succeeded or failed (with the reason)."""
    from portbench.harness import fleet_kube

    targets = load_fleet(fleet_file)
    states = fleet_kube.status([job_manifest(t) for t in targets], kubeconfig, context)
    width = max(len(t["name"]) for t in targets)
    for target, (_, state) in zip(targets, states, strict=True):
        reason = f"  {state.reason}" if state.reason else ""
        click.echo(f"{target['name']:<{width}}  {state.state}{reason}")


@fleet.command("upload")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("destination", metavar="s3://BUCKET/PREFIX")
@click.option("--endpoint-url", default=None, help="S3-compatible endpoint (MinIO, Ceph RGW, ...).")
def fleet_upload(run_dir: Path, destination: str, endpoint_url: str | None) -> None:
    """Copy RUN_DIR's files to s3://BUCKET/PREFIX/ (extra `s3`); results.json goes last."""
    from portbench.harness import fleet_store

    count = fleet_store.upload(run_dir, destination, endpoint_url)
    click.echo(f"uploaded {count} files to {destination.rstrip('/')}/")


@fleet.command("collect")
@click.argument("fleet_file", type=click.Path(path_type=Path))
@click.option("--into", "into", type=click.Path(path_type=Path), required=True,
              help="Directory that receives one <target>/ run directory per finished target.")
@click.option("--from-dir", "from_dir", type=click.Path(path_type=Path), default=None,
              help="Where the results claim is mounted (holds <target>/); default: the file's s3:// results.")
@click.option("--endpoint-url", default=None, help="Overrides the fleet file's s3_endpoint.")
@click.option("--report/--no-report", "make_report", default=True, show_default=True,
              help="Render each collected run's summary, as `portbench report` does.")
def fleet_collect(fleet_file: Path, into: Path, from_dir: Path | None, endpoint_url: str | None,
                  make_report: bool) -> None:
    """Bring each finished target's run back into INTO/<target>/ and validate its results.json."""
    from portbench.harness import fleet_store

    targets = load_fleet(fleet_file)
    names = [t["name"] for t in targets]
    if from_dir is not None:
        found = fleet_store.collect_from_dir(names, from_dir, into)
    else:
        buckets = {t["results"] for t in targets}
        if "pvc" in buckets:
            raise PortbenchError(f"{fleet_file}: results are on the claim; pass --from-dir (its mount)")
        if len(buckets) > 1 or len({t["s3_endpoint"] for t in targets}) > 1:
            raise PortbenchError(f"{fleet_file}: targets use different buckets; collect needs one")
        first = targets[0]
        found = fleet_store.collect_from_s3(names, first["results"], into,
                                            endpoint_url or first["s3_endpoint"], first["s3_region"])
    if make_report:
        # Through the registry, as `portbench report` does; harness never imports reports/.
        from portbench.harness import reporting
        from portbench.harness.console import make_console
        from portbench.harness.results import load_results

        for item in found:
            if item.run_dir is not None:
                reporting.render("summary", load_results(item.run_dir), item.run_dir, make_console())
    for item in found:
        if item.run_dir is None:
            click.echo(f"{item.target}: no results yet ({item.note})")
        else:
            click.echo(f"{item.target}: {item.run_dir} ({item.files} files)")
    missing = [item.target for item in found if item.run_dir is None]
    if missing:
        click.echo(f"not finished: {', '.join(missing)}", err=True)
