"""Uploads the session package (and the cost settings) to the stack's blob container from the deployer's machine
(`pulumi up` runs it).

The storage account takes Entra ID tokens only (shared keys are off), and pulumi-azure-native's Blob resource
signs with the account key (pulumi/pulumi-azure-native#2015), so the package travels through this module on
the deployer's Azure login instead, as a pulumi-command local command that reruns when the package changes.
A 403 for want of a data role is retried for a while: the stack has only just assigned it.

    python -m infra.blob_upload --account-url https://A.blob.core.windows.net --container models \
        --blob bootstrap/session.tar.gz --file build/session.tar.gz
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from infra import azure_blob

ROLE_PROPAGATION_S = 15 * 60.0
RETRY_EVERY_S = 15.0


def upload(container: Any, blob: str, data: bytes, content_type: str = "application/gzip",
           patience_s: float = ROLE_PROPAGATION_S, interval_s: float = RETRY_EVERY_S,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
           say: Callable[[str], None] = print) -> None:
    """Writes `data` to `blob` (replacing it); waits out transient errors and role propagation for patience_s."""
    from azure.storage.blob import ContentSettings

    start = clock()
    said = ""
    while True:
        try:
            container.upload_blob(blob, data, overwrite=True,
                                  content_settings=ContentSettings(content_type=content_type))
            return
        except Exception as error:  # noqa: BLE001 - the SDK's errors share no base but Exception; classify sorts them
            mapped = azure_blob.classify(error, container.url)
            if not isinstance(mapped, azure_blob.Transient):
                raise mapped from None
            if clock() - start >= patience_s:
                raise azure_blob.Fatal(f"{mapped} (still after {int(clock() - start)} s)") from None
            if str(mapped) != said:
                say(f"upload of {blob} not accepted yet ({mapped}); retrying")
                said = str(mapped)
            sleep(interval_s)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.blob_upload",
                                     description="Upload one file to a blob container with the deployer's Azure login.")
    parser.add_argument("--account-url", required=True, help="https://<account>.blob.core.windows.net")
    parser.add_argument("--container", required=True)
    parser.add_argument("--blob", required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path)
    source.add_argument("--text", help="the blob's content itself (a small JSON document)")
    parser.add_argument("--content-type", default="application/gzip")
    args = parser.parse_args(argv)
    try:
        data = args.file.read_bytes() if args.file is not None else (args.text + "\n").encode()
    except OSError as error:
        print(f"cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return 1
    client = azure_blob.container_client(args.account_url, args.container)
    try:
        upload(client, args.blob, data, args.content_type)
    except azure_blob.BlobError as error:
        print(f"cannot upload {args.blob}: {error}", file=sys.stderr)
        return 1
    print(f"uploaded {client.url.rstrip('/')}/{args.blob} ({len(data)} bytes, sha256 "
          f"{hashlib.sha256(data).hexdigest()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
