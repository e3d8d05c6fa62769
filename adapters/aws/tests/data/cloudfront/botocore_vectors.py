#!/usr/bin/env python3
"""Prints CloudFront signed URLs made by botocore's CloudFrontSigner (AWS's SDK for Python), as
JSON lines: the recorded outcomes in vectors.json that the Rust signer is held to.

    .tools/moto/bin/python adapters/aws/tests/data/cloudfront/botocore_vectors.py

botocore builds the canned policy and the URL; the RSA-SHA1 (PKCS#1 v1.5) signature over the
policy is made by the `cryptography` package, as botocore's documentation shows with `rsa`.
"""
import datetime
import json
import os

import botocore
import cryptography
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

HERE = os.path.dirname(os.path.abspath(__file__))
KEY_FILE = "cloudfront-sign-rs-test-key.pem"
KEY_PAIR_ID = "K2JCJMDEHXQW5F"

with open(os.path.join(HERE, KEY_FILE), "rb") as f:
    key = serialization.load_pem_private_key(f.read(), password=None)


def rsa_signer(message):
    return key.sign(message, padding.PKCS1v15(), hashes.SHA1())


signer = CloudFrontSigner(KEY_PAIR_ID, rsa_signer)
cases = [
    ("https://example.com", 200),
    ("https://d111111abcdef8.cloudfront.net/0b6a1c9e-3f52-4d7e-9a41-2c8f7d5e6b10/thumbnail.jpg", 1767290400),
    ("https://d111111abcdef8.cloudfront.net/0b6a1c9e-3f52-4d7e-9a41-2c8f7d5e6b10/avatar.png", 1767291300),
    ("https://d111111abcdef8.cloudfront.net/image.jpg?color=red&size=medium", 1767290400),
]
for url, expires in cases:
    when = datetime.datetime.fromtimestamp(expires, tz=datetime.timezone.utc)
    print(json.dumps({
        "source": f"botocore {botocore.__version__} CloudFrontSigner, cryptography {cryptography.__version__}",
        "key": KEY_FILE,
        "key_pair_id": KEY_PAIR_ID,
        "url": url,
        "expires": expires,
        "policy": signer.build_policy(url, when),
        "signed_url": signer.generate_presigned_url(url, date_less_than=when),
    }))
