"""Create an S3 bucket if it does not exist (exit 1 while the store does not answer).

Reads the endpoint from SAFETYLOCK_S3_ENDPOINT_URL and credentials from AWS_*.
Usage: python make_bucket.py BUCKET
"""

import os
import sys

import boto3
from botocore.config import Config


def make_bucket(name: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["SAFETYLOCK_S3_ENDPOINT_URL"],
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
    )
    if name not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key=".ready", Body=b"ok")  # the store accepts writes
    s3.delete_object(Bucket=name, Key=".ready")


if __name__ == "__main__":
    make_bucket(sys.argv[1])
