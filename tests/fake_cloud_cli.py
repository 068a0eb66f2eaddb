"""Stand-ins for aws, gcloud, az and docker, so the example deploy scripts run offline.

Each call is appended to the JSON-lines log named by FAKE_CLI_LOG with the files it was given
(``file://PATH``, ``--yaml PATH``, a bare path to a rendered file) and what came on standard
input, and prints what the real tool would print for the ``--query``/``--format`` the scripts
ask for. Usage: ``python fake_cloud_cli.py TOOL ARG...``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# (tool, words that must all appear in the command) -> printed answer
ANSWERS: list[tuple[str, tuple[str, ...], str]] = [
    ("aws", ("amp", "create-workspace"), "ws-12345678-abcd-ef01-2345-6789abcdef01"),
    (
        "aws",
        ("secretsmanager", "create-secret", "observer/webhook-secret"),
        "arn:aws:secretsmanager:{region}:111122223333:secret:observer/webhook-secret-Xy12Zq",
    ),
    (
        "aws",
        ("secretsmanager", "create-secret", "observer/github-token"),
        "arn:aws:secretsmanager:{region}:111122223333:secret:observer/github-token-Ab34Cd",
    ),
    (
        "aws",
        ("secretsmanager", "create-secret", "observer/state-url"),
        "arn:aws:secretsmanager:{region}:111122223333:secret:observer/state-url-Ef56Gh",
    ),
    ("aws", ("ec2", "create-security-group", "observer-state"), "sg-0eeeeffff00001111"),
    ("aws", ("ec2", "create-security-group"), "sg-0aaaabbbbccccdddd"),
    (
        "aws",
        ("elasticache", "describe-replication-groups"),
        "master.observer.abc123.euw1.cache.amazonaws.com",
    ),
    (
        "aws",
        ("elbv2", "create-target-group"),
        "arn:aws:elasticloadbalancing:{region}:111122223333:targetgroup/observer/fedcba9876543210",
    ),
    ("aws", ("ecr", "get-login-password"), "fake-password"),
    ("gcloud", ("run", "services", "describe"), "https://observer-abc123-ew.a.run.app"),
    ("gcloud", ("redis", "instances", "describe"), "10.20.30.4"),
    ("gcloud", ("redis", "instances", "get-auth-string"), "b9f0c7e2-5a1d-4c3e-9f8a-0123456789ab"),
    ("az", ("account", "show"), "11111111-2222-3333-4444-555555555555"),
    ("az", ("identity", "show", "principalId"), "aaaaaaaa-0000-0000-0000-000000000001"),
    ("az", ("identity", "show", "clientId"), "bbbbbbbb-0000-0000-0000-000000000002"),
    ("az", ("ad", "signed-in-user", "show"), "cccccccc-0000-0000-0000-000000000003"),
    (
        "az",
        ("acr", "show"),
        "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers"
        "/Microsoft.ContainerRegistry/registries/acr",
    ),
    (
        "az",
        ("keyvault", "show"),
        "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers"
        "/Microsoft.KeyVault/vaults/kv",
    ),
    (
        "az",
        ("monitor", "account", "show", "dataCollectionRuleResourceId"),
        "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers"
        "/Microsoft.Insights/dataCollectionRules/observer-metrics",
    ),
    (
        "az",
        ("monitor", "account", "show", "dataCollectionEndpointResourceId"),
        "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers"
        "/Microsoft.Insights/dataCollectionEndpoints/observer-metrics",
    ),
    (
        "az",
        ("monitor", "data-collection", "endpoint", "show"),
        "https://observer-metrics-a1b2.westeurope-1.metrics.ingest.monitor.azure.com",
    ),
    (
        "az",
        ("monitor", "data-collection", "rule", "show"),
        "dcr-0123456789abcdef0123456789abcdef",
    ),
    ("az", ("redis", "list-keys"), "k3Y+with/base64="),
    ("az", ("containerapp", "show"), "observer.kindsea-1234.westeurope.azurecontainerapps.io"),
]


def files_in(arguments: list[str]) -> dict[str, str]:
    found = {}
    for index, argument in enumerate(arguments):
        candidate = argument.split("file://", 1)[1] if "file://" in argument else argument
        if index > 0 and arguments[index - 1] in ("--yaml",):
            candidate = argument
        path = Path(candidate)
        if path.is_absolute() and path.is_file():
            found[candidate] = path.read_text()
    return found


def main() -> int:
    tool, arguments = sys.argv[1], sys.argv[2:]
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    record = {"tool": tool, "args": arguments, "files": files_in(arguments), "stdin": stdin}
    with open(os.environ["FAKE_CLI_LOG"], "a") as log:
        log.write(json.dumps(record) + "\n")
    words = set(arguments)
    text = " ".join(arguments)
    for answer_tool, needed, answer in ANSWERS:
        if answer_tool == tool and all(word in words or word in text for word in needed):
            sys.stdout.write(answer.format(region=os.environ.get("AWS_REGION", "us-east-1")) + "\n")
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
