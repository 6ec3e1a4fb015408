"""Drives replicate-sim with the official Python client (pip package `replicate`, 1.x).

Environment: REPLICATE_API_TOKEN (the sim's token) and REPLICATE_SIM_BASE_URL (e.g.
http://127.0.0.1:8081). Expects the sim to run `acme/painter` quickly with URL output and
`acme/slow` slowly enough to be canceled. Exits non-zero on the first failed check.
"""

import hashlib
import json
import os
import sys
import urllib.request

import replicate
from replicate.exceptions import ReplicateError

VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"


def expected_url(base, model_key, input):
    canonical = json.dumps(input, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{model_key}\n{canonical}".encode()).hexdigest()[:16]
    return f"{base}/files/{digest}/out-0.png"


def main():
    token = os.environ["REPLICATE_API_TOKEN"]
    base = os.environ["REPLICATE_SIM_BASE_URL"].rstrip("/")
    client = replicate.Client(api_token=token, base_url=base)
    client.poll_interval = 0.05

    input = {"prompt": "a red bicycle", "seed": 7}
    prediction = client.predictions.create(model="acme/painter", input=input)
    assert prediction.status == "starting", prediction.status
    assert prediction.model == "acme/painter", prediction.model
    prediction.wait()
    assert prediction.status == "succeeded", prediction.status
    assert prediction.output == expected_url(base, "acme/painter", input), prediction.output
    assert prediction.metrics["predict_time"] > 0, prediction.metrics

    by_version = client.predictions.create(version=VERSION, input={"text": "hi"})
    by_version.wait()
    assert by_version.status == "succeeded", by_version.status
    assert by_version.version == VERSION, by_version.version

    # run() sends `Prefer: wait`. It wraps only https: URLs in FileOutput, so over plain
    # http the output stays a string and is fetched here directly.
    output = client.run("acme/painter", input=input)
    assert str(output) == expected_url(base, "acme/painter", input), str(output)
    with urllib.request.urlopen(str(output)) as response:
        assert response.headers["Content-Type"] == "image/png"
        assert response.read().startswith(b"\x89PNG"), "output file is not a PNG"

    page = client.predictions.list()
    listed = [p.id for p in page.results]
    assert by_version.id in listed and prediction.id in listed, listed
    assert listed.index(by_version.id) < listed.index(prediction.id), "list is not newest first"

    slow = client.predictions.create(model="acme/slow", input={})
    slow.cancel()
    assert slow.status == "canceled", slow.status
    assert client.predictions.get(slow.id).status == "canceled"

    secret = client.webhooks.default.secret()
    assert secret.key.startswith("whsec_"), secret.key

    bad = replicate.Client(api_token="r8_wrong", base_url=base)
    try:
        bad.predictions.list()
        raise AssertionError("a wrong token was accepted")
    except ReplicateError as error:
        assert error.status == 401, error.status
        assert error.title == "Unauthenticated", error.title

    print("official client checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print(f"official client check failed: {error}", file=sys.stderr)
        raise
