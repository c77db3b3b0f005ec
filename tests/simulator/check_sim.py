#!/usr/bin/env python3
"""Self-check of the simulator's interface over HTTP (urllib, standard library only).

Starts codearts_sim.py, exercises every route, flag and control endpoint that follows the real service
(X-Project-Id, /v3/projects, token scopes, manual review, step logs, artifacts, pipeline detail, start errors,
the SDK query fields, the removed manual-release route) and prints one line per check. Exit 0 when all pass.
AK/SK requests are signed with the simulator's own signing functions: this checks the simulator's rules, not
the signer (the library's signer is checked against the official SDKs elsewhere).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import codearts_sim as simmod  # noqa: E402  (the signing functions, for a self-check only)

AK, SK = "CHECKAK0000000000000", "check-secret-key-never-shown"
USER, PASSWORD, DOMAIN = "alice", "pa:ss", "acme"
REGION, IAM_PROJECT = "cn-north-4", "5f2a3b4c6d7e8f901a2b3c4d5e6f7a8b"
PROJECT = simmod.SEED_PROJECT
PIPELINE = simmod.SEED_PIPELINE
FAILED_RUN = simmod.SEED_RUN
COMPLETED_RUN = "b" * 32

results: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, detail: Any = "") -> bool:
    results.append((name, bool(ok), "" if ok else str(detail)[:400]))
    return bool(ok)


class Sim:
    def __init__(self, extra: list[str]):
        self.dir = tempfile.mkdtemp(prefix="check-sim-")
        port_file = os.path.join(self.dir, "port.json")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "codearts_sim.py"), "--port-file",
                                      port_file, "--parent-pid", str(os.getpid()), *extra],
                                     stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not os.path.exists(port_file):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("the simulator did not start")
            time.sleep(0.02)
        with open(port_file, encoding="utf-8") as handle:
            self.info = json.load(handle)
        self.host = f"127.0.0.1:{self.info['port']}"
        self.base = f"http://{self.host}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def call(self, method: str, path: str, body: Any = None, headers: Optional[dict] = None,
             query: str = "", raw: Optional[bytes] = None) -> tuple[int, Any, dict]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        url = self.base + path + (f"?{query}" if query else "")
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, text, reply_headers = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            status, text, reply_headers = error.code, error.read(), dict(error.headers)
        try:
            return status, json.loads(text), reply_headers
        except ValueError:
            return status, text.decode("utf-8", "replace"), reply_headers

    def control(self, method: str, path: str, body: Any = None) -> Any:
        status, answer, _ = self.call(method, "/_sim/" + path, body)
        assert status < 300, (method, path, status, answer)
        return answer

    def signed(self, method: str, path: str, body: Any = None, query: str = "", project: Optional[str] = IAM_PROJECT,
               sign_project: bool = True, sk: str = SK) -> tuple[int, Any, dict]:
        """An AK/SK request as the SDKs send it: X-Project-Id (when given) signed with host and x-sdk-date."""
        data = json.dumps(body).encode() if body is not None else b""
        headers = {"content-type": "application/json", "host": self.host,
                   "x-sdk-date": datetime.now(timezone.utc).strftime(simmod.SDK_DATE_FORMAT)}
        if project is not None:
            headers["x-project-id"] = project
        names = sorted(name for name in headers if sign_project or name != "x-project-id")
        signed_headers = ";".join(names)
        canonical = simmod.canonical_request(method, path, query, headers, signed_headers,
                                             simmod.payload_digest(headers, data))
        signature = simmod.compute_signature(sk, headers["x-sdk-date"], canonical)
        headers["authorization"] = (f"{simmod.SIGNING_ALGORITHM} Access={AK}, SignedHeaders={signed_headers}, "
                                    f"Signature={signature}")
        return self.call(method, path, raw=data if body is not None else None, headers=headers, query=query)


TOKEN = {"X-Auth-Token": "sim-token", "Content-Type": "application/json"}


def runs_path(run_id: str, tail: str = "") -> str:
    return f"/v5/{PROJECT}/api/pipelines/{PIPELINE}/pipeline-runs/{run_id}{tail}"


def detail(sim: Sim, run_id: str) -> dict:
    status, run, _ = sim.call("GET", f"/v5/{PROJECT}/api/pipelines/{PIPELINE}/pipeline-runs/detail",
                              headers=TOKEN, query=f"pipeline_run_id={run_id}")
    assert status == 200, (status, run)
    return run


def find_step(run: dict, name: str) -> tuple[str, dict]:
    for stage in run["stages"]:
        for job in stage["jobs"]:
            for step in job["steps"]:
                if step["name"] == name:
                    return job["id"], step
    raise AssertionError(f"no step {name} in run {run['id']}")


def is_error(answer: Any, code: str) -> bool:
    return isinstance(answer, dict) and answer.get("error_code") == code and isinstance(answer.get("error_msg"), str)


# ------------------------------------------------------------------------------------------------------------

def check_region_info(sim: Sim) -> None:
    info = sim.info
    check("port file carries region and iam_project_id",
          info.get("region") == REGION and info.get("iam_project_id") == IAM_PROJECT, info)
    check("seed carries region and iam_project_id", info["seed"].get("region") == REGION
          and info["seed"].get("iam_project_id") == IAM_PROJECT, info["seed"])
    reset = sim.control("POST", "reset")
    check("reset answer carries region and iam_project_id", reset.get("region") == REGION
          and reset.get("iam_project_id") == IAM_PROJECT and reset["seed"]["iam_project_id"] == IAM_PROJECT, reset)


def check_project_header(sim: Sim) -> None:
    path = runs_path(COMPLETED_RUN, "/artifacts")
    status, answer, _ = sim.signed("GET", path)
    check("AK/SK with the region's IAM project signed as X-Project-Id: 200", status == 200, (status, answer))
    cases = [("missing", dict(project=None), "x-project-id header missing"),
             ("wrong", dict(project=PROJECT), "not the IAM project of region cn-north-4"),
             ("unsigned", dict(sign_project=False), "x-project-id is not a signed header")]
    for what, options, reason in cases:
        status, answer, _ = sim.signed("GET", path, **options)
        check(f"AK/SK with X-Project-Id {what}: 401 APIGW.0301 naming it",
              status == 401 and is_error(answer, "APIGW.0301")
              and answer["error_msg"].startswith("Incorrect IAM authentication information: ")
              and reason in answer["error_msg"], (status, answer))
        check(f"X-Project-Id {what}: no secret in the answer", SK not in json.dumps(answer), answer)
    status, answer, _ = sim.signed("GET", path, project=PROJECT, sk="wrong-secret")
    check("bad signature is refused before X-Project-Id is looked at",
          status == 401 and "signature" in answer.get("error_msg", ""), (status, answer))
    status, answer, _ = sim.call("GET", path, headers={**TOKEN, "X-Project-Id": PROJECT})
    check("token request ignores X-Project-Id", status == 200, (status, answer))
    status, answer, _ = sim.call("GET", path, headers=TOKEN)
    check("token request needs no X-Project-Id", status == 200, (status, answer))


def check_iam_projects(sim: Sim) -> None:
    status, answer, _ = sim.signed("GET", "/v3/projects", query=f"name={REGION}", project=None)
    projects = answer.get("projects") if isinstance(answer, dict) else None
    check("GET /v3/projects?name=region, AK/SK without X-Project-Id: exactly the region's project",
          status == 200 and projects is not None and [p["id"] for p in projects] == [IAM_PROJECT]
          and projects[0]["name"] == REGION and isinstance(answer.get("links"), dict), (status, answer))
    if projects:
        check("project fields as KeystoneListProjects", set(projects[0]) >= {
            "id", "name", "domain_id", "enabled", "is_domain", "parent_id", "description"}
            and projects[0]["enabled"] is True and projects[0]["is_domain"] is False, projects[0])
    status, answer, _ = sim.signed("GET", "/v3/projects", project=None)
    check("GET /v3/projects without name: every project (two by default)",
          status == 200 and len(answer["projects"]) == 2, answer)
    status, answer, _ = sim.signed("GET", "/v3/projects", query="name=nowhere-1", project=None)
    check("GET /v3/projects?name=unknown: none", status == 200 and answer["projects"] == [], answer)
    status, answer, _ = sim.call("GET", "/v3/projects", query=f"name={REGION}", headers=TOKEN)
    check("GET /v3/projects with a token: 200", status == 200 and len(answer["projects"]) == 1, answer)
    status, answer, _ = sim.call("GET", "/v3/projects", query=f"name={REGION}")
    check("GET /v3/projects unauthenticated: IAM-style 401", status == 401
          and isinstance(answer, dict) and answer.get("error", {}).get("code") == 401, (status, answer))
    status, answer, _ = sim.signed("GET", "/v3/projects", query=f"name={REGION}", project=None, sk="wrong")
    check("GET /v3/projects with a bad signature: IAM-style 401", status == 401
          and "signature" in answer["error"]["message"] and SK not in json.dumps(answer), (status, answer))
    sim.control("POST", "iam/projects", {"projects": [
        {"id": "1" * 32, "name": REGION, "domain_id": "d" * 32}, {"id": "2" * 32, "name": REGION}]})
    status, answer, _ = sim.signed("GET", "/v3/projects", query=f"name={REGION}", project=None)
    check("POST /_sim/iam/projects: several with the region's name", status == 200
          and sorted(p["id"] for p in answer["projects"]) == ["1" * 32, "2" * 32], answer)
    sim.control("POST", "iam/projects", {"projects": []})
    status, answer, _ = sim.signed("GET", "/v3/projects", query=f"name={REGION}", project=None)
    check("POST /_sim/iam/projects: none", status == 200 and answer["projects"] == [], answer)
    sim.control("POST", "reset")
    listed = sim.control("GET", "iam/projects")["projects"]
    check("reset restores the default IAM projects", [p["id"] for p in listed][:1] == [IAM_PROJECT]
          and len(listed) == 2, listed)
    status, _, _ = sim.call("POST", "/_sim/iam/projects", {"projects": [{"id": "x"}]})
    check("POST /_sim/iam/projects refuses a project without name", status == 400, status)


def token_request(sim: Sim, scope: Any, query: str = "nocatalog=true") -> tuple[int, Any, dict]:
    auth: dict = {"identity": {"methods": ["password"], "password": {"user": {
        "name": USER, "password": PASSWORD, "domain": {"name": DOMAIN}}}}}
    if scope is not None:
        auth["scope"] = scope
    return sim.call("POST", "/v3/auth/tokens", {"auth": auth}, {"Content-Type": "application/json"}, query=query)


def check_token_scopes(sim: Sim) -> None:
    status, answer, headers = token_request(sim, {"project": {"name": REGION}})
    check("token scoped by project name (nocatalog=true)", status == 201 and headers.get("X-Subject-Token")
          and answer["token"]["project"]["id"] == IAM_PROJECT, (status, answer))
    status, answer, _ = token_request(sim, {"project": {"id": IAM_PROJECT}}, query="")
    check("token scoped by project id", status == 201 and answer["token"]["project"]["name"] == REGION,
          (status, answer))
    status, answer, _ = token_request(sim, {"domain": {"name": DOMAIN}})
    check("token scoped by domain name", status == 201 and answer["token"]["domain"]["name"] == DOMAIN
          and "project" not in answer["token"], (status, answer))
    domain_id = simmod.derived_id("domain", DOMAIN)
    status, answer, _ = token_request(sim, {"domain": {"id": domain_id}})
    check("token scoped by domain id", status == 201 and answer["token"]["domain"]["id"] == domain_id,
          (status, answer))
    for what, scope in (("unknown project name", {"project": {"name": "xx-none-1"}}),
                        ("unknown project id", {"project": {"id": "9" * 32}}),
                        ("another domain", {"domain": {"name": "other"}})):
        status, answer, _ = token_request(sim, scope)
        check(f"token scope: {what} refused IAM-style", status == 401
              and answer.get("error", {}).get("code") == 401, (status, answer))
    status, answer, _ = token_request(sim, {"project": "cn-north-4"})
    check("token scope malformed: 400", status == 400 and answer["error"]["code"] == 400, (status, answer))
    scopes = [json.loads(r["body"])["auth"].get("scope") for r in sim.control("GET", "requests")["requests"]
              if r["path"] == "/v3/auth/tokens"]
    check("request log records the scopes sent", {"id": IAM_PROJECT} in [s and s.get("project") for s in scopes],
          scopes)


def check_review(sim: Sim) -> None:
    run_id = "e" * 32
    sim.control("POST", "runs", {"project_id": PROJECT, "pipeline_id": PIPELINE, "run_id": run_id,
                                 "status": "RUNNING", "polls": 1, "paused_polls": 5, "outcome": "COMPLETED"})
    detail(sim, run_id)
    run = detail(sim, run_id)
    job_id, review = find_step(run, "manual-review")
    check("a PAUSED run has a pending manual review step", run["status"] == "PAUSED"
          and review["status"] == simmod.REVIEW_PENDING_STATUS and review["task"] == simmod.REVIEW_STEP[1]
          and set(review) == {"id", "name", "task", "status", "message", "start_time", "end_time"}, run)
    _, tests = find_step(run, "run-tests")
    status, answer, _ = sim.call("POST", runs_path(run_id, f"/jobs/{job_id}/steps/{tests['id']}/pass"), headers=TOKEN)
    check("pass on a step that is not a review: 400 DEVPIPE.00011206", status == 400
          and is_error(answer, "DEVPIPE.00011206"), (status, answer))
    status, answer, _ = sim.call("POST", runs_path(run_id, f"/jobs/{'0' * 32}/steps/{review['id']}/pass"),
                                 headers=TOKEN)
    check("pass with an unknown job: 404 job run not found", status == 404
          and is_error(answer, "DEVPIPE.00011104") and "job run" in answer["error_msg"], (status, answer))
    status, answer, _ = sim.call("POST", runs_path(run_id, f"/jobs/{job_id}/steps/abc123/pass"), headers=TOKEN)
    check("pass with a short unknown step id: accepted as an id, 404 step run not found", status == 404
          and "step run" in answer.get("error_msg", ""), (status, answer))
    status, answer, _ = sim.call("POST", runs_path(run_id, f"/jobs/{job_id}/steps/ab-cd/pass"), headers=TOKEN)
    check("step id with a non-alphanumeric character: 400 invalid step_run_id", status == 400
          and answer.get("error_msg") == "invalid step_run_id", (status, answer))
    status, answer, _ = sim.call("POST", runs_path(run_id[:31], f"/jobs/{job_id}/steps/{review['id']}/pass"),
                                 headers=TOKEN)
    check("run id of 31 characters: 400 invalid pipeline_run_id", status == 400
          and answer.get("error_msg") == "invalid pipeline_run_id", (status, answer))
    status, answer, _ = sim.signed("POST", runs_path(run_id, f"/jobs/{job_id}/steps/{review['id']}/pass"))
    check("pass (AK/SK): 200 success", status == 200 and answer == {"success": True}, (status, answer))
    state = sim.control("GET", f"runs/{run_id}")
    check("run state shows the pass", state["review"]["decision"] == "pass" and state["status"] == "RUNNING", state)
    status, answer, _ = sim.call("POST", runs_path(run_id, f"/jobs/{job_id}/steps/{review['id']}/refuse"),
                                 headers=TOKEN)
    check("refuse after the decision: 400 DEVPIPE.00011206", status == 400
          and is_error(answer, "DEVPIPE.00011206"), (status, answer))
    run = detail(sim, run_id)
    check("after pass the run reaches its planned outcome", run["status"] == "COMPLETED"
          and find_step(run, "manual-review")[1]["status"] == "COMPLETED", run)

    refused = "f" * 32
    sim.control("POST", "runs", {"project_id": PROJECT, "pipeline_id": PIPELINE, "run_id": refused,
                                 "status": "PAUSED"})
    run = detail(sim, refused)
    job_id, review = find_step(run, "manual-review")
    status, answer, _ = sim.call("POST", runs_path(refused, f"/jobs/{job_id}/steps/{review['id']}/refuse"),
                                 headers=TOKEN)
    check("refuse: 200 success", status == 200 and answer == {"success": True}, (status, answer))
    run = detail(sim, refused)
    job = run["stages"][1]["jobs"][0]
    check("after refuse the run is FAILED and the step/job show the refusal", run["status"] == "FAILED"
          and find_step(run, "manual-review")[1]["status"] == "FAILED"
          and job["message"] == simmod.REFUSED_MESSAGE, run)
    check("run state shows the refusal", sim.control("GET", f"runs/{refused}")["review"]["decision"] == "refuse")


def page_through(sim: Sim, run_id: str, job_id: str, step_id: str, limit: int, sort: str,
                 start: int = 0, end: int = 0) -> tuple[list[str], int, int, int]:
    """Follows Huawei's rule: the answer's offsets go into the next request while has_more. Returns
    (lines, pages, last start, last end)."""
    lines, pages = [], 0
    while True:
        status, answer, _ = sim.call("POST", runs_path(run_id, f"/jobs/{job_id}/steps/{step_id}/logs"),
                                     {"start_offset": start, "end_offset": end, "limit": limit, "sort": sort},
                                     {**TOKEN, "Content-Type": "application/json;charset=UTF-8"})
        assert status == 200, (status, answer)
        assert isinstance(answer["start_offset"], str) and isinstance(answer["end_offset"], str), answer
        assert answer["step_run_id"] == step_id, answer
        lines += answer["log"].splitlines()
        pages += 1
        start, end = int(answer["start_offset"]), int(answer["end_offset"])
        if not answer["has_more"] or pages > 1000:
            return lines, pages, start, end


def check_logs(sim: Sim) -> None:
    long_log = sim.info["seed"]["long_log"]
    run = detail(sim, FAILED_RUN)
    job_id, step = find_step(run, "run-tests")
    check("seed long_log names the failed run-tests step", long_log["job_run_id"] == job_id
          and long_log["step_run_id"] == step["id"] and step["status"] == "FAILED", (long_log, step))
    lines, pages, _, _ = page_through(sim, FAILED_RUN, job_id, step["id"], 100, "asc")
    numbers = [int(line[1:5]) for line in lines]
    check("asc paging of the long log: every line once, in order", numbers == list(range(1, 2501)),
          f"{len(lines)} lines in {pages} pages")
    check("the long log is a few hundred KB", sum(len(line) + 1 for line in lines) > 200_000)
    rev, _, _, _ = page_through(sim, FAILED_RUN, job_id, step["id"], 333, "desc")
    check("desc paging: every line once, last first", [int(line[1:5]) for line in rev] == list(range(2500, 0, -1)),
          len(rev))
    status, answer, _ = sim.call("POST", runs_path(FAILED_RUN, f"/jobs/{job_id}/steps/{step['id']}/logs"),
                                 {"start_offset": 0, "end_offset": 0, "limit": 10000, "sort": "asc"}, TOKEN)
    check("one page with a large limit: the whole log, has_more false", status == 200
          and len(answer["log"].splitlines()) == 2500 and answer["has_more"] is False, (status, str(answer)[:200]))
    for what, body in (("missing limit", {"sort": "asc"}), ("missing sort", {"limit": 10}),
                       ("limit as a string", {"limit": "10", "sort": "asc"}),
                       ("offset as a string", {"limit": 10, "sort": "asc", "start_offset": "0"}),
                       ("bad sort", {"limit": 10, "sort": "up"}), ("limit 0", {"limit": 0, "sort": "asc"}),
                       ("unknown key", {"limit": 10, "sort": "asc", "page": 1}), ("not an object", [1])):
        status, answer, _ = sim.call("POST", runs_path(FAILED_RUN, f"/jobs/{job_id}/steps/{step['id']}/logs"),
                                     body, TOKEN)
        check(f"logs body {what}: 400 invalid parameter", status == 400 and is_error(answer, "DEVPIPE.00011002"),
              (status, answer))
    status, answer, _ = sim.call("POST", runs_path(FAILED_RUN, f"/jobs/{job_id}/steps/{step['id']}/logs"),
                                 headers=TOKEN)
    check("logs without a body: 400", status == 400, (status, answer))

    # A running step's log grows as the run is polled; following from the last offsets gets each line once.
    running = "9" * 32
    sim.control("POST", "runs", {"project_id": PROJECT, "pipeline_id": PIPELINE, "run_id": running,
                                 "status": "RUNNING", "polls": 3, "outcome": "FAILED"})
    run = detail(sim, running)
    job_id, step = find_step(run, "run-tests")
    followed, _, start, end = page_through(sim, running, job_id, step["id"], 40, "asc")
    sizes = [len(followed)]
    for _ in range(4):  # RUNNING, RUNNING, then FAILED
        detail(sim, running)
        more, _, start, end = page_through(sim, running, job_id, step["id"], 40, "asc", start, end)
        followed += more
        sizes.append(len(followed))
    check("a running step's log grows with polls; following it gets every line once, in order",
          sizes[0] < sizes[1] < sizes[-1] and [int(line[1:5]) for line in followed] == list(range(1, 2501)), sizes)
    request = [r for r in sim.control("GET", "requests")["requests"] if r["path"].endswith("/logs")][-1]
    check("request log shows the logs request's headers and body",
          request["headers"].get("content-type") == "application/json;charset=UTF-8"
          and json.loads(request["body"])["limit"] == 40, request)


def check_artifacts_and_detail(sim: Sim) -> None:
    status, answer, _ = sim.call("GET", runs_path(COMPLETED_RUN, "/artifacts"), headers=TOKEN)
    artifacts = answer.get("artifacts") if isinstance(answer, dict) else None
    check("artifacts of a COMPLETED run: two, with the SDK's fields", status == 200 and artifacts
          and len(artifacts) == 2 and all(set(a) >= {
              "name", "artifact_version", "artifact_type", "artifact_package_type", "artifact_uri",
              "artifact_download_url_with_id", "file_size", "build_no", "job_id", "hash_code"} for a in artifacts)
          and isinstance(artifacts[0]["hash_code"], list), (status, answer))
    status, answer, _ = sim.call("GET", runs_path(FAILED_RUN, "/artifacts"), headers=TOKEN)
    check("artifacts of a FAILED run: none", status == 200 and answer == {"artifacts": []}, (status, answer))
    status, answer, _ = sim.call("GET", runs_path("0" * 32, "/artifacts"), headers=TOKEN)
    check("artifacts of an unknown run: 404", status == 404 and is_error(answer, "DEVPIPE.00011104"), answer)
    status, answer, _ = sim.call("GET", f"/v5/{PROJECT}/api/pipelines/{PIPELINE}", headers=TOKEN)
    check("pipeline detail", status == 200 and answer.get("id") == PIPELINE and answer["name"] == "demo-build"
          and answer["project_id"] == PROJECT and {"is_publish", "creator_id", "creator_name", "create_time",
                                                   "update_time", "description"} <= set(answer), (status, answer))
    status, answer, _ = sim.call("GET", f"/v5/{PROJECT}/api/pipelines/{'0' * 32}", headers=TOKEN)
    check("pipeline detail of an unknown pipeline: 404 DEVPIPE.00011104", status == 404
          and is_error(answer, "DEVPIPE.00011104"), (status, answer))


def check_quota(sim: Sim) -> None:
    sim.control("POST", "quota", {"rate": 3})
    statuses, answers = [], []
    for _ in range(5):
        status, answer, headers = sim.call("GET", f"/v5/{PROJECT}/api/pipelines/{PIPELINE}", headers=TOKEN)
        statuses.append(status)
        answers.append((answer, headers.get("Retry-After")))
    check("quota: 3 a second admitted, then 429 APIGW.0308 with Retry-After", statuses == [200, 200, 200, 429, 429]
          and is_error(answers[3][0], "APIGW.0308") and answers[3][1] == "1", (statuses, answers[3]))
    state = sim.control("GET", "quota")
    records = sim.control("GET", "requests")["requests"]
    check("quota: the refusals counted and recorded as fault quota", state == {"rate": 3, "throttled": 2}
          and [r["fault"] for r in records[-2:]] == ["quota", "quota"], (state, records[-2:]))
    status, _, _ = sim.signed("GET", f"/v5/{PROJECT}/api/pipelines/{PIPELINE}")
    check("quota: counted per caller (an AK has its own)", status == 200, status)
    time.sleep(1.05)
    status, _, _ = sim.call("GET", f"/v5/{PROJECT}/api/pipelines/{PIPELINE}", headers=TOKEN)
    check("quota: admitted again a second later", status == 200, status)
    sim.control("POST", "reset")
    check("quota: reset restores the command line's (none here)", sim.control("GET", "quota") ==
          {"rate": None, "throttled": 0})


def check_start_errors(sim: Sim) -> None:
    run_path = f"/v5/{PROJECT}/api/pipelines/{PIPELINE}/run"
    sim.control("POST", "pipelines", {"project_id": PROJECT, "pipeline_id": PIPELINE, "start_error": "no agent"})
    status, answer, _ = sim.call("POST", run_path, {}, TOKEN)
    check("start_error string: 400 with error_code and error_msg", status == 400
          and answer.get("error_msg") == "no agent" and answer.get("error_code") == "DEVPIPE.00011207",
          (status, answer))
    sim.control("POST", "pipelines", {"project_id": PROJECT, "pipeline_id": PIPELINE, "start_error": {
        "status": 200, "error_code": "DEVPIPE.30011001", "error_msg": "pipeline is banned"}})
    status, answer, _ = sim.call("POST", run_path, {}, TOKEN)
    check("start_error with status 200: error body, no pipeline_run_id", status == 200
          and answer == {"error_code": "DEVPIPE.30011001", "error_msg": "pipeline is banned"}, (status, answer))
    sim.control("POST", "pipelines", {"project_id": PROJECT, "pipeline_id": PIPELINE, "start_error": None})
    status, answer, _ = sim.call("POST", run_path, {}, TOKEN)
    check("start_error null: starts again", status == 200 and "pipeline_run_id" in answer, (status, answer))
    status, _, _ = sim.call("POST", "/_sim/pipelines", {"project_id": PROJECT, "pipeline_id": PIPELINE,
                                                         "start_error": {"status": 99}})
    check("start_error with a bad status is refused", status == 400, status)


def check_routes_and_queries(sim: Sim) -> None:
    job_id = simmod.derived_id(FAILED_RUN, simmod.TEST_JOB)
    status, answer, _ = sim.call("POST", runs_path(FAILED_RUN, f"/jobs/{job_id}/manual-release"), {}, TOKEN)
    check("manual-release: 404 APIGW.0101", status == 404 and is_error(answer, "APIGW.0101"), (status, answer))
    list_runs = f"/v5/{PROJECT}/api/pipelines/{PIPELINE}/pipeline-runs/list"
    full = {"status": ["FAILED", "COMPLETED"], "start_time": "2020-01-01 00:00:00", "end_time": "99999999999999",
            "update_time": 0, "trigger_type": ["Manual"], "executor_ids": [simmod.derived_id("user", "sim-user")],
            "offset": 0, "limit": 10, "sort_key": "update_time", "sort_dir": "asc", "show_job_details": False,
            "stage_id": "0" * 32, "job_id": "0" * 32}
    status, answer, _ = sim.call("POST", list_runs, full, TOKEN)
    check("list runs accepts every ListPipelineRunsQuery field (update_time too)", status == 200
          and answer.get("total") == 3, (status, answer if status != 200 else answer["total"]))
    status, answer, _ = sim.call("POST", list_runs, {"limit": 10, "page": 2}, TOKEN)
    check("list runs with an unknown field: 400", status == 400 and is_error(answer, "DEVPIPE.00011002"), answer)
    status, answer, _ = sim.call("POST", list_runs, {"update_time": [1]}, TOKEN)
    check("list runs with update_time of a wrong type: 400", status == 400, answer)
    full = {"project_id": PROJECT, "project_ids": [PROJECT], "component_id": "", "name": "demo",
            "status": [], "is_publish": False, "creator_id": simmod.derived_id("user", "sim-user"),
            "creator_ids": [], "executor_ids": [], "start_time": "0", "end_time": "99999999999999", "offset": 0,
            "limit": 10, "sort_key": "name", "sort_dir": "asc", "group_path_id": "", "by_group": False,
            "is_banned": False, "query_new": True, "security_level_list": [0, 1]}
    status, answer, _ = sim.call("POST", f"/v5/{PROJECT}/api/pipelines/list", full, TOKEN)
    check("list pipelines accepts every ListPipelineQuery field", status == 200 and answer.get("total") == 2,
          (status, answer))
    status, answer, _ = sim.call("POST", f"/v5/{PROJECT}/api/pipelines/list", {"creator": "x"}, TOKEN)
    check("list pipelines with an unknown field: 400", status == 400 and is_error(answer, "DEVPIPE.00011002"),
          answer)


def main() -> int:
    sim = Sim(["--seed", "--ak", AK, "--sk", SK, "--iam-user", f"{USER}:{PASSWORD}:{DOMAIN}"])
    try:
        for step in (check_region_info, check_project_header, check_iam_projects, check_token_scopes,
                     check_review, check_logs, check_artifacts_and_detail, check_start_errors,
                     check_routes_and_queries, check_quota):
            sim.control("POST", "reset")
            try:
                step(sim)
            except Exception as error:  # a broken step is one failure, the others still run
                check(f"{step.__name__} ran to the end", False, repr(error))
    finally:
        sim.stop()
    other = Sim(["--region", "ap-southeast-1", "--iam-project-id", "abc123"])
    try:
        status, answer, _ = other.call("GET", "/v3/projects", query="name=ap-southeast-1", headers=TOKEN)
        check("--region and --iam-project-id set the region's IAM project", other.info.get("region") ==
              "ap-southeast-1" and [p["id"] for p in answer.get("projects", [])] == ["abc123"], (other.info, answer))
    finally:
        other.stop()
    failed = 0
    for name, ok, detail_text in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok or not detail_text else f": {detail_text}"))
        failed += not ok
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
