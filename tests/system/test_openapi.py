"""GET /openapi.json describes every route, and the running service holds to it under fuzzing.

schemathesis reads the document from the running service (real HTTP), generates requests from it
(valid and invalid ones), and checks each answer: no 5xx caused by us, a documented status, the
documented content type and headers, and a body that matches the response's schema.
"""

import re
import subprocess
import sys

from tests.support.service import API_KEY

EXAMPLES_PER_OPERATION = 100
SEED = 20261125


def test_the_document_is_open_and_openapi_3_1(service):
    response = service.get("/openapi.json", key=None)
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"][
        "text/event-stream"
    ]


def test_every_route_is_described(service):
    paths = service.get("/openapi.json").json()["paths"]
    routes = 0
    for rule in service.app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"OPTIONS"}:
            assert method.lower() in paths.get(path, {}), f"{method} {path} is not described"
            routes += 1
    assert routes >= 9
    # …and nothing is described that does not exist.
    served = {
        re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", r.rule)
        for r in service.app.url_map.iter_rules()
    }
    assert set(paths) <= served


def test_schemathesis_finds_nothing(service, fake_ai, tmp_path):
    """The whole document through every phase (examples, coverage, fuzzing, stateful) and every
    check, valid and invalid inputs, with a fixed seed and a bounded number of cases."""
    # An upload is valid to the schema as any bytes, but only a real JPEG/PNG/WebP is an image:
    # schema-valid uploads may be refused there (their 400s are still checked for shape).
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[[operations]]\n"
        'include-path-regex = "^/v1/images/(edits|variations)$"\n'
        "checks.positive_data_acceptance.enabled = false\n"
    )
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config)),
        *("run", f"{service.url}/openapi.json"),  # every check is on by default
        *("--seed", str(SEED)),
        *("--max-examples", str(EXAMPLES_PER_OPERATION)),
        *("--generation-database", "none"),
        *("--header", f"Authorization: Bearer {API_KEY}"),
        *("--request-timeout", "30"),
        *("--workers", "1"),
        "--no-color",
    ]
    # Run from a scratch folder: schemathesis keeps a cache of its own in the working directory.
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    summary = run.stdout[run.stdout.rfind("SUMMARY") :]
    print(summary)  # the figures RELIABILITY.md quotes: operations, cases generated
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    described = sum(len(ops) for ops in service.get("/openapi.json").json()["paths"].values())
    assert f"Tested: {described - 1}" in summary  # all but the document itself
    generated, passed = map(int, re.search(r"(\d+) generated, (\d+) passed", summary).groups())
    assert generated == passed >= 10 * described
