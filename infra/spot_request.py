"""Cancels the persistent spot request behind a host, before Pulumi terminates the host.

A persistent spot request outlives its instance: terminating the instance alone lets the request launch
another one, a GPU host that no stack knows of (hashicorp/terraform-provider-aws#38142: the provider that
pulumi-aws bridges does not always cancel it). `pulumi up` runs this on the deployer's machine (a
pulumi-command local command whose `delete` this is) whenever the host goes: a fallback that replaces it, or
`pulumi destroy`. Pulumi deletes that command before the instance it depends on, so the request is cancelled
first. Cancelling leaves the instance itself alone; an on-demand host has no request and nothing happens.

    python -m infra.spot_request --instance-id i-0abc --region us-east-1
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional, Sequence

# A request in these states can still launch an instance (closed, cancelled and failed ones cannot).
_LIVE_STATES = frozenset({"open", "active", "disabled"})


def requests_of(client: Any, instance_id: str) -> list[str]:
    """The ids of the live spot requests that launched the instance."""
    found: list[str] = []
    token: Optional[str] = None
    while True:
        # Matched here, not by an `instance-id` filter, which moto's EC2 lacks; an account holds few requests.
        page = client.describe_spot_instance_requests(**({"NextToken": token} if token else {}))
        found += [r["SpotInstanceRequestId"] for r in page.get("SpotInstanceRequests", [])
                  if r.get("InstanceId") == instance_id and r.get("State") in _LIVE_STATES]
        token = page.get("NextToken")
        if not token:
            return found


def cancel_for_instance(client: Any, instance_id: str) -> list[str]:
    """Cancels the instance's live spot requests; returns their ids."""
    ids = requests_of(client, instance_id)
    if ids:
        client.cancel_spot_instance_requests(SpotInstanceRequestIds=ids)
    return ids


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.spot_request",
                                     description="Cancel the persistent spot request behind an instance.")
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--endpoint-url", default=None, help="EC2-compatible endpoint (tests)")
    args = parser.parse_args(argv)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.session.Session().client("ec2", region_name=args.region, endpoint_url=args.endpoint_url)
        ids = cancel_for_instance(client, args.instance_id)
    except (BotoCoreError, ClientError) as error:
        print(f"cannot cancel the spot request of {args.instance_id}: {error}; cancel it in the EC2 console "
              "(Spot Requests) or it may launch another instance", file=sys.stderr)
        return 1
    if ids:
        print(f"cancelled spot request {', '.join(ids)} of {args.instance_id}")
    else:
        print(f"{args.instance_id} has no live spot request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
