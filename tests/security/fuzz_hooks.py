"""Schemathesis hooks for test_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

Random ids would make nearly every call on /api/sessions/{sid}/... a 404, so
calls get a real session and instance of the fuzzing user instead, except the
DELETEs (which would end what the other calls need). Every answer's status is
appended to $FUZZ_LOG so the test can count them."""
from __future__ import annotations

import os

import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters
    if not params:
        return
    if case.method.upper() == "DELETE":
        return
    if "sid" in params:
        params["sid"] = os.environ["FUZZ_SID"]
    if "iid" in params:
        params["iid"] = os.environ["FUZZ_IID"]


@schemathesis.hook
def after_call(context, case, response):
    with open(os.environ["FUZZ_LOG"], "a") as log:
        mode = case.meta.generation.mode.value if case.meta is not None else "positive"
        log.write(f"{case.method.upper()} {case.operation.path} {response.status_code} {mode}\n")
