"""``portbench fleet upload`` / ``collect``: run directories to and from a bucket or a shared directory.

boto3 (extra ``portbench[s3]``) is imported only when a bucket is involved. Any S3-compatible store
works (MinIO, Ceph RGW, OBS, OSS): ``--endpoint-url`` or the fleet file's ``s3_endpoint`` names it;
credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in a Job, from
its Secret).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portbench.errors import PortbenchError
from portbench.harness.results import RESULTS_FILENAME, load_results


def split_s3(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b/`` -> (``bucket``, ``a/b``)."""
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise PortbenchError(f"not an s3://bucket[/prefix] URL: {url}")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix.strip("/")


def _s3(endpoint_url: str | None, region: str | None = None) -> Any:
    try:
        import boto3
    except ImportError:
        raise PortbenchError("boto3 is not installed: pip install 'portbench[s3]'") from None
    return boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region or None)


def _s3_call(action: str, function: Any, *args: Any, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return function(*args, **kwargs)
    except ClientError as error:
        info = error.response.get("Error", {})
        detail = f"{info.get('Code', '?')} {info.get('Message', '')}".rstrip()
        raise PortbenchError(f"{action}: {detail}") from None
    except BotoCoreError as error:
        raise PortbenchError(f"{action}: {error}") from None


def _files(run_dir: Path) -> Iterator[Path]:
    yield from sorted(p for p in run_dir.rglob("*") if p.is_file())


def upload(run_dir: Path, destination: str, endpoint_url: str | None) -> int:
    """Every file under ``run_dir`` to ``destination/<relative path>``; the number of files."""
    if not (run_dir / RESULTS_FILENAME).is_file():
        raise PortbenchError(f"{run_dir} is not a run directory (no {RESULTS_FILENAME})")
    bucket, prefix = split_s3(destination)
    s3 = _s3(endpoint_url)
    count = 0
    # results.json last: a collector that sees it knows the rest of the directory is there.
    top = run_dir / RESULTS_FILENAME
    files = sorted(_files(run_dir), key=lambda p: (p == top, str(p)))
    for path in files:
        key = "/".join(filter(None, (prefix, path.relative_to(run_dir).as_posix())))
        _s3_call(f"uploading {path} to s3://{bucket}/{key}", s3.upload_file, str(path), bucket, key)
        count += 1
    return count


@dataclass(frozen=True)
class Collected:
    target: str
    run_dir: Path | None  # None: no results yet
    files: int = 0
    note: str = ""


def _all_pages(paginator: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    return list(paginator.paginate(Bucket=bucket, Prefix=prefix))


def _replace_dir(destination: Path) -> None:
    # A second collect brings the newest state; stale files of an earlier try must not linger.
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)


def collect_from_dir(names: list[str], source: Path, into: Path) -> list[Collected]:
    if not source.is_dir():
        raise PortbenchError(f"--from-dir {source} is not a directory")
    found = []
    for name in names:
        run_dir = source / name
        if not (run_dir / RESULTS_FILENAME).is_file():
            found.append(Collected(name, None, note=f"no {RESULTS_FILENAME} in {run_dir}"))
            continue
        load_results(run_dir)  # one-line error naming the file if it does not validate
        destination = into / name
        _replace_dir(destination)
        shutil.copytree(run_dir, destination, dirs_exist_ok=True)
        found.append(Collected(name, destination, sum(1 for _ in _files(destination))))
    return found


def collect_from_s3(
    names: list[str], base: str, into: Path, endpoint_url: str | None, region: str | None
) -> list[Collected]:
    bucket, prefix = split_s3(base)
    s3 = _s3(endpoint_url, region)
    found = []
    for name in names:
        target_prefix = "/".join(filter(None, (prefix, name))) + "/"
        keys: list[str] = []
        paginator = s3.get_paginator("list_objects_v2")
        where = f"s3://{bucket}/{target_prefix}"
        pages = _s3_call(f"listing {where}", _all_pages, paginator, bucket, target_prefix)
        for page in pages:
            keys += [item["Key"] for item in page.get("Contents", [])]
        if target_prefix + RESULTS_FILENAME not in keys:
            found.append(Collected(name, None, note=f"no s3://{bucket}/{target_prefix}{RESULTS_FILENAME}"))
            continue
        destination = into / name
        _replace_dir(destination)
        for key in keys:
            relative = Path(key[len(target_prefix):])
            if relative.is_absolute() or ".." in relative.parts or not relative.parts:
                raise PortbenchError(f"refusing to write s3://{bucket}/{key} outside {destination}")
            path = destination / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            _s3_call(f"downloading s3://{bucket}/{key}", s3.download_file, bucket, key, str(path))
        load_results(destination)
        found.append(Collected(name, destination, len(keys)))
    return found
