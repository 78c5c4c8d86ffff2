"""IAM, bucket and budget documents for the AWS environment (pure: ARNs and addresses in, dicts out)."""

from __future__ import annotations

from typing import Optional

# What the simulator, the trainer and the session tool do with the working bucket: list prefixes, read and
# write checkpoints, metrics and logs, delete only when the user asks to overwrite a model.
_WORKING_OBJECT_ACTIONS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]
# The upload bucket holds finished models for another account or console: write and read back, never delete.
_UPLOAD_OBJECT_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
_BUCKET_ACTIONS = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]

SSM_MANAGED_POLICY_ARN = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"


def ec2_assume_role_policy() -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }],
    }


def host_s3_policy(bucket_arn: str, upload_bucket: Optional[str] = None) -> dict:
    """The host role's S3 access: this bucket, and the upload bucket when one is set; nothing on `*`."""
    statements = [
        {"Sid": "WorkingBucket", "Effect": "Allow", "Action": _BUCKET_ACTIONS, "Resource": bucket_arn},
        {"Sid": "WorkingObjects", "Effect": "Allow", "Action": _WORKING_OBJECT_ACTIONS,
         "Resource": f"{bucket_arn}/*"},
    ]
    if upload_bucket:
        upload_arn = f"arn:aws:s3:::{upload_bucket}"
        statements += [
            {"Sid": "UploadBucket", "Effect": "Allow", "Action": _BUCKET_ACTIONS, "Resource": upload_arn},
            {"Sid": "UploadObjects", "Effect": "Allow", "Action": _UPLOAD_OBJECT_ACTIONS,
             "Resource": f"{upload_arn}/*"},
        ]
    return {"Version": "2012-10-17", "Statement": statements}


def host_notify_policy(topic_arn: str) -> dict:
    """The host role may publish to the stack's notification topic, and do nothing else with SNS."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "PublishNotifications", "Effect": "Allow", "Action": "sns:Publish",
                       "Resource": topic_arn}],
    }


# AWS Budgets: e-mails at 80% and 100% of the actual month's cost, and when the forecast passes 100%.
BUDGET_ALERTS = (("ACTUAL", 80.0), ("ACTUAL", 100.0), ("FORECASTED", 100.0))


def budget_notifications(emails: tuple[str, ...]) -> list[dict]:
    return [{"comparison_operator": "GREATER_THAN", "notification_type": kind, "threshold": percent,
             "threshold_type": "PERCENTAGE", "subscriber_email_addresses": list(emails)}
            for kind, percent in BUDGET_ALERTS]


def tls_only_bucket_policy(bucket_arn: str) -> dict:
    """Refuse every request to the bucket that does not come over TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    }


def sim_node_s3_policy(bucket_arn: str) -> dict:
    """A simulation node's S3 access: its workers read and write the working bucket as the host's do (checkpoints,
    metrics, traces) and the node reports its first boot there; no upload bucket, nothing on `*`."""
    return host_s3_policy(bucket_arn)


def _via_ssm_for(parameter_arn: str) -> dict:
    """The key used by SSM for this one parameter only: SSM encrypts a standard parameter with the encryption
    context PARAMETER_ARN (Parameter Store's use of KMS, AWS Systems Manager user guide)."""
    region = parameter_arn.split(":")[3]
    return {"StringEquals": {"kms:ViaService": f"ssm.{region}.amazonaws.com",
                             "kms:EncryptionContext:PARAMETER_ARN": parameter_arn}}


def swarm_token_write_policy(parameter_arn: str, key_arn: str) -> dict:
    """The host (the swarm's manager) may write, and so rotate, the one worker-token parameter, encrypted with its
    key through SSM; nothing else."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "WriteSwarmToken", "Effect": "Allow", "Action": "ssm:PutParameter", "Resource": parameter_arn},
        {"Sid": "EncryptSwarmToken", "Effect": "Allow", "Action": "kms:Encrypt", "Resource": key_arn,
         "Condition": _via_ssm_for(parameter_arn)}]}


def swarm_token_read_policy(parameter_arn: str, key_arn: str) -> dict:
    """A node may read the one worker-token parameter, decrypted with its key through SSM; nothing else."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadSwarmToken", "Effect": "Allow", "Action": "ssm:GetParameter", "Resource": parameter_arn},
        {"Sid": "DecryptSwarmToken", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": key_arn,
         "Condition": _via_ssm_for(parameter_arn)}]}


# The account administers the key (IAM decides who) but cannot use it: AWS's "key administrators" actions, none of
# Encrypt, Decrypt, ReEncrypt or GenerateDataKey. Without an administrator the key could not be changed or deleted.
KEY_ADMINISTRATION_ACTIONS = [
    "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*", "kms:Revoke*",
    "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion", "kms:RotateKeyOnDemand"]


def swarm_token_key_policy(host_role_arn: str, node_role_arn: str, parameter_arn: str) -> dict:
    """The token key's policy: the host encrypts and the nodes decrypt the one parameter through SSM; nobody else
    can use the key, whatever their IAM policies say (`ssm:GetParameter` on `*` included)."""
    account = host_role_arn.split(":")[4]
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "KeyAdministration", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
         "Action": KEY_ADMINISTRATION_ACTIONS, "Resource": "*"},
        {"Sid": "HostEncryptsTheSwarmToken", "Effect": "Allow", "Principal": {"AWS": host_role_arn},
         "Action": "kms:Encrypt", "Resource": "*", "Condition": _via_ssm_for(parameter_arn)},
        {"Sid": "NodesDecryptTheSwarmToken", "Effect": "Allow", "Principal": {"AWS": node_role_arn},
         "Action": "kms:Decrypt", "Resource": "*", "Condition": _via_ssm_for(parameter_arn)}]}
