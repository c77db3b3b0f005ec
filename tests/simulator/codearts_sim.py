#!/usr/bin/env python3
"""Local simulator of the Huawei Cloud CodeArts Pipeline REST API and of the IAM token endpoint.

Python 3.11 standard library only. It shares no code with the client library on purpose: it is an
independent implementation, so a bug in one cannot hide in the other.

The point is fault injection: tests queue faults through the control API (under /_sim/) and then watch
how the client copes. Every request that reaches a listener is recorded for inspection.
README.md beside this file documents the command line and the control API.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import select
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, Optional
from urllib.parse import parse_qsl, quote, unquote, urlsplit

# --------------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------------

DEFAULT_TOKEN = "sim-token"
DEFAULT_TOKEN_TTL = 86400.0
MAX_REQUEST_BODY = 64 * 1024 * 1024  # refuse anything bigger: no test needs it, and memory is shared
CONTROL_PREFIX = "/_sim"

MAIN = "main"
REDIRECT_TARGET = "redirect_target"
LISTENERS = (MAIN, REDIRECT_TARGET)

RUN_STATUSES = ("COMPLETED", "RUNNING", "FAILED", "CANCELED", "PAUSED", "SUSPEND", "IGNORED")
TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELED", "IGNORED"})
RETRYABLE_STATUSES = frozenset({"FAILED", "CANCELED"})

# "32 characters, including digits and letters" - ASCII only ([A-Za-z0-9] is ASCII; \w would not be).
ID_PATTERN = re.compile(r"[A-Za-z0-9]{32}")
# Job and step run ids: "generally 32 characters", no fixed length (Huawei's AcceptManualReview page).
LOOSE_ID_PATTERN = re.compile(r"[A-Za-z0-9]+")

# The simulated region and its IAM project (what X-Project-Id must carry on AK/SK requests).
DEFAULT_REGION = "cn-north-4"
DEFAULT_IAM_PROJECT_ID = "5f2a3b4c6d7e8f901a2b3c4d5e6f7a8b"
SIM_DOMAIN_ID = "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a"
OTHER_IAM_PROJECT_ID = "6e7f8091a2b3c4d5e6f708192a3b4c5d"

# Ids printed by --seed, chosen to be easy to type and recognise.
SEED_PROJECT = "0123456789abcdef0123456789abcdef"
SEED_PIPELINE = "fedcba9876543210fedcba9876543210"
SEED_PIPELINE_2 = "abcdef0123456789abcdef0123456789"
SEED_RUN = "a" * 32


def now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------------------------------
# Requests and replies
# --------------------------------------------------------------------------------------------------

@dataclass
class SimRequest:
    """One HTTP request as received, before any interpretation."""

    listener: str
    connection_id: int
    method: str
    path: str  # without the query
    query: str  # raw, "" if none
    headers: dict[str, str]  # lower-cased names
    body: bytes
    request_id: str
    received_at: float = field(default_factory=time.time)

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())

    def query_param(self, name: str) -> Optional[str]:
        for key, value in parse_qsl(self.query, keep_blank_values=True):
            if key == name:
                return value
        return None

    def to_record(self, seq: int, fault_kind: Optional[str]) -> dict:
        return {
            "seq": seq,
            "listener": self.listener,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": dict(self.headers),
            "body": self.body.decode("utf-8", errors="replace"),
            "connection": self.connection_id,
            "time": self.received_at,
            "fault": fault_kind,
        }


@dataclass
class Reply:
    """What to send back. A streamed reply produces its body in chunks (for the oversize fault)."""

    status: int
    body: bytes = b""
    content_type: Optional[str] = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: Optional[Callable[[], Iterator[bytes]]] = None
    stream_length: int = 0
    then: Optional[Callable[[], None]] = None  # run once the reply is sent (shutdown)


class ApiFailure(Exception):
    """Raised by API handlers to answer with an error reply at once."""

    def __init__(self, reply: Reply):
        super().__init__(reply.status)
        self.reply = reply


class ControlError(Exception):
    """A bad control request; answered as {"error": message}."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def json_reply(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, json.dumps(payload).encode("utf-8"), headers=list(headers or []))


def html_reply(status: int, title: str) -> Reply:
    page = f"<html><head><title>{status} {title}</title></head><body><h1>{status} {title}</h1></body></html>\n"
    return Reply(status, page.encode("utf-8"), content_type="text/html; charset=utf-8")


def error_reply(request: SimRequest, status: int, code: str, message: str,
                with_request_id: bool = True, headers: list[tuple[str, str]] | None = None) -> Reply:
    """The gateway/service error shape. Gateway errors carry request_id; some service errors do not."""
    body = {"error_code": code, "error_msg": message}
    if with_request_id:
        body["request_id"] = request.request_id
    return json_reply(status, body, headers)


def api_not_found(request: SimRequest) -> Reply:
    return error_reply(request, 404, "APIGW.0101",
                       "The API does not exist or has not been published in the environment")


def auth_failure(request: SimRequest, reason: str) -> Reply:
    return error_reply(request, 401, "APIGW.0301", f"Incorrect IAM authentication information: {reason}")


def invalid_parameter(request: SimRequest, what: str) -> ApiFailure:
    return ApiFailure(error_reply(request, 400, "DEVPIPE.00011002", f"invalid {what}"))


def not_found(request: SimRequest, what: str) -> ApiFailure:
    return ApiFailure(error_reply(request, 404, "DEVPIPE.00011104", f"{what} not found"))


def error_in_200(code: str, message: str) -> Reply:
    """The real service reports some failures with HTTP 200 and an error body (no request_id)."""
    return json_reply(200, {"error_code": code, "error_msg": message})


# --------------------------------------------------------------------------------------------------
# AK/SK signature verification (SDK-HMAC-SHA256), written from the published algorithm
# --------------------------------------------------------------------------------------------------

SIGNING_ALGORITHM = "SDK-HMAC-SHA256"
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SIGNATURE_SKEW = 15 * 60
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True)
class Credential:
    ak: str
    sk: str
    security_token: Optional[str] = None


def sign_encode(text: str) -> str:
    # quote() with no safe characters keeps exactly the RFC 3986 unreserved set A-Za-z0-9-_.~
    return quote(text, safe="")


def canonical_uri(raw_path: str) -> str:
    """Each segment decoded then re-encoded; a trailing '/' is added when missing."""
    uri = "/".join(sign_encode(unquote(segment)) for segment in raw_path.split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(raw_query: str) -> str:
    """name=value pairs re-encoded (space as %20), sorted by name then value, joined by '&'."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote(name), unquote(value)))
    pairs.sort()
    return "&".join(f"{sign_encode(name)}={sign_encode(value)}" for name, value in pairs)


def payload_digest(headers: dict[str, str], body: bytes) -> str:
    # The SDK signers let a client opt out of hashing the body with this header value.
    if headers.get("x-sdk-content-sha256") == UNSIGNED_PAYLOAD:
        return UNSIGNED_PAYLOAD
    return hashlib.sha256(body).hexdigest()


def canonical_request(method: str, raw_path: str, raw_query: str, headers: dict[str, str],
                      signed_headers: str, body_digest: str) -> str:
    names = signed_headers.split(";")
    header_block = "".join(f"{name.lower()}:{headers[name.lower()].strip()}\n" for name in names)
    return "\n".join([method.upper(), canonical_uri(raw_path), canonical_query(raw_query),
                      header_block, signed_headers, body_digest])


def compute_signature(secret_key: str, sdk_date: str, canonical: str) -> str:
    string_to_sign = "\n".join([SIGNING_ALGORITHM, sdk_date,
                                hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    return hmac.new(secret_key.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def parse_authorization(value: str) -> Optional[dict[str, str]]:
    """'SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex' -> its three fields, or None."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme != SIGNING_ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            return None
        fields[key] = item.strip()
    if not all(fields.get(key) for key in ("Access", "SignedHeaders", "Signature")):
        return None
    return fields


def verify_signature(method: str, raw_path: str, raw_query: str, headers: dict[str, str], body: bytes,
                     credentials: dict[str, Credential], now: float) -> Optional[str]:
    """None when the request's AK/SK signature is valid, else why it is refused."""
    fields = parse_authorization(headers.get("authorization", ""))
    if fields is None:
        return "malformed SDK-HMAC-SHA256 authorization header"
    credential = credentials.get(fields["Access"])
    if credential is None:
        return "access key not found"
    signed_headers = fields["SignedHeaders"]
    signed = [name.lower() for name in signed_headers.split(";")]
    for required in ("x-sdk-date", "host"):
        if required not in signed:
            return f"{required} is not a signed header"
    sdk_date = headers.get("x-sdk-date")
    if sdk_date is None:
        return "x-sdk-date header missing"
    try:
        signed_at = datetime.strptime(sdk_date, SDK_DATE_FORMAT).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return "x-sdk-date malformed"
    if abs(now - signed_at) > MAX_SIGNATURE_SKEW:
        return "signature expired (x-sdk-date too far from now)"
    for name in signed:
        if name not in headers:
            return f"signed header {name} missing from request"
    if credential.security_token is not None:
        if headers.get("x-security-token") != credential.security_token:
            return "security token missing or wrong"
        if "x-security-token" not in signed:
            return "x-security-token is not a signed header"
    canonical = canonical_request(method, raw_path, raw_query, headers, signed_headers,
                                  payload_digest(headers, body))
    expected = compute_signature(credential.sk, sdk_date, canonical)
    if not hmac.compare_digest(expected, fields["Signature"].lower()):
        return "verify aksk signature fail"
    return None


# --------------------------------------------------------------------------------------------------
# Authentication state: tokens, IAM-issued tokens, AK/SK credentials, IAM users
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IamUser:
    name: str
    password: str
    domain: str


TOKEN, AKSK = "token", "aksk"  # how a request was authenticated


def project_header_problem(headers: dict[str, str], iam_project_id: str, region: str) -> Optional[str]:
    """Why an AK/SK-signed request's X-Project-Id is not right for the simulated region, or None. The SDKs send
    the region's IAM project there (core/auth/basic_credentials.go), signed like the other headers."""
    value = headers.get("x-project-id")
    if value is None:
        return "x-project-id header missing"
    fields = parse_authorization(headers.get("authorization", "")) or {}
    if "x-project-id" not in [name.lower() for name in fields.get("SignedHeaders", "").split(";")]:
        return "x-project-id is not a signed header"
    if value.strip() != iam_project_id:
        return f"x-project-id is not the IAM project of region {region}"
    return None


class AuthRegistry:
    def __init__(self, tokens: list[str], credentials: list[Credential], iam_users: list[IamUser]):
        self.static_tokens = set(tokens)
        self.iam_tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self.credentials = {c.ak: c for c in credentials}
        self.iam_users = {(u.domain, u.name): u for u in iam_users}
        self.token_ttl = DEFAULT_TOKEN_TTL

    def authenticate(self, request: SimRequest, now: float) -> tuple[Optional[str], str]:
        """(None, how) when the request is authenticated, how being TOKEN or AKSK; else (the reason, "")."""
        reason = "x-auth-token not found"
        token = request.header("x-auth-token")
        if token is not None:
            if token in self.static_tokens:
                return None, TOKEN
            expiry = self.iam_tokens.get(token)
            if expiry is not None and now < expiry:
                return None, TOKEN
            reason = "token expired" if expiry is not None else "decrypt token fail"
        authorization = request.header("authorization")
        if authorization and authorization.strip().startswith(SIGNING_ALGORITHM):
            reason = verify_signature(request.method, request.path, request.query, request.headers,
                                      request.body, self.credentials, now)
            return reason, AKSK if reason is None else ""
        return reason, ""

    def check_password(self, name: str, password: str, domain: str) -> Optional[IamUser]:
        user = self.iam_users.get((domain, name))
        if user is None or not hmac.compare_digest(user.password, password):
            return None
        return user

    def issue_token(self, now: float) -> tuple[str, float]:
        # Real IAM tokens are long opaque strings starting with MII; the shape does not matter to clients.
        token = "MIIsim" + secrets.token_urlsafe(48)
        expiry = now + self.token_ttl
        self.iam_tokens[token] = expiry
        return token, expiry

    def expire_iam_tokens(self, now: float) -> int:
        for token in self.iam_tokens:
            self.iam_tokens[token] = min(self.iam_tokens[token], now)
        return len(self.iam_tokens)


# --------------------------------------------------------------------------------------------------
# Pipelines and runs
# --------------------------------------------------------------------------------------------------

@dataclass
class Plan:
    """How a run behaves once it is started or retried: RUNNING for `polls` detail reads, then PAUSED for
    `paused_polls` detail reads, then `outcome`. `outcomes` are consumed one per start/retry first."""

    polls: int = 2
    paused_polls: int = 0
    outcome: str = "COMPLETED"
    outcomes: list[str] = field(default_factory=list)

    def next_outcome(self) -> str:
        return self.outcomes.pop(0) if self.outcomes else self.outcome

    def to_json(self) -> dict:
        return {"polls": self.polls, "paused_polls": self.paused_polls, "outcome": self.outcome,
                "outcomes": list(self.outcomes)}


@dataclass
class Progress:
    """Where a run in flight is within its plan."""

    running_left: int
    paused_left: int
    outcome: str

    def to_json(self) -> dict:
        return {"running_polls_left": self.running_left, "paused_polls_left": self.paused_left,
                "outcome": self.outcome}


@dataclass
class Pipeline:
    project_id: str
    pipeline_id: str
    name: str
    create_time: int
    update_time: int
    plan: Plan = field(default_factory=Plan)  # for runs started through the API
    next_run_number: int = 1
    start_error: Optional[dict] = None  # {"status", "error_code", "error_msg"}: every start fails so

    @property
    def creator_id(self) -> str:
        return derived_id("user", "sim-user")


# Every run has the same two stages; the second one's job is the one that fails or pauses for a review.
BUILD_STAGE, BUILD_JOB = "Build", "compile"
TEST_STAGE, TEST_JOB = "Test", "unit-tests"
# (step name, task) of each job. Task names are the simulator's guesses in the service's official_* style.
BUILD_STEPS = (("checkout", "official_devcloud_codeCheckout"), ("build", "official_devcloud_cloudBuild"))
TEST_STEP = ("run-tests", "official_devcloud_cloudBuild")
REVIEW_STEP = ("manual-review", "official_devcloud_manualReview")
JOB_MESSAGES = {
    "FAILED": "unit-tests failed: 3 of 120 tests failed",
    "PAUSED": "waiting for manual review",
    "SUSPEND": "waiting for a delay to pass",
    "CANCELED": "canceled by user",
}
REFUSED_MESSAGE = "manual review refused"
PASSED_MESSAGE = "manual review passed"
# The status a step waiting for its review shows (the SDK documents RUNNING, CANCELED, COMPLETED, FAILED for
# steps; a review waits on a person, as a PAUSED run does).
REVIEW_PENDING_STATUS = "PAUSED"
LONG_LOG_LINES = 2500  # the failed run-tests step's log, to page through
SHORT_TEST_LOG_LINES = 120
LOG_START_LINES = 3  # lines of a running step's log before any poll
LOG_GROWTH_PER_POLL = 50  # lines a running step's log gains per detail read


def derived_id(*parts: str) -> str:
    """A 32-hex id derived from its parts: stable across re-creation, so seeded job ids are predictable."""
    return hashlib.md5("/".join(parts).encode()).hexdigest()


@dataclass
class Review:
    """The manual review of a run that reached PAUSED: None until someone passes or refuses it."""

    decision: Optional[str] = None  # "pass" or "refuse"
    decided_at: int = 0

    def to_json(self) -> dict:
        return {"decision": self.decision, "decided_at": self.decided_at}


def test_log(run_id: str, failed: bool) -> list[str]:
    """The run-tests step's whole log: long and failing, or short and passing. Deterministic per run."""
    count = LONG_LOG_LINES if failed else SHORT_TEST_LOG_LINES
    lines = [f"[{n:04d}/{count}] run-tests: tests/unit/module_{n % 17:02d}_spec test_case_{n:04d} of run {run_id}"
             f" ... {'FAILED' if failed and n > count - 3 else 'ok'} ({(n * 37) % 1000} ms)"
             for n in range(1, count)]
    lines.append(f"[{count:04d}/{count}] run-tests: "
                 + (JOB_MESSAGES["FAILED"] if failed else "all 120 tests passed"))
    return lines


@dataclass
class Run:
    run_id: str
    project_id: str
    pipeline_id: str
    run_number: int
    status: str
    plan: Plan
    start_time: int
    end_time: int
    update_time: int
    trigger_type: str = "Manual"
    executor_name: str = "sim-user"
    progress: Optional[Progress] = None
    retries: int = 0
    stops: int = 0
    detail_reads: int = 0
    review: Optional[Review] = None  # set when the run reaches PAUSED
    target_outcome: str = "COMPLETED"  # where the current start/retry was headed (its running log follows it)
    polls_in_flight: int = 0  # detail reads since the current start/retry, while in flight (log growth)

    @property
    def test_job_id(self) -> str:
        return derived_id(self.run_id, TEST_JOB)

    @property
    def build_job_id(self) -> str:
        return derived_id(self.run_id, BUILD_JOB)

    def step_id(self, job: str, step: str) -> str:
        return derived_id(self.run_id, job, step)

    @property
    def review_step_id(self) -> str:
        return self.step_id(TEST_JOB, REVIEW_STEP[0])

    @property
    def executor_id(self) -> str:
        return derived_id("user", self.executor_name)

    def settle(self, status: str, at: int) -> None:
        self.status = status
        self.update_time = at
        self.end_time = at if status in TERMINAL_STATUSES else 0
        if status == "PAUSED" and self.review is None:
            self.review = Review()

    def begin(self, at: int) -> None:
        """Start or retry: RUNNING under the plan, taking the next outcome."""
        self.progress = Progress(self.plan.polls, self.plan.paused_polls, self.plan.next_outcome())
        self.target_outcome = self.progress.outcome
        self.review = None
        self.polls_in_flight = 0
        self.start_time = at
        self.settle("RUNNING", at)

    def observe(self, at: int) -> None:
        """One detail read moves a run in flight one step along its plan."""
        self.detail_reads += 1
        progress = self.progress
        if progress is None:
            return
        self.polls_in_flight += 1
        if progress.running_left > 0:
            progress.running_left -= 1
            if self.status != "RUNNING":
                self.settle("RUNNING", at)
        elif progress.paused_left > 0:
            progress.paused_left -= 1
            if self.status != "PAUSED":
                self.settle("PAUSED", at)
        else:
            self.progress = None
            self.settle(progress.outcome, at)

    @property
    def review_pending(self) -> bool:
        return self.status == "PAUSED" and self.review is not None and self.review.decision is None

    def decide_review(self, decision: str, at: int) -> None:
        """Pass: the run carries on to its planned outcome (RUNNING now, the outcome at the next detail read).
        Refuse: the run ends FAILED at once."""
        self.review = Review(decision, at)
        if decision == "refuse":
            self.progress = None
            self.settle("FAILED", at)
            return
        if self.progress is None:  # created PAUSED through the control API: head for the plan's outcome
            self.progress = Progress(0, 0, self.plan.outcome)
            self.target_outcome = self.plan.outcome
        self.progress.running_left = self.progress.paused_left = 0
        self.settle("RUNNING", at)

    # ---- jobs, steps and their logs, as the run detail shows them

    def _test_step_status(self) -> str:
        if self.review is not None:
            return "COMPLETED"  # the tests ran before the review
        return {"SUSPEND": "RUNNING", "IGNORED": "COMPLETED", "PAUSED": "COMPLETED"}.get(self.status, self.status)

    def _review_step_status(self) -> tuple[str, str]:
        review = self.review
        if review is None:
            return "INIT", ""
        if review.decision == "refuse":
            return "FAILED", REFUSED_MESSAGE
        if review.decision == "pass":
            return "COMPLETED", PASSED_MESSAGE
        if self.status == "PAUSED":
            return REVIEW_PENDING_STATUS, JOB_MESSAGES["PAUSED"]
        if self.status == "CANCELED":
            return "CANCELED", JOB_MESSAGES["CANCELED"]
        return "COMPLETED", ""  # the plan moved on past the pause

    def steps_of(self, job: str) -> list[dict]:
        """The steps of a job: {id, name, task, status, message, start_time, end_time}."""
        minute = 60_000
        if job == BUILD_JOB:
            return [{"id": self.step_id(job, name), "name": name, "task": task, "status": "COMPLETED",
                     "message": "", "start_time": self.start_time + i * minute,
                     "end_time": self.start_time + (i + 1) * minute}
                    for i, (name, task) in enumerate(BUILD_STEPS)]
        status = self._test_step_status()
        steps = [{"id": self.step_id(job, TEST_STEP[0]), "name": TEST_STEP[0], "task": TEST_STEP[1],
                  "status": status, "message": JOB_MESSAGES.get(status, ""),
                  "start_time": self.start_time + 2 * minute,
                  "end_time": self.update_time if status in TERMINAL_STATUSES else 0}]
        if self.review is not None:
            review_status, message = self._review_step_status()
            steps.append({"id": self.review_step_id, "name": REVIEW_STEP[0], "task": REVIEW_STEP[1],
                          "status": review_status, "message": message,
                          "start_time": self.start_time + 3 * minute,
                          "end_time": self.update_time if review_status in TERMINAL_STATUSES else 0})
        return steps

    def find_step(self, job_id: str, step_id: str) -> Optional[tuple[str, dict]]:
        """(job name, step) for ids of this run, or None."""
        for job in (BUILD_JOB, TEST_JOB):
            if derived_id(self.run_id, job) == job_id:
                for step in self.steps_of(job):
                    if step["id"] == step_id:
                        return job, step
        return None

    def step_log(self, job: str, step: dict) -> list[str]:
        """A step's log lines as of now. A running step's log is a growing prefix of its final log, so an
        offset into it stays valid while it grows."""
        name, status = step["name"], step["status"]
        if job == BUILD_JOB:
            count = 6 if name == "checkout" else 40
            return [f"[{n:02d}/{count}] {name}: step {n} of run {self.run_id}" for n in range(1, count + 1)]
        if name == REVIEW_STEP[0]:
            lines = ["manual review requested: approvers sim-user", "waiting for manual review"]
            if status != REVIEW_PENDING_STATUS and status != "INIT":
                lines.append(f"manual review ended: {step['message'] or status.lower()}")
            return lines
        if status == "FAILED":
            return test_log(self.run_id, True)
        if status == "COMPLETED":
            return test_log(self.run_id, False)
        whole = test_log(self.run_id, self.target_outcome == "FAILED")
        shown = min(LOG_START_LINES + LOG_GROWTH_PER_POLL * self.polls_in_flight, len(whole) - 1)
        lines = whole[:shown]
        if status == "CANCELED":
            lines.append("run-tests: canceled by user")
        return lines

    def artifacts(self) -> list[dict]:
        """What the run produced: a COMPLETED run has two artifacts, every other run none."""
        if self.status != "COMPLETED":
            return []
        found = []
        for name, kind, size in (("demo-app.jar", "jar", 1_048_576), ("demo-app.tar.gz", "tar.gz", 3_145_728)):
            artifact_id = derived_id(self.run_id, "artifact", name)
            found.append({
                "project_id": self.project_id, "name": name, "artifact_version": f"1.0.{self.run_number}",
                "upload_target": "releasemanager", "artifact_package_type": kind,
                "artifact_uri": f"/{self.project_id}/{self.pipeline_id}/{self.run_number}/{name}",
                "artifact_download_url_with_id": f"https://devrepo.sim.invalid/download/{artifact_id}",
                "artifact_type": "package",
                "hash_code": [{"hash_type": "sha256", "hash_value": hashlib.sha256(artifact_id.encode()).hexdigest()}],
                "job_id": self.build_job_id, "build_no": str(self.run_number),
                "daily_build_number": f"{datetime.fromtimestamp(self.start_time / 1000, timezone.utc):%Y%m%d}.{self.run_number}",
                "file_size": str(size),
            })
        return found

    def _job(self, job: str, job_id: str, status: str, message: str) -> dict:
        steps = self.steps_of(job)
        return {"id": job_id, "category": "Build", "name": job, "status": status, "message": message,
                "start_time": steps[0]["start_time"],
                "end_time": steps[-1]["end_time"] if status in TERMINAL_STATUSES else 0, "steps": steps}

    def render(self, pipeline: Pipeline) -> dict:
        """The run object as the API shows it."""
        test_status, test_message = self.status, JOB_MESSAGES.get(self.status, "")
        if self.review is not None and self.review.decision == "refuse":
            test_message = REFUSED_MESSAGE
        return {
            "id": self.run_id,
            "pipeline_id": self.pipeline_id,
            "name": pipeline.name,
            "status": self.status,
            "run_number": self.run_number,
            "trigger_type": self.trigger_type,
            "executor_name": self.executor_name,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "stages": [
                {"name": BUILD_STAGE, "status": "COMPLETED",
                 "jobs": [self._job(BUILD_JOB, self.build_job_id, "COMPLETED", "")]},
                {"name": TEST_STAGE, "status": self.status,
                 "jobs": [self._job(TEST_JOB, self.test_job_id, test_status, test_message)]},
            ],
            "detail_url": (f"https://devcloud.sim.invalid/cicd/project/{self.project_id}/pipeline/detail/"
                           f"{self.pipeline_id}/{self.run_id}?v={self.run_number}"),
        }

    def state(self, pipeline: Pipeline) -> dict:
        """Internal state for the control API."""
        return {
            "run_id": self.run_id, "project_id": self.project_id, "pipeline_id": self.pipeline_id,
            "run_number": self.run_number, "status": self.status, "retries": self.retries,
            "stops": self.stops, "detail_reads": self.detail_reads,
            "review": self.review.to_json() if self.review else None,
            "plan": self.plan.to_json(),
            "progress": self.progress.to_json() if self.progress else None,
            "run": self.render(pipeline),
        }


class World:
    """All pipelines and runs. Run ids are unique across projects."""

    def __init__(self) -> None:
        self.pipelines: dict[tuple[str, str], Pipeline] = {}
        self.runs: dict[str, Run] = {}

    def pipeline(self, project_id: str, pipeline_id: str) -> Optional[Pipeline]:
        return self.pipelines.get((project_id, pipeline_id))

    def ensure_pipeline(self, project_id: str, pipeline_id: str, name: Optional[str], at: int) -> Pipeline:
        pipeline = self.pipeline(project_id, pipeline_id)
        if pipeline is None:
            pipeline = Pipeline(project_id, pipeline_id, name or f"pipeline-{pipeline_id[:6]}", at, at)
            self.pipelines[(project_id, pipeline_id)] = pipeline
        elif name:
            pipeline.name = name
        return pipeline

    def find_run(self, project_id: str, pipeline_id: str, run_id: str) -> Optional[Run]:
        run = self.runs.get(run_id)
        if run is None or run.project_id != project_id or run.pipeline_id != pipeline_id:
            return None
        return run

    def runs_of(self, pipeline: Pipeline) -> list[Run]:
        return [run for run in self.runs.values()
                if run.project_id == pipeline.project_id and run.pipeline_id == pipeline.pipeline_id]

    def latest_run(self, pipeline: Pipeline) -> Optional[Run]:
        return max(self.runs_of(pipeline), key=lambda run: run.run_number, default=None)

    def pipelines_of(self, project_id: str) -> list[Pipeline]:
        return [p for p in self.pipelines.values() if p.project_id == project_id]

    def new_run_id(self) -> str:
        while True:
            run_id = uuid.uuid4().hex
            if run_id not in self.runs:
                return run_id

    def put_run(self, pipeline: Pipeline, run_id: str, status: str, plan: Plan, at: int,
                run_number: Optional[int] = None) -> Run:
        """Create (or replace) a run. A run created RUNNING is in flight under its plan at once."""
        previous = self.runs.get(run_id)
        if run_number is None:
            if previous is not None and previous.pipeline_id == pipeline.pipeline_id \
                    and previous.project_id == pipeline.project_id:
                run_number = previous.run_number
            else:
                run_number = pipeline.next_run_number
        pipeline.next_run_number = max(pipeline.next_run_number, run_number + 1)
        run = Run(run_id, pipeline.project_id, pipeline.pipeline_id, run_number, status, plan,
                  start_time=at, end_time=0, update_time=at)
        if status == "RUNNING":
            run.begin(at)
        else:
            run.settle(status, at)
        self.runs[run_id] = run
        pipeline.update_time = max(pipeline.update_time, at)
        return run

    def seed(self) -> dict:
        """The demo data of --seed; returns the ids for the startup line."""
        hour = 3600 * 1000
        base = now_ms() - 4 * hour
        build = self.ensure_pipeline(SEED_PROJECT, SEED_PIPELINE, "demo-build", base)
        deploy = self.ensure_pipeline(SEED_PROJECT, SEED_PIPELINE_2, "demo-deploy", base + 1000)
        layout = [(build, "b" * 32, "COMPLETED"), (build, "c" * 32, "FAILED"),
                  (build, SEED_RUN, "FAILED"), (deploy, "d" * 32, "COMPLETED")]
        for offset, (pipeline, run_id, status) in enumerate(layout, start=1):
            started = base + offset * hour // 2
            run = self.put_run(pipeline, run_id, status, Plan(), started)
            run.start_time, run.end_time, run.update_time = started, started + 600_000, started + 600_000
        failed = self.runs[SEED_RUN]
        return {
            "project_id": SEED_PROJECT, "pipeline_id": SEED_PIPELINE, "run_id": SEED_RUN,
            # the failed run-tests step of run_id: its log is the long one to page through
            "long_log": {"run_id": SEED_RUN, "job_run_id": failed.test_job_id,
                         "step_run_id": failed.step_id(TEST_JOB, TEST_STEP[0]), "lines": LONG_LOG_LINES},
            "pipelines": [
                {"pipeline_id": pipeline.pipeline_id, "name": pipeline.name,
                 "runs": [{"run_id": run.run_id, "run_number": run.run_number, "status": run.status}
                          for run in sorted(self.runs_of(pipeline), key=lambda r: r.run_number)]}
                for pipeline in (build, deploy)
            ],
        }


# --------------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------------

# kind -> (HTTP status, error_code, error_msg, whether the body carries request_id)
JSON_ERROR_FAULTS = {
    "unauthorized": (401, "APIGW.0301", "Incorrect IAM authentication information: token expired", True),
    "forbidden": (403, "APIGW.0302", "The IAM user is forbidden in the currently selected region", True),
    "not_found": (404, "DEVPIPE.00011104", "pipeline run not found", True),
    "error_code_200": (200, "DEVPIPE.00011201", "the pipeline run operation failed", False),
    "throttled": (429, "APIGW.0308",
                  "The throttling threshold has been reached: policy user over ratelimit, limit:20, time:1 minute",
                  True),
    "coct_throttled": (500, "COCT.0070003", "request too frequent", False),
    "unavailable": (503, "APIGW.0201", "Request unavailable: the backend service is temporarily unavailable",
                    True),
}
HTML_FAULTS = {"server_html": (500, "Internal Server Error"), "bad_gateway": (502, "Bad Gateway"),
               "gateway_timeout": (504, "Gateway Timeout")}
RETRY_AFTER_FAULTS = frozenset({"throttled", "unavailable"})
CONNECTION_FAULTS = frozenset({"slow", "close", "drop_after_processing", "bare_lf"})
HANG_UP_FAULTS = frozenset({"close", "drop_after_processing"})
OTHER_FAULTS = frozenset({"success_false", "not_json", "wrong_shape", "oversize", "redirect"})
FAULT_KINDS = frozenset(JSON_ERROR_FAULTS) | frozenset(HTML_FAULTS) | CONNECTION_FAULTS | OTHER_FAULTS
FAULT_FILTERS = ("run_id", "path", "method", "listener")
FAULT_OPTIONS = ("retry_after", "delay", "size", "status", "body", "error_code", "error_msg")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
DEFAULT_OVERSIZE = 9 * 1024 * 1024
DEFAULT_SLOW_DELAY = 5.0
DEFAULT_RETRY_AFTER = "2"
QUOTA_MESSAGE = "The throttling threshold has been reached: policy user over ratelimit, limit:{:g}, time:1 second"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Fault:
    fault_id: int
    kind: str
    filters: dict[str, str]
    times: Optional[int]  # remaining uses; None = forever
    options: dict[str, Any]

    @classmethod
    def from_json(cls, obj: Any, fault_id: int) -> "Fault":
        if not isinstance(obj, dict):
            raise ControlError("a fault must be a JSON object")
        unknown = set(obj) - {"kind", "times", *FAULT_FILTERS, *FAULT_OPTIONS}
        if unknown:
            raise ControlError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        kind = obj.get("kind")
        if kind not in FAULT_KINDS:
            raise ControlError(f"unknown fault kind {kind!r}; known: {', '.join(sorted(FAULT_KINDS))}")
        filters = {}
        for name in FAULT_FILTERS:
            value = obj.get(name)
            if value is None:
                continue
            if not isinstance(value, str) or not value:
                raise ControlError(f"fault {name} must be a non-empty string")
            filters[name] = value
        if filters.get("listener") not in (None, *LISTENERS):
            raise ControlError(f"fault listener must be one of {', '.join(LISTENERS)}")
        times = obj.get("times", 1)
        if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 0):
            raise ControlError("fault times must be a non-negative integer or null")
        options = {name: obj[name] for name in FAULT_OPTIONS if name in obj}
        cls._check_options(options)
        return cls(fault_id, kind, filters, times or None, options)

    @staticmethod
    def _check_options(options: dict[str, Any]) -> None:
        retry_after = options.get("retry_after")
        if retry_after is not None and not (isinstance(retry_after, str) or is_number(retry_after)):
            raise ControlError("retry_after must be a string, a number or null")
        if "delay" in options and not (is_number(options["delay"]) and options["delay"] >= 0):
            raise ControlError("delay must be a non-negative number of seconds")
        if "size" in options and not (isinstance(options["size"], int) and not isinstance(options["size"], bool)
                                      and options["size"] >= 0):
            raise ControlError("size must be a non-negative integer")
        if "status" in options and options["status"] not in REDIRECT_STATUSES:
            raise ControlError(f"redirect status must be one of {REDIRECT_STATUSES}")
        for name in ("error_code", "error_msg"):
            if name in options and not isinstance(options[name], str):
                raise ControlError(f"{name} must be a string")

    def matches(self, request: SimRequest) -> bool:
        f = self.filters
        if "listener" in f and request.listener != f["listener"]:
            return False
        if "method" in f and request.method.upper() != f["method"].upper():
            return False
        if "path" in f and f["path"] not in request.path:
            return False
        if "run_id" in f and f["run_id"] not in request.path and f["run_id"] not in request.query:
            return False
        return True

    def to_json(self) -> dict:
        return {"id": self.fault_id, "kind": self.kind, **self.filters, "times": self.times, **self.options}


class FaultQueue:
    def __init__(self) -> None:
        self.pending: list[Fault] = []
        self.next_id = 1

    def add(self, objects: list[Any]) -> list[Fault]:
        # Validate all before queuing any, so a bad list changes nothing.
        faults = [Fault.from_json(obj, self.next_id + i) for i, obj in enumerate(objects)]
        self.next_id += len(faults)
        self.pending.extend(faults)
        return faults

    def peek(self, request: SimRequest) -> Optional[Fault]:
        """The fault take() would return, without using it up."""
        return next((fault for fault in self.pending if fault.matches(request)), None)

    def take(self, request: SimRequest) -> Optional[Fault]:
        """The first queued fault matching the request, used up by one."""
        for fault in self.pending:
            if fault.matches(request):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self.pending.remove(fault)
                return fault
        return None


def format_retry_after(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def oversize_reply(size: int) -> Reply:
    """A valid JSON object of size + 1 bytes, produced in chunks rather than built in memory."""
    prefix, suffix = b'{"padding":"', b'","success":true}'
    padding = max(size + 1 - len(prefix) - len(suffix), 0)
    block = b"x" * 65536

    def chunks() -> Iterator[bytes]:
        yield prefix
        left = padding
        while left > 0:
            n = min(left, len(block))
            yield block[:n]
            left -= n
        yield suffix

    return Reply(200, stream=chunks, stream_length=len(prefix) + padding + len(suffix))


def canned_fault_reply(fault: Fault, request: SimRequest, redirect_base: str) -> Reply:
    """The reply of a fault that answers in place of the service (all kinds but slow/close/drop)."""
    options = fault.options
    if fault.kind in JSON_ERROR_FAULTS:
        status, code, message, with_request_id = JSON_ERROR_FAULTS[fault.kind]
        headers = []
        if fault.kind in RETRY_AFTER_FAULTS:
            retry_after = options.get("retry_after", DEFAULT_RETRY_AFTER)
            if retry_after is not None:
                headers.append(("Retry-After", format_retry_after(retry_after)))
        return error_reply(request, status, options.get("error_code", code), options.get("error_msg", message),
                           with_request_id, headers)
    if fault.kind in HTML_FAULTS:
        return html_reply(*HTML_FAULTS[fault.kind])
    if fault.kind == "success_false":
        return json_reply(200, {"success": False})
    if fault.kind == "not_json":
        body = options.get("body", "<html><body>OK</body></html>")
        text = body if isinstance(body, str) else json.dumps(body)
        return Reply(200, text.encode("utf-8"))
    if fault.kind == "wrong_shape":
        return json_reply(200, options.get("body", {"unexpected": True}))
    if fault.kind == "oversize":
        return oversize_reply(options.get("size", DEFAULT_OVERSIZE))
    if fault.kind == "redirect":
        target = redirect_base + request.path + (f"?{request.query}" if request.query else "")
        return Reply(options.get("status", 302), content_type=None, headers=[("Location", target)])
    raise AssertionError(f"fault kind {fault.kind} has no canned reply")


# --------------------------------------------------------------------------------------------------
# Request log
# --------------------------------------------------------------------------------------------------

class RequestLog:
    """Every non-control request that reached a listener. seq never restarts, even after a clear."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.next_seq = 1

    def record(self, request: SimRequest, fault_kind: Optional[str]) -> None:
        self.records.append(request.to_record(self.next_seq, fault_kind))
        self.next_seq += 1

    def clear(self) -> int:
        count = len(self.records)
        self.records = []
        return count


# --------------------------------------------------------------------------------------------------
# The API: a gateway (route, id check, authentication) in front of the pipeline and IAM services
# --------------------------------------------------------------------------------------------------

def parse_json_body(request: SimRequest, expected: type, default: Any) -> Any:
    """The request body as JSON of the expected type; an empty body gives the default."""
    if not request.body.strip():
        return default
    try:
        value = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise invalid_parameter(request, "request body: not JSON") from None
    if not isinstance(value, expected):
        raise invalid_parameter(request, f"request body: expected a JSON {expected.__name__}")
    return value


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Request bodies accept exactly the fields of the SDKs' models (the Python SDK's ListPipelineRunsQuery has more
# than the Go SDK's: update_time, trigger_type, executor_ids, show_job_details, stage_id, job_id), each of the
# model's type. Kinds: str, int, bool, str_list, int_list, time (epoch-ms integer, digit string or
# "yyyy-MM-dd HH:mm:ss", as the SDKs document the times).
LIST_RUNS_FIELDS = {
    "status": "str_list", "start_time": "time", "end_time": "time", "update_time": "time",
    "trigger_type": "str_list", "executor_ids": "str_list", "offset": "int", "limit": "int", "sort_key": "str",
    "sort_dir": "str", "show_job_details": "bool", "stage_id": "str", "job_id": "str",
}
LIST_PIPELINES_FIELDS = {
    "project_id": "str", "project_ids": "str_list", "component_id": "str", "name": "str", "status": "str_list",
    "is_publish": "bool", "creator_id": "str", "creator_ids": "str_list", "executor_ids": "str_list",
    "start_time": "time", "end_time": "time", "offset": "int", "limit": "int", "sort_key": "str",
    "sort_dir": "str", "group_path_id": "str", "by_group": "bool", "is_banned": "bool", "query_new": "bool",
    "security_level_list": "int_list",
}
LOG_QUERY_FIELDS = {"start_offset": "int", "end_offset": "int", "limit": "int", "sort": "str"}
# Pass/refuse of a step that is not a manual review waiting for a decision (the simulator's choice of code).
REVIEW_REFUSAL_CODE = "DEVPIPE.00011206"


def parse_time(value: Any) -> Optional[int]:
    """Epoch ms from an integer, a digit string or "yyyy-MM-dd HH:mm:ss" (taken as UTC); None if none fits."""
    if is_integer(value):
        return value
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        try:
            return int(datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp() * 1000)
        except ValueError:
            return None
    return None


def field_fits(kind: str, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return is_integer(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str_list":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if kind == "int_list":
        return isinstance(value, list) and all(is_integer(item) for item in value)
    if kind == "time":
        return parse_time(value) is not None
    raise AssertionError(kind)


def check_fields(request: SimRequest, body: dict, fields: dict[str, str]) -> None:
    """400 invalid parameter for a field the model does not have, or one of the wrong type (null = absent)."""
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise invalid_parameter(request, f"parameter(s): unknown field(s) {', '.join(unknown)}")
    for name, kind in fields.items():
        if body.get(name) is not None and not field_fits(kind, body[name]):
            raise invalid_parameter(request, name)


def log_page(lines: list[str], start: int, end: int, limit: int, descending: bool) -> dict:
    """One page of a step's log. Offsets are byte offsets into the log (each line ends with "\\n"); a page is
    whole lines, the window [start_offset, end_offset) of the log. Both offsets 0: from the beginning (asc) or
    from the end (desc). Otherwise asc continues at end_offset (the lines after the previous page) and desc at
    start_offset (the lines before it), so feeding an answer's offsets back pages through the log, each line
    once. desc gives a window's lines last first."""
    starts, position = [], 0
    for line in lines:
        starts.append(position)
        position += len(line.encode("utf-8")) + 1
    starts.append(position)  # end of the log
    count = len(lines)
    if descending:
        cursor = position if start == 0 and end == 0 else start
        last = bisect.bisect_left(starts, cursor, 0, count)  # first line not before the cursor
        first = max(0, last - limit)
        chosen = list(reversed(lines[first:last]))
        has_more = first > 0
    else:
        cursor = end
        first = bisect.bisect_left(starts, cursor, 0, count)  # first line starting at or after the cursor
        last = min(count, first + limit)
        chosen = lines[first:last]
        has_more = last < count
    if chosen:
        window = (starts[first], starts[last])
    else:  # nothing there (yet): the same place again, so a follower polls on from it
        window = (start, end) if descending else (end, end)
    text = "".join(line + "\n" for line in chosen)
    return {"log": text, "has_more": has_more, "start_offset": str(window[0]), "end_offset": str(window[1])}


def paging(request: SimRequest, body: dict) -> tuple[int, int]:
    offset, limit = body.get("offset", 0), body.get("limit", 10)
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise invalid_parameter(request, "offset")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100:
        raise invalid_parameter(request, "limit")
    return offset, limit


def sort_order(request: SimRequest, body: dict, keys: tuple[str, ...]) -> tuple[str, bool]:
    sort_key, sort_dir = body.get("sort_key", keys[0]), body.get("sort_dir", "desc")
    if sort_key not in keys:
        raise invalid_parameter(request, "sort_key")
    if sort_dir not in ("asc", "desc"):
        raise invalid_parameter(request, "sort_dir")
    return sort_key, sort_dir == "desc"


def status_filter(request: SimRequest, body: dict) -> Optional[set[str]]:
    statuses = body.get("status")
    if statuses is None:
        return None
    if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses):
        raise invalid_parameter(request, "status")
    return set(statuses) or None


class PipelineService:
    """The CodeArts Pipeline operations. Called with the simulator lock held."""

    def __init__(self, sim: "Simulator"):
        self.sim = sim

    @property
    def world(self) -> World:
        return self.sim.world

    def _pipeline(self, request: SimRequest, ids: dict) -> Pipeline:
        pipeline = self.world.pipeline(ids["project_id"], ids["pipeline_id"])
        if pipeline is None:
            raise not_found(request, "pipeline")
        return pipeline

    def _run(self, request: SimRequest, ids: dict) -> tuple[Pipeline, Run]:
        pipeline = self.world.pipeline(ids["project_id"], ids["pipeline_id"])
        run = self.world.find_run(ids["project_id"], ids["pipeline_id"], ids["pipeline_run_id"])
        if pipeline is None or run is None:
            raise not_found(request, "pipeline run")
        return pipeline, run

    def retry_run(self, request: SimRequest, ids: dict) -> Reply:
        _, run = self._run(request, ids)
        if run.status not in RETRYABLE_STATUSES:
            return error_in_200("DEVPIPE.00011203", "the pipeline run can not be retried in its current state")
        run.retries += 1
        run.begin(now_ms())
        return json_reply(200, {"success": True})

    def start_run(self, request: SimRequest, ids: dict) -> Reply:
        pipeline = self._pipeline(request, ids)
        parse_json_body(request, dict, {})  # validated only; the recorded request keeps it for tests
        if pipeline.start_error is not None:
            failure = pipeline.start_error
            if failure["status"] < 300:  # the RunPipelineResponse's error_msg, in a 2xx without a run id
                return error_in_200(failure["error_code"], failure["error_msg"])
            return error_reply(request, failure["status"], failure["error_code"], failure["error_msg"])
        at = now_ms()
        # The pipeline's plan decides this run's first outcome; its later retries default to COMPLETED.
        plan = Plan(pipeline.plan.polls, pipeline.plan.paused_polls, "COMPLETED", [pipeline.plan.next_outcome()])
        run = self.world.put_run(pipeline, self.world.new_run_id(), "RUNNING", plan, at)
        return json_reply(200, {"pipeline_run_id": run.run_id})

    def stop_run(self, request: SimRequest, ids: dict) -> Reply:
        _, run = self._run(request, ids)
        if run.status in TERMINAL_STATUSES:
            return error_in_200("DEVPIPE.00011204", "the pipeline run can not be stopped in its current state")
        run.stops += 1
        run.progress = None
        run.settle("CANCELED", now_ms())
        return json_reply(200, {"success": True})

    def run_detail(self, request: SimRequest, ids: dict) -> Reply:
        pipeline, run = self._run(request, ids)
        run.observe(now_ms())
        return json_reply(200, run.render(pipeline))

    def list_runs(self, request: SimRequest, ids: dict) -> Reply:
        pipeline = self._pipeline(request, ids)
        body = parse_json_body(request, dict, {})
        check_fields(request, body, LIST_RUNS_FIELDS)
        offset, limit = paging(request, body)
        sort_key, descending = sort_order(request, body, ("start_time", "update_time"))
        statuses = status_filter(request, body)
        runs = self.world.runs_of(pipeline)
        if statuses:
            runs = [run for run in runs if run.status in statuses]
        for name, keep in (("start_time", lambda run, t: run.start_time >= t),
                           ("end_time", lambda run, t: run.start_time <= t),
                           ("update_time", lambda run, t: run.update_time >= t)):
            if body.get(name) is not None:
                bound = parse_time(body[name])
                runs = [run for run in runs if keep(run, bound)]
        if body.get("trigger_type"):
            runs = [run for run in runs if run.trigger_type in body["trigger_type"]]
        if body.get("executor_ids"):
            runs = [run for run in runs if run.executor_id in body["executor_ids"]]
        if body.get("show_job_details") and body.get("job_id"):
            runs = [run for run in runs if body["job_id"] in (run.build_job_id, run.test_job_id)]
        runs.sort(key=lambda run: (getattr(run, sort_key), run.run_number), reverse=descending)
        return json_reply(200, {"offset": offset, "limit": limit, "total": len(runs),
                                "pipeline_runs": [run.render(pipeline) for run in runs[offset:offset + limit]]})

    def _latest_run_json(self, pipeline: Pipeline) -> Optional[dict]:
        run = self.world.latest_run(pipeline)
        if run is None:
            return None
        return {**run.render(pipeline), "pipeline_run_id": run.run_id}

    def list_pipelines(self, request: SimRequest, ids: dict) -> Reply:
        body = parse_json_body(request, dict, {})
        check_fields(request, body, LIST_PIPELINES_FIELDS)
        offset, limit = paging(request, body)
        sort_key, descending = sort_order(request, body, ("create_time", "update_time", "name"))
        statuses = status_filter(request, body)
        name = body.get("name")
        pipelines = self.world.pipelines_of(ids["project_id"])
        if name:
            pipelines = [p for p in pipelines if name.lower() in p.name.lower()]
        creators = ([body["creator_id"]] if body.get("creator_id") else []) + (body.get("creator_ids") or [])
        if creators:
            pipelines = [p for p in pipelines if p.creator_id in creators]
        if body.get("is_publish") is True:  # no simulated pipeline is published
            pipelines = []
        if statuses:
            pipelines = [p for p in pipelines
                         if (latest := self.world.latest_run(p)) is not None and latest.status in statuses]
        pipelines.sort(key=lambda p: (getattr(p, sort_key), p.pipeline_id), reverse=descending)
        page = [{
            "pipeline_id": p.pipeline_id, "name": p.name, "project_id": p.project_id,
            "creator_id": p.creator_id, "creator_name": "sim-user", "create_time": p.create_time, "update_time": p.update_time,
            "is_collect": False, "latest_run": self._latest_run_json(p),
        } for p in pipelines[offset:offset + limit]]
        return json_reply(200, {"offset": offset, "limit": limit, "total": len(pipelines), "pipelines": page})

    def latest_runs(self, request: SimRequest, ids: dict) -> Reply:
        pipeline_ids = parse_json_body(request, list, None)
        if pipeline_ids is None:
            raise invalid_parameter(request, "request body: expected a JSON array of pipeline ids")
        latest = []
        for pipeline_id in pipeline_ids:
            if not isinstance(pipeline_id, str) or not ID_PATTERN.fullmatch(pipeline_id):
                raise invalid_parameter(request, "pipeline_id")
            pipeline = self.world.pipeline(ids["project_id"], pipeline_id)
            run_json = self._latest_run_json(pipeline) if pipeline else None
            if run_json is not None:  # unknown pipelines and pipelines that never ran are left out
                latest.append(run_json)
        return json_reply(200, latest)

    def _step(self, request: SimRequest, ids: dict) -> tuple[Pipeline, Run, str, dict]:
        pipeline, run = self._run(request, ids)
        found = run.find_step(ids["job_run_id"], ids["step_run_id"])
        if found is None:
            if ids["job_run_id"] not in (run.build_job_id, run.test_job_id):
                raise not_found(request, "job run")
            raise not_found(request, "step run")
        job, step = found
        return pipeline, run, job, step

    def _review(self, request: SimRequest, ids: dict, decision: str) -> Reply:
        _, run, _, step = self._step(request, ids)
        if step["id"] != run.review_step_id or not run.review_pending:
            raise ApiFailure(error_reply(request, 400, REVIEW_REFUSAL_CODE,
                                         "the step is not a manual review waiting for a decision"))
        run.decide_review(decision, now_ms())
        return json_reply(200, {"success": True})

    def pass_review(self, request: SimRequest, ids: dict) -> Reply:
        return self._review(request, ids, "pass")

    def refuse_review(self, request: SimRequest, ids: dict) -> Reply:
        return self._review(request, ids, "refuse")

    def step_log(self, request: SimRequest, ids: dict) -> Reply:
        body = parse_json_body(request, dict, None)
        if body is None:
            raise invalid_parameter(request, "request body: limit and sort are required")
        check_fields(request, body, LOG_QUERY_FIELDS)
        start, end = (body.get(name, 0) for name in ("start_offset", "end_offset"))
        for name, value in (("start_offset", start), ("end_offset", end)):
            if not is_integer(value) or value < 0:
                raise invalid_parameter(request, name)
        limit, sort = body.get("limit"), body.get("sort")
        if not is_integer(limit) or limit < 1:
            raise invalid_parameter(request, "limit")
        if sort not in ("asc", "desc"):
            raise invalid_parameter(request, "sort")
        _, run, job, step = self._step(request, ids)
        page = log_page(run.step_log(job, step), start, end, limit, sort == "desc")
        return json_reply(200, {**page, "step_run_id": step["id"]})

    def artifacts(self, request: SimRequest, ids: dict) -> Reply:
        _, run = self._run(request, ids)
        return json_reply(200, {"artifacts": run.artifacts()})

    def pipeline_detail(self, request: SimRequest, ids: dict) -> Reply:
        pipeline = self._pipeline(request, ids)
        definition = {"stages": [{"name": BUILD_STAGE, "jobs": [{"name": BUILD_JOB}]},
                                 {"name": TEST_STAGE, "jobs": [{"name": TEST_JOB}]}]}
        return json_reply(200, {
            "id": pipeline.pipeline_id, "name": pipeline.name, "description": f"simulated pipeline {pipeline.name}",
            "manifest_version": "3.0", "region": self.sim.region, "domain_id": SIM_DOMAIN_ID,
            "project_id": pipeline.project_id, "component_id": "", "is_publish": False,
            "creator_id": pipeline.creator_id, "creator_name": "sim-user", "updater_id": pipeline.creator_id,
            "create_time": pipeline.create_time, "update_time": pipeline.update_time, "is_collect": False,
            "sources": [], "variables": [], "schedules": [], "triggers": [], "group_id": "",
            "definition": json.dumps(definition), "security_level": 0,
        })

def iam_error(status: int, title: str, message: str) -> Reply:
    return json_reply(status, {"error": {"code": status, "message": message, "title": title}})


@dataclass(frozen=True)
class IamProject:
    project_id: str
    name: str
    domain_id: str

    def to_json(self, base_url: str) -> dict:
        return {"id": self.project_id, "name": self.name, "domain_id": self.domain_id, "enabled": True,
                "is_domain": False, "parent_id": self.domain_id, "description": "",
                "links": {"self": f"{base_url}/v3/projects/{self.project_id}"}}


def default_iam_projects(region: str, iam_project_id: str) -> list[IamProject]:
    """The simulated region's IAM project plus another region's, so that a look-up by name has to filter."""
    other = "cn-south-1" if region != "cn-south-1" else "cn-north-4"
    other_id = OTHER_IAM_PROJECT_ID if iam_project_id != OTHER_IAM_PROJECT_ID else derived_id("project", other)
    return [IamProject(iam_project_id, region, SIM_DOMAIN_ID), IamProject(other_id, other, SIM_DOMAIN_ID)]


def iam_unauthorized(reason: str) -> Reply:
    return iam_error(401, "Unauthorized", f"The request you have made requires authentication: {reason}")


class IamService:
    """POST /v3/auth/tokens with the password method, and GET /v3/projects (KeystoneListProjects)."""

    def __init__(self, sim: "Simulator"):
        self.sim = sim

    def _scope(self, auth_body: dict, user_domain: str) -> tuple[Optional[Reply], dict]:
        """The token's scope as its body shows it ({"project": ...} or {"domain": ...} or {}), or a refusal."""
        scope = auth_body.get("scope")
        if scope is None:
            return None, {}
        malformed = iam_error(400, "Bad Request", "The request body is malformed: scope wants exactly one of "
                              "project {id and/or name} or domain {id or name}")
        if not isinstance(scope, dict) or len(scope) != 1 or not set(scope) <= {"project", "domain"}:
            return malformed, {}
        kind, target = next(iter(scope.items()))
        if not isinstance(target, dict) or not target.get("id") and not target.get("name") \
                or not all(isinstance(target.get(k), (str, type(None))) for k in ("id", "name")):
            return malformed, {}
        domain = {"name": user_domain, "id": derived_id("domain", user_domain)}
        if kind == "domain":
            if target.get("name") not in (None, domain["name"]) or target.get("id") not in (None, domain["id"]):
                return iam_error(401, "Unauthorized", "The user has no access to the scoped domain."), {}
            return None, {"domain": domain}
        for project in self.sim.iam_projects:
            if target.get("id") in (None, project.project_id) and target.get("name") in (None, project.name):
                return None, {"project": {"name": project.name, "id": project.project_id,
                                          "domain": {"id": project.domain_id}}}
        return iam_error(401, "Unauthorized", "The project in the scope does not exist or the user has no access "
                         "to it."), {}

    def issue_token(self, request: SimRequest, ids: dict) -> Reply:
        try:
            body = json.loads(request.body)
            identity = body["auth"]["identity"]
            methods = identity["methods"]
            user = identity["password"]["user"]
            name, password, domain = user["name"], user["password"], user["domain"]["name"]
        except (ValueError, UnicodeDecodeError, KeyError, TypeError):
            return iam_error(400, "Bad Request", "The request body is malformed: expected "
                             "auth.identity.password.user.{name,password,domain.name}")
        if not (isinstance(methods, list) and "password" in methods
                and all(isinstance(v, str) for v in (name, password, domain))):
            return iam_error(400, "Bad Request", "The request body is malformed: expected the password method")
        auth = self.sim.auth
        iam_user = auth.check_password(name, password, domain)
        if iam_user is None:
            return iam_error(401, "Unauthorized", "The username or password is wrong.")
        refusal, scope = self._scope(body["auth"], domain)
        if refusal is not None:
            return refusal
        now = time.time()
        token, expiry = auth.issue_token(now)
        token_body: dict[str, Any] = {
            "expires_at": iso_utc(expiry),
            "issued_at": iso_utc(now),
            "methods": ["password"],
            "user": {"name": name, "id": derived_id(domain, name),
                     "domain": {"name": domain, "id": derived_id("domain", domain)}},
            "catalog": [],
            **scope,
        }
        return json_reply(201, {"token": token_body}, [("X-Subject-Token", token)])

    def list_projects(self, request: SimRequest, ids: dict) -> Reply:
        # The SDK's look-up sends no X-Project-Id: a valid token or AK/SK signature is enough here.
        reason, _ = self.sim.auth.authenticate(request, time.time())
        if reason is not None:
            return iam_unauthorized(reason)
        filters = {key: request.query_param(key) for key in ("name", "domain_id", "parent_id")}
        base_url = f"http://{request.header('host') or 'iam.sim.invalid'}"
        projects = [project.to_json(base_url) for project in self.sim.iam_projects
                    if all(value is None or project_value == value for value, project_value in
                           ((filters["name"], project.name), (filters["domain_id"], project.domain_id),
                            (filters["parent_id"], project.domain_id)))]
        self_link = f"{base_url}/v3/projects" + (f"?{request.query}" if request.query else "")
        return json_reply(200, {"projects": projects, "links": {"self": self_link, "previous": None, "next": None}})


def iso_utc(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable[[SimRequest, dict], Reply]
    authenticated: bool = True  # by the gateway, with APIGW errors (IAM routes check for themselves)
    query_ids: tuple[str, ...] = ()  # ids taken from the query string rather than the path


V5 = r"/v5/(?P<project_id>[^/]+)/api"
RUNS = V5 + r"/pipelines/(?P<pipeline_id>[^/]+)/pipeline-runs"
ID_NAMES = ("project_id", "pipeline_id", "pipeline_run_id")  # exactly 32 letters or digits
LOOSE_ID_NAMES = ("job_run_id", "step_run_id")  # any non-empty run of letters and digits
STEP = RUNS + r"/(?P<pipeline_run_id>[^/]+)/jobs/(?P<job_run_id>[^/]+)/steps/(?P<step_run_id>[^/]+)"


class Gateway:
    """Checks requests in the order the brief fixes: route, ids, authentication; then the service."""

    def __init__(self, sim: "Simulator"):
        self.sim = sim
        pipelines, iam = PipelineService(sim), IamService(sim)
        self.routes = [
            Route("PUT", re.compile(RUNS + r"/(?P<pipeline_run_id>[^/]+)/retry"), pipelines.retry_run),
            Route("POST", re.compile(V5 + r"/pipelines/(?P<pipeline_id>[^/]+)/run"), pipelines.start_run),
            Route("POST", re.compile(RUNS + r"/(?P<pipeline_run_id>[^/]+)/stop"), pipelines.stop_run),
            Route("GET", re.compile(RUNS + r"/detail"), pipelines.run_detail, query_ids=("pipeline_run_id",)),
            Route("POST", re.compile(RUNS + r"/list"), pipelines.list_runs),
            Route("POST", re.compile(V5 + r"/pipelines/list"), pipelines.list_pipelines),
            Route("POST", re.compile(V5 + r"/pipelines/status"), pipelines.latest_runs),
            Route("POST", re.compile(STEP + r"/pass"), pipelines.pass_review),
            Route("POST", re.compile(STEP + r"/refuse"), pipelines.refuse_review),
            Route("POST", re.compile(STEP + r"/logs"), pipelines.step_log),
            Route("GET", re.compile(RUNS + r"/(?P<pipeline_run_id>[^/]+)/artifacts"), pipelines.artifacts),
            Route("GET", re.compile(V5 + r"/pipelines/(?P<pipeline_id>[^/]+)"), pipelines.pipeline_detail),
            Route("POST", re.compile(r"/v3/auth/tokens"), iam.issue_token, authenticated=False),
            Route("GET", re.compile(r"/v3/projects"), iam.list_projects, authenticated=False),
        ]

    def match(self, request: SimRequest) -> tuple[Optional[Route], dict]:
        for route in self.routes:
            found = route.pattern.fullmatch(request.path)
            if found and route.method == request.method:
                ids = found.groupdict()
                for name in route.query_ids:
                    ids[name] = request.query_param(name) or ""
                return route, ids
        return None, {}

    def handle(self, request: SimRequest) -> Reply:
        route, ids = self.match(request)
        if route is None:
            return api_not_found(request)
        for name in ID_NAMES + LOOSE_ID_NAMES:
            pattern = ID_PATTERN if name in ID_NAMES else LOOSE_ID_PATTERN
            if name in ids and not pattern.fullmatch(ids[name]):
                return invalid_parameter(request, name).reply
        with self.sim.lock:
            if route.authenticated:
                reason, how = self.sim.auth.authenticate(request, time.time())
                if reason is None and how == AKSK:
                    reason = project_header_problem(request.headers, self.sim.iam_project_id, self.sim.region)
                if reason is not None:
                    return auth_failure(request, reason)
            try:
                return route.handler(request, ids)
            except ApiFailure as failure:
                return failure.reply


# --------------------------------------------------------------------------------------------------
# Control API (/_sim/...)
# --------------------------------------------------------------------------------------------------

def check_keys(obj: dict, allowed: tuple[str, ...], what: str) -> None:
    unknown = set(obj) - set(allowed)
    if unknown:
        raise ControlError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")


def require_id(obj: dict, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ControlError(f"{key} must be 32 ASCII letters or digits")
    return value


def optional_count(obj: dict, key: str, default: int) -> int:
    value = obj.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ControlError(f"{key} must be a non-negative integer")
    return value


def optional_status(obj: dict, key: str, default: str) -> str:
    value = obj.get(key, default)
    if value not in RUN_STATUSES:
        raise ControlError(f"{key} must be one of {', '.join(RUN_STATUSES)}")
    return value


def plan_from(obj: dict, base: Optional[Plan] = None) -> Plan:
    base = base or Plan()
    outcomes = obj.get("outcomes", list(base.outcomes))
    if not isinstance(outcomes, list) or any(o not in RUN_STATUSES for o in outcomes):
        raise ControlError(f"outcomes must be a list of {', '.join(RUN_STATUSES)}")
    return Plan(optional_count(obj, "polls", base.polls), optional_count(obj, "paused_polls", base.paused_polls),
                optional_status(obj, "outcome", base.outcome), list(outcomes))


PLAN_KEYS = ("polls", "paused_polls", "outcome", "outcomes")
DEFAULT_START_ERROR = {"status": 400, "error_code": "DEVPIPE.00011207",
                       "error_msg": "the pipeline can not be started: its definition is invalid"}


def start_error_from(value: Any) -> Optional[dict]:
    """null (starts work), a string (the error_msg, with the default status and code) or an object
    {"status"?, "error_code"?, "error_msg"?} (200..599; missing fields take the defaults)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"error_msg": value}
    if not isinstance(value, dict):
        raise ControlError("start_error must be null, a string or an object")
    check_keys(value, ("status", "error_code", "error_msg"), "start_error")
    failure = {**DEFAULT_START_ERROR, **value}
    if not is_integer(failure["status"]) or not 200 <= failure["status"] <= 599:
        raise ControlError("start_error status must be an integer from 200 to 599")
    if not all(isinstance(failure[k], str) for k in ("error_code", "error_msg")):
        raise ControlError("start_error error_code and error_msg must be strings")
    return failure


class ControlApi:
    """Test-facing endpoints: state setup, fault queue, request log, credentials. No auth, no faults."""

    def __init__(self, sim: "Simulator"):
        self.sim = sim
        self.routes: dict[tuple[str, str], Callable[[Any], Any]] = {
            ("POST", "/_sim/reset"): self.reset,
            ("POST", "/_sim/runs"): self.put_run,
            ("POST", "/_sim/pipelines"): self.put_pipeline,
            ("POST", "/_sim/faults"): self.add_faults,
            ("GET", "/_sim/faults"): self.list_faults,
            ("DELETE", "/_sim/faults"): self.clear_faults,
            ("GET", "/_sim/requests"): self.list_requests,
            ("DELETE", "/_sim/requests"): self.clear_requests,
            ("POST", "/_sim/tokens"): self.set_tokens,
            ("POST", "/_sim/tokens/expire"): self.expire_tokens,
            ("POST", "/_sim/credentials"): self.set_credentials,
            ("POST", "/_sim/iam/users"): self.set_iam_users,
            ("POST", "/_sim/iam/projects"): self.set_iam_projects,
            ("GET", "/_sim/iam/projects"): self.list_iam_projects,
            ("POST", "/_sim/shutdown"): self.shutdown,
            ("GET", "/_sim/quota"): self.get_quota,
            ("POST", "/_sim/quota"): self.set_quota,
        }

    def handle(self, request: SimRequest) -> Reply:
        try:
            with self.sim.lock:
                if request.method == "GET" and request.path.startswith("/_sim/runs/"):
                    return json_reply(200, self.run_state(request.path[len("/_sim/runs/"):]))
                action = self.routes.get((request.method, request.path))
                if action is None:
                    raise ControlError(f"no control endpoint {request.method} {request.path}", 404)
                result = action(self._body(request))
            if isinstance(result, Reply):
                return result
            return json_reply(200, result)
        except ControlError as error:
            return json_reply(error.status, {"error": str(error)})

    @staticmethod
    def _body(request: SimRequest) -> Any:
        if not request.body.strip():
            return {}
        try:
            return json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise ControlError("control request body is not JSON") from None

    @staticmethod
    def _object(body: Any) -> dict:
        if not isinstance(body, dict):
            raise ControlError("control request body must be a JSON object")
        return body

    def get_quota(self, body: Any) -> dict:
        return self.sim.quota.to_json()

    def set_quota(self, body: Any) -> dict:
        obj = self._object(body)
        check_keys(obj, ("rate",), "quota")
        rate = obj.get("rate")
        if rate is not None and not (is_number(rate) and rate > 0):
            raise ControlError("quota rate must be a positive number of requests per second, or null")
        self.sim.quota = Quota(rate)
        return self.sim.quota.to_json()

    def reset(self, body: Any) -> dict:
        self.sim.reset()
        return {"ok": True, "seed": self.sim.seed_info, **self.sim.region_info()}

    def put_run(self, body: Any) -> dict:
        obj = self._object(body)
        check_keys(obj, ("project_id", "pipeline_id", "run_id", "status", "name", *PLAN_KEYS), "run")
        project_id, pipeline_id = require_id(obj, "project_id"), require_id(obj, "pipeline_id")
        run_id = require_id(obj, "run_id") if "run_id" in obj else self.sim.world.new_run_id()
        status = optional_status(obj, "status", "FAILED")
        name = obj.get("name")
        if name is not None and not isinstance(name, str):
            raise ControlError("name must be a string")
        plan = plan_from(obj)
        world = self.sim.world
        at = now_ms()
        pipeline = world.ensure_pipeline(project_id, pipeline_id, name, at)
        run = world.put_run(pipeline, run_id, status, plan, at)
        return run.render(pipeline)

    def run_state(self, run_id: str) -> dict:
        run = self.sim.world.runs.get(run_id)
        if run is None:
            raise ControlError(f"no run {run_id}", 404)
        return run.state(self.sim.world.pipeline(run.project_id, run.pipeline_id))

    def put_pipeline(self, body: Any) -> dict:
        obj = self._object(body)
        check_keys(obj, ("project_id", "pipeline_id", "name", "start_error", *PLAN_KEYS), "pipeline")
        project_id, pipeline_id = require_id(obj, "project_id"), require_id(obj, "pipeline_id")
        name = obj.get("name")
        if name is not None and not isinstance(name, str):
            raise ControlError("name must be a string")
        plan = plan_from(obj, self.sim.world.pipeline(project_id, pipeline_id).plan
                         if self.sim.world.pipeline(project_id, pipeline_id) else None)
        start_error = start_error_from(obj["start_error"]) if "start_error" in obj else None
        pipeline = self.sim.world.ensure_pipeline(project_id, pipeline_id, name, now_ms())
        pipeline.plan = plan
        if "start_error" in obj:
            pipeline.start_error = start_error
        return {"project_id": project_id, "pipeline_id": pipeline_id, "name": pipeline.name,
                "plan": pipeline.plan.to_json(), "start_error": pipeline.start_error}

    def set_iam_projects(self, body: Any) -> dict:
        obj = self._object(body)
        check_keys(obj, ("projects",), "IAM projects")
        entries = obj.get("projects")
        if not isinstance(entries, list):
            raise ControlError("projects must be a list")
        projects = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise ControlError("each IAM project must be an object")
            check_keys(entry, ("id", "name", "domain_id"), "IAM project")
            if not all(isinstance(entry.get(k), str) and entry[k] for k in ("id", "name")):
                raise ControlError("each IAM project needs non-empty id and name strings")
            domain_id = entry.get("domain_id", SIM_DOMAIN_ID)
            if not isinstance(domain_id, str):
                raise ControlError("domain_id must be a string")
            projects.append(IamProject(entry["id"], entry["name"], domain_id))
        self.sim.iam_projects = projects
        return self.list_iam_projects({})

    def list_iam_projects(self, body: Any) -> dict:
        return {"projects": [{"id": p.project_id, "name": p.name, "domain_id": p.domain_id}
                             for p in self.sim.iam_projects]}

    def add_faults(self, body: Any) -> dict:
        objects = body["faults"] if isinstance(body, dict) and "faults" in body else [body]
        if not isinstance(objects, list):
            raise ControlError("faults must be a list")
        added = self.sim.faults.add(objects)
        return {"queued": [fault.to_json() for fault in added]}

    def list_faults(self, body: Any) -> dict:
        return {"faults": [fault.to_json() for fault in self.sim.faults.pending]}

    def clear_faults(self, body: Any) -> dict:
        count = len(self.sim.faults.pending)
        self.sim.faults.pending.clear()
        return {"cleared": count}

    def list_requests(self, body: Any) -> dict:
        return {"requests": list(self.sim.log.records)}

    def clear_requests(self, body: Any) -> dict:
        return {"cleared": self.sim.log.clear()}

    def set_tokens(self, body: Any) -> dict:
        tokens = self._object(body).get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            raise ControlError("tokens must be a list of non-empty strings")
        self.sim.auth.static_tokens = set(tokens)
        return {"tokens": sorted(tokens)}

    def expire_tokens(self, body: Any) -> dict:
        return {"expired": self.sim.auth.expire_iam_tokens(time.time())}

    def set_credentials(self, body: Any) -> dict:
        entries = self._object(body).get("credentials")
        if not isinstance(entries, list):
            raise ControlError("credentials must be a list")
        credentials = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise ControlError("each credential must be an object")
            check_keys(entry, ("ak", "sk", "security_token"), "credential")
            ak, sk, token = entry.get("ak"), entry.get("sk"), entry.get("security_token")
            if not (isinstance(ak, str) and ak and isinstance(sk, str) and sk):
                raise ControlError("each credential needs non-empty ak and sk strings")
            if token is not None and not isinstance(token, str):
                raise ControlError("security_token must be a string")
            credentials.append(Credential(ak, sk, token))
        self.sim.auth.credentials = {c.ak: c for c in credentials}
        return {"credentials": [c.ak for c in credentials]}

    def set_iam_users(self, body: Any) -> dict:
        obj = self._object(body)
        check_keys(obj, ("users", "token_ttl"), "IAM users")
        auth = self.sim.auth
        if "users" in obj:
            users = obj["users"]
            if not isinstance(users, list):
                raise ControlError("users must be a list")
            parsed = []
            for entry in users:
                if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str)
                                                          for k in ("name", "password", "domain")):
                    raise ControlError("each user needs name, password and domain strings")
                parsed.append(IamUser(entry["name"], entry["password"], entry["domain"]))
            auth.iam_users = {(u.domain, u.name): u for u in parsed}
        if "token_ttl" in obj:
            if not is_number(obj["token_ttl"]) or obj["token_ttl"] < 0:
                raise ControlError("token_ttl must be a non-negative number of seconds")
            auth.token_ttl = float(obj["token_ttl"])
        return {"users": sorted(f"{d}/{n}" for d, n in auth.iam_users), "token_ttl": auth.token_ttl}

    def shutdown(self, body: Any) -> Reply:
        reply = json_reply(200, {"ok": True})
        reply.then = self.sim.stop_event.set  # only once the answer is out
        return reply


# --------------------------------------------------------------------------------------------------
# The simulator: shared state and the per-request decision (fault or service)
# --------------------------------------------------------------------------------------------------

@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 0
    port_file: Optional[str] = None
    tokens: list[str] = field(default_factory=lambda: [DEFAULT_TOKEN])
    credentials: list[Credential] = field(default_factory=list)
    iam_users: list[IamUser] = field(default_factory=list)
    region: str = DEFAULT_REGION
    iam_project_id: str = DEFAULT_IAM_PROJECT_ID
    seed: bool = False
    verbose: bool = False
    quota: Optional[float] = None  # API requests per second per caller (--quota); None: no limit


class Quota:
    """The gateway's rate limit (the simulator's model): at most `rate` admitted API requests per caller (token
    or AK) in any sliding second; beyond it, 429 APIGW.0308 with Retry-After, and the request is not processed."""

    def __init__(self, rate: Optional[float]) -> None:
        self.rate = rate
        self.admitted: dict[str, collections.deque] = {}
        self.throttled = 0

    def wait(self, caller: str, now: float) -> Optional[float]:
        """None when the request is admitted (and counted), else the seconds until it would be."""
        if self.rate is None:
            return None
        window = self.admitted.setdefault(caller, collections.deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) < self.rate:
            window.append(now)
            return None
        self.throttled += 1
        return max(window[0] + 1.0 - now, 0.001)

    def to_json(self) -> dict:
        return {"rate": self.rate, "throttled": self.throttled}


def caller_of(request: "SimRequest") -> str:
    """Whom the quota counts a request against: its token, or the AK of its signature."""
    token = request.headers.get("x-auth-token")
    if token:
        return "token:" + token
    found = re.search(r"Access=([^,\s]+)", request.headers.get("authorization", ""))
    return "ak:" + found.group(1) if found else "anonymous"


class Simulator:
    def __init__(self, config: Config):
        self.config = config
        # One lock for all state: operations are short, and a single lock makes every request atomic.
        self.lock = threading.RLock()
        self.stop_event = threading.Event()
        self.redirect_base = ""  # set once the redirect target listens
        self.log = RequestLog()
        self._connection_ids = iter(range(1, sys.maxsize))
        self._connection_lock = threading.Lock()
        self.gateway = Gateway(self)
        self.control = ControlApi(self)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.world = World()
            self.faults = FaultQueue()
            self.log.clear()
            self.auth = AuthRegistry(self.config.tokens, self.config.credentials, self.config.iam_users)
            self.iam_projects = default_iam_projects(self.region, self.iam_project_id)
            self.quota = Quota(self.config.quota)
            self.seed_info = {**self.world.seed(), **self.region_info()} if self.config.seed else None

    @property
    def region(self) -> str:
        return self.config.region

    @property
    def iam_project_id(self) -> str:
        return self.config.iam_project_id

    def region_info(self) -> dict:
        return {"region": self.region, "iam_project_id": self.iam_project_id}

    def next_connection_id(self) -> int:
        with self._connection_lock:
            return next(self._connection_ids)

    def admit(self, request: SimRequest) -> Optional[Fault]:
        """Record the request and take the fault (if any) that applies to it."""
        with self.lock:
            fault = self.faults.take(request)
            if fault is None and request.listener == MAIN:
                wait = self.quota.wait(caller_of(request), time.time())
                if wait is not None:
                    fault = Fault(0, "throttled", {}, 1, {"retry_after": str(math.ceil(wait)),
                                                          "error_msg": QUOTA_MESSAGE.format(self.quota.rate)})
                    self.log.record(request, "quota")
                    return fault
            self.log.record(request, fault.kind if fault else None)
            return fault

    def answer(self, request: SimRequest) -> Reply:
        """The normal answer, fault aside."""
        if request.listener == REDIRECT_TARGET:
            return json_reply(200, {"success": True})
        try:
            return self.gateway.handle(request)
        except Exception:  # a simulator bug: say so loudly rather than hang the client
            traceback.print_exc(file=sys.stderr)
            return error_reply(request, 500, "SIM.INTERNAL", "simulator internal error (see its stderr)")

    def fault_reply(self, fault: Fault, request: SimRequest) -> Reply:
        return canned_fault_reply(fault, request, self.redirect_base)


# --------------------------------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------------------------------

def split_target(target: str) -> tuple[str, str]:
    """Request target -> (path, raw query). Absolute-form targets (proxy style) are reduced to their path."""
    if not target.startswith("/"):
        parts = urlsplit(target)
        return parts.path or "/", parts.query
    path, _, query = target.partition("?")
    return path, query


class SimRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every reply has a Content-Length
    server_version = "CodeArtsSim/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # header and body go out as separate writes; don't let Nagle delay them

    server: "SimServer"

    def setup(self) -> None:
        super().setup()
        self.sim = self.server.sim
        self.connection_id = self.sim.next_connection_id()
        self.request_id = uuid.uuid4().hex

    def handle_one_request(self) -> None:
        self.request_id = uuid.uuid4().hex
        try:
            super().handle_one_request()
        except OSError:  # the client went away mid-request: nothing to answer, nothing to report
            self.close_connection = True

    def version_string(self) -> str:
        return self.server_version

    def send_response(self, code: int, message: Optional[str] = None) -> None:
        super().send_response(code, message)
        self.send_header("X-Request-Id", self.request_id)

    def end_headers(self) -> None:
        # The bare_lf fault: the same answer with lines ending in LF alone, as
        # some lax servers send them (and clients are expected to accept).
        if getattr(self, "line_end", b"\r\n") != b"\r\n" and getattr(self, "_headers_buffer", None):
            self._headers_buffer = [line.replace(b"\r\n", self.line_end) for line in self._headers_buffer]
            self._headers_buffer.append(self.line_end)
            self.flush_headers()
            return
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        if self.sim.config.verbose:
            sys.stderr.write(f"[{self.server.listener} conn {self.connection_id}] {format % args}\n")

    def _describe(self, body: bytes) -> SimRequest:
        path, query = split_target(self.path)
        return SimRequest(listener=self.server.listener, connection_id=self.connection_id, method=self.command,
                          path=path, query=query, headers=lower_case_headers(self.headers), body=body,
                          request_id=self.request_id)

    def _is_control(self, request: SimRequest) -> bool:
        return self.server.listener == MAIN and (
            request.path == CONTROL_PREFIX or request.path.startswith(CONTROL_PREFIX + "/"))

    def handle_expect_100(self) -> bool:
        # A fault that hangs up must send no byte at all, not even an interim "100 Continue": then stay
        # silent and let the client send its body after its own expect timeout.
        request = self._describe(b"")
        if not self._is_control(request):
            with self.sim.lock:
                fault = self.sim.faults.peek(request)
            if fault is not None and fault.kind in HANG_UP_FAULTS:
                return True
        return super().handle_expect_100()

    def serve(self) -> None:
        body = self._read_body()
        if body is None:
            return
        request = self._describe(body)
        if self._is_control(request):
            self._send(self.sim.control.handle(request))
            return
        fault = self.sim.admit(request)
        if fault is None:
            self._send(self.sim.answer(request))
        elif fault.kind == "close":
            self._hang_up("close fault")
        elif fault.kind == "drop_after_processing":
            self.sim.answer(request)  # state changes happen; the client never hears of them
            self._hang_up("drop_after_processing fault")
        elif fault.kind == "bare_lf":
            self._send(self.sim.answer(request), line_end=b"\n")
        elif fault.kind == "slow":
            if self._wait_while_client_stays(fault.options.get("delay", DEFAULT_SLOW_DELAY)):
                self._send(self.sim.answer(request))
            else:
                self._hang_up("client left during slow fault")
        else:
            self._send(self.sim.fault_reply(fault, request))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = serve

    def _read_body(self) -> Optional[bytes]:
        """The whole request body (so keep-alive stays in step), or None when the request was refused."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b""
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._send(json_reply(400, {"error": "bad Content-Length"}))
            return None
        if length > MAX_REQUEST_BODY:
            self.close_connection = True
            self._send(json_reply(413, {"error": "request body too large for the simulator"}))
            return None
        body = self.rfile.read(length)
        if len(body) < length:  # the client gave up mid-body
            self.close_connection = True
            return None
        return body

    def _read_chunked(self) -> Optional[bytes]:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                return None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers, ignored
                return b"".join(chunks)
            total += size
            if total > MAX_REQUEST_BODY:
                self.close_connection = True
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, reply: Reply, line_end: bytes = b"\r\n") -> None:
        self.line_end = line_end
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(reply.stream_length if reply.stream else len(reply.body)))
        self.end_headers()
        self.line_end = b"\r\n"
        if self.command != "HEAD":
            if reply.stream:
                for chunk in reply.stream():
                    self.wfile.write(chunk)
            else:
                self.wfile.write(reply.body)
        if reply.then:
            reply.then()

    def _hang_up(self, why: str) -> None:
        """Close the connection without sending a single byte."""
        self.log_message('"%s" hung up: %s', self.requestline, why)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _wait_while_client_stays(self, seconds: float) -> bool:
        """Sleep, but notice a client that hangs up meanwhile (False) so the thread can end quietly."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                readable, _, _ = select.select([self.connection], [], [], min(remaining, 0.25))
                if readable and not self.connection.recv(1, socket.MSG_PEEK):
                    return False  # orderly close from the client
            except (OSError, ValueError):
                return False
            if readable:
                # More bytes already (a pipelined request): the client is there; just sleep out the delay.
                time.sleep(max(0.0, deadline - time.monotonic()))
                return True
        return True


def lower_case_headers(headers: Any) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


def address_family_for(host: str) -> socket.AddressFamily:
    return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]


class SimServer(ThreadingHTTPServer):
    daemon_threads = True  # a hung or kept-alive connection never holds up exit
    # The default backlog of 5 drops the SYNs of a burst of new connections,
    # which the client then retries a second later: room for a burst.
    request_queue_size = 128
    block_on_close = False

    def __init__(self, host: str, port: int, sim: Simulator, listener: str):
        self.address_family = address_family_for(host)
        self.sim = sim
        self.listener = listener
        super().__init__((host, port), SimRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn(), a reverse DNS lookup that can stall.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # client disconnects are routine here
        super().handle_error(request, client_address)


def url_host(host: str) -> str:
    """The host as it goes in a URL; a wildcard address becomes loopback, IPv6 gets brackets."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]" if ":" in host else host


# --------------------------------------------------------------------------------------------------
# Self-test of the signature verifier against the published vectors
# --------------------------------------------------------------------------------------------------

def run_self_test() -> int:
    results: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        results.append((name, ok, detail))

    empty = hashlib.sha256(b"").hexdigest()

    # Huawei signing guide vector.
    guide_headers = {"content-type": "application/json", "host": "service.region.example.com",
                     "x-sdk-date": "20191115T033655Z"}
    guide_ak, guide_sk = "QTWAOYTTINDUT2QVKYUC", "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
    guide_path = "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs"
    guide_query = "limit=2&marker=13551d6b-755d-4757-b956-536f674975c0"
    guide_signed = "content-type;host;x-sdk-date"
    guide_expected = "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
    signature = compute_signature(guide_sk, "20191115T033655Z", canonical_request(
        "GET", guide_path, guide_query, guide_headers, guide_signed, empty))
    check("guide vector signature", signature == guide_expected, signature)

    # Python SDK test vector.
    sdk_headers = {"host": "service.endpoint.myhuaweicloud.com", "x-sdk-date": "20200608T023900Z"}
    signature = compute_signature("SecretKey", "20200608T023900Z", canonical_request(
        "GET", "/resources", "size=1", sdk_headers, "host;x-sdk-date", empty))
    expected = "cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842"
    check("python SDK vector signature", signature == expected, signature)

    # Query encoding vector, sent in a scrambled order as a client might.
    wire_query = ("limit=1&enable=true&test=" + quote("一 (&=?!#%.*)", safe="")
                  + "&path=%2Ftmp%2F123&multi=3&multi=1&multi=2")
    expected = ("enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123"
                "&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29")
    got = canonical_query(wire_query)
    check("query encoding vector", got == expected, got)

    # The whole verifier on the guide request, at the vector's own time and at other times.
    signed_at = datetime(2019, 11, 15, 3, 36, 55, tzinfo=timezone.utc).timestamp()
    credentials = {guide_ak: Credential(guide_ak, guide_sk)}

    def verify(headers: dict, creds: dict = credentials, now: float = signed_at) -> Optional[str]:
        return verify_signature("GET", guide_path, guide_query, headers, b"", creds, now)

    authorization = (f"SDK-HMAC-SHA256 Access={guide_ak}, SignedHeaders={guide_signed}, "
                     f"Signature={guide_expected}")
    good = {**guide_headers, "authorization": authorization}
    check("verifier accepts the guide request", verify(good) is None, str(verify(good)))
    check("verifier accepts 14 minutes of skew", verify(good, now=signed_at + 14 * 60) is None)
    check("verifier refuses 16 minutes of skew", verify(good, now=signed_at - 16 * 60) is not None)
    check("verifier refuses an unknown AK", verify(good, creds={}) is not None)
    check("verifier refuses a wrong signature",
          verify({**good, "authorization": authorization[:-1] + "f"}) is not None)
    check("verifier refuses a changed query",
          verify_signature("GET", guide_path, "limit=3", good, b"", credentials, signed_at) is not None)
    no_host = authorization.replace("content-type;host;x-sdk-date", "content-type;x-sdk-date")
    check("verifier refuses host not signed", verify({**good, "authorization": no_host}) is not None)
    check("verifier refuses a malformed date", verify({**good, "x-sdk-date": "2019-11-15"}) is not None)

    # Temporary credentials: the security token must be present, right and signed.
    temporary = {guide_ak: Credential(guide_ak, guide_sk, "sec-token")}
    token_headers = {**guide_headers, "x-security-token": "sec-token"}
    token_signed = "content-type;host;x-sdk-date;x-security-token"
    token_signature = compute_signature(guide_sk, "20191115T033655Z", canonical_request(
        "GET", guide_path, guide_query, token_headers, token_signed, empty))
    with_token = {**token_headers, "authorization": f"SDK-HMAC-SHA256 Access={guide_ak}, "
                                                    f"SignedHeaders={token_signed}, Signature={token_signature}"}
    check("verifier accepts a signed security token", verify(with_token, creds=temporary) is None)
    check("verifier refuses a missing security token", verify(good, creds=temporary) is not None)
    check("verifier refuses a wrong security token",
          verify({**with_token, "x-security-token": "other"}, creds=temporary) is not None)

    failed = 0
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok or not detail else f": got {detail}"))
        failed += not ok
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


# --------------------------------------------------------------------------------------------------
# Command line and main loop
# --------------------------------------------------------------------------------------------------

def parse_args(argv: Optional[list[str]]) -> tuple[argparse.Namespace, Config]:
    parser = argparse.ArgumentParser(description="Local simulator of the CodeArts Pipeline API (see README.md).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="main port (default 0: ephemeral)")
    parser.add_argument("--port-file", help="also write the startup JSON line to this file (atomically)")
    parser.add_argument("--token", action="append", default=[], help="a valid X-Auth-Token (repeatable; "
                        f"default {DEFAULT_TOKEN})")
    parser.add_argument("--seed", action="store_true", help="create demo pipelines and runs")
    parser.add_argument("--ak", action="append", default=[], help="access key (repeatable, paired with --sk)")
    parser.add_argument("--sk", action="append", default=[], help="secret key (repeatable, paired with --ak)")
    parser.add_argument("--iam-user", action="append", default=[], metavar="NAME:PASSWORD:DOMAIN",
                        help="an IAM user for POST /v3/auth/tokens (repeatable)")
    parser.add_argument("--region", default=DEFAULT_REGION,
                        help=f"the simulated region, name of its IAM project (default {DEFAULT_REGION})")
    parser.add_argument("--iam-project-id", default=DEFAULT_IAM_PROJECT_ID,
                        help="id of the region's IAM project, which AK/SK requests must send as X-Project-Id "
                             f"(default {DEFAULT_IAM_PROJECT_ID})")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument("--quota", type=float, default=None, metavar="N",
                        help="at most N API requests per second per token or AK; beyond it 429 APIGW.0308")
    parser.add_argument("--parent-pid", type=int, default=None,
                        help="exit when this process is gone (a test runner killed before its teardown)")
    parser.add_argument("--self-test", action="store_true", help="check the signature verifier and exit")
    args = parser.parse_args(argv)
    if args.quota is not None and not args.quota > 0:
        parser.error("--quota must be a positive number of requests per second")
    if len(args.ak) != len(args.sk):
        parser.error("--ak and --sk must be given in pairs")
    if not args.region or not LOOSE_ID_PATTERN.fullmatch(args.iam_project_id):
        parser.error("--region must be non-empty and --iam-project-id ASCII letters and digits")
    users = []
    for spec in args.iam_user:
        name, sep, rest = spec.partition(":")
        password, sep2, domain = rest.rpartition(":")
        if not (sep and sep2 and name and domain):
            parser.error(f"--iam-user wants NAME:PASSWORD:DOMAIN, got {spec!r}")
        users.append(IamUser(name, password, domain))
    config = Config(host=args.host, port=args.port, port_file=args.port_file,
                    tokens=args.token or [DEFAULT_TOKEN],
                    credentials=[Credential(ak, sk) for ak, sk in zip(args.ak, args.sk)],
                    iam_users=users, region=args.region, iam_project_id=args.iam_project_id,
                    seed=args.seed, verbose=args.verbose, quota=args.quota)
    return args, config


def write_port_file(path: str, line: str) -> None:
    # Write then rename, so a test polling for the file never reads half of it.
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(line + "\n")
    os.replace(tmp, path)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


def main(argv: Optional[list[str]] = None) -> int:
    args, config = parse_args(argv)
    if args.self_test:
        return run_self_test()

    sim = Simulator(config)
    main_server = SimServer(config.host, config.port, sim, MAIN)
    target_server = SimServer(config.host, 0, sim, REDIRECT_TARGET)
    sim.redirect_base = f"http://{url_host(config.host)}:{target_server.server_port}"
    for server in (main_server, target_server):
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: sim.stop_event.set())

    info: dict[str, Any] = {"port": main_server.server_port, "redirect_port": target_server.server_port,
                            "pid": os.getpid(), **sim.region_info()}
    if sim.seed_info is not None:
        info["seed"] = sim.seed_info
    line = json.dumps(info)
    try:
        print(line, flush=True)
    except BrokenPipeError:
        pass  # nobody reads stdout; the port file may still be used
    if config.port_file:
        write_port_file(config.port_file, line)

    while not sim.stop_event.wait(0.5):
        if args.parent_pid and not process_alive(args.parent_pid):
            break
    for server in (main_server, target_server):
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
