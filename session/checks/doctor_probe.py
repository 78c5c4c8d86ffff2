"""The doctor's storage probe: runs INSIDE the simulator image (its python3 with boto3), never on the host.

`deepracer doctor` hands this file's text to `python3 -c` in a container on the training network, with the
environment the simulator's containers get (session.engine.specs.StorageAccess) plus the bucket and a key
under doctor/. It lists, puts, reads back and deletes that one object, then prints one line
`DOCTOR-STORAGE {json}`: {"ok": true, "credentials": <how boto3 found them>} or {"ok": false, "stage",
"code", "message"}. Standard library and boto3 only: this is the image's Python, not ours.
"""

import json
import os
import sys

MARKER = "DOCTOR-STORAGE"


def report(**result: object) -> None:
    print(f"{MARKER} {json.dumps(result)}", flush=True)
    sys.exit(0)


def main() -> None:
    try:
        import boto3
        from botocore import exceptions
        from botocore.config import Config
    except ImportError as error:
        report(ok=False, stage="import", code="ImportError", message=str(error))
        return
    bucket, key = os.environ["DOCTOR_BUCKET"], os.environ["DOCTOR_KEY"]
    # The simulator's own knobs: S3_ENDPOINT_URL for MinIO, else AWS (where AWS_ENDPOINT_URL_S3 may redirect it).
    s3 = boto3.client("s3", endpoint_url=os.environ.get("S3_ENDPOINT_URL") or None,
                      region_name=os.environ.get("AWS_REGION") or "us-east-1",
                      config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5,
                                    read_timeout=15))
    body = b"deepracer doctor: storage from the simulator's network\n"
    stage = "credentials"
    try:
        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise exceptions.NoCredentialsError()
        method = credentials.method
        stage = "list"
        s3.list_objects_v2(Bucket=bucket, Prefix="doctor/", MaxKeys=1)
        stage = "put"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        stage = "get"
        read = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        stage = "delete"
        s3.delete_object(Bucket=bucket, Key=key)
    except exceptions.ClientError as error:
        details = error.response.get("Error", {})
        report(ok=False, stage=stage, code=str(details.get("Code", "")), message=str(details.get("Message", "")))
        return
    except exceptions.NoCredentialsError as error:
        report(ok=False, stage=stage, code="NoCredentials", message=str(error))
        return
    except (exceptions.BotoCoreError, OSError) as error:
        report(ok=False, stage=stage, code=type(error).__name__, message=str(error))
        return
    if read != body:
        report(ok=False, stage="get", code="Mismatch", message=f"read back {len(read)} bytes that differ from the "
                                                               f"{len(body)} put")
    report(ok=True, credentials=method)


if __name__ == "__main__":
    main()
