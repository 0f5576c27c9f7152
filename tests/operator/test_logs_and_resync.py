"""The operator's JSON-lines logs, and the periodic resync pass (no kopf timers)."""

from __future__ import annotations

import io
import json
import logging
import threading

import kopf
import pytest

from hearth_operator import resync
from hearth_operator.controllers.model import reconcile_model
from hearth_operator.logs import configure_logging
from tests.operator.test_operator_component import BASE


@pytest.fixture
def log_lines():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("INFO", stream)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_every_line_is_a_json_object_with_exceptions_as_fields(log_lines):
    log = logging.getLogger("hearth_operator")
    log.info('created pod "%s"\nnext line', "d1-abc-0", extra={"namespace": "acme"})
    try:
        raise ValueError("bad spec")
    except ValueError:
        log.exception("reconcile failed")
    # kopf's per-object records carry the object and a settings object that is dropped.
    logging.getLogger("kopf.objects").warning(
        "handler failed",
        extra={
            "k8s_ref": {"kind": "Model", "name": "m", "namespace": "acme"},
            "k8s_skip": True,  # log only, post no Kubernetes event
            "settings": kopf.OperatorSettings(),
        },
    )
    logging.getLogger("hearth_operator").debug("not at INFO")
    info, error, from_kopf = log_lines()
    assert list(info)[:4] == ["time", "level", "logger", "message"]
    assert info["message"] == 'created pod "d1-abc-0"\nnext line'
    assert (info["level"], info["logger"], info["namespace"]) == ("INFO", "hearth_operator", "acme")
    assert info["time"].endswith("+00:00")
    assert error["exception"]["type"] == "ValueError"
    assert error["exception"]["message"] == "bad spec"
    assert error["exception"]["traceback"].startswith("Traceback (most recent call last)")
    assert "exc_info" not in error
    assert from_kopf["object"] == {"kind": "Model", "name": "m", "namespace": "acme"}
    assert not {"settings", "k8s_ref", "k8s_skip"} & set(from_kopf)


def test_a_resync_pass_reconciles_every_object_and_survives_failures(cluster, monkeypatch):
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
    cluster.apply(BASE)
    cluster.apply(BASE.replace("name: smollm2", "name: other"))
    failed = []

    def flaky(ctx, namespace, name):
        if name == "other":
            failed.append(name)
            raise RuntimeError("the API went away")
        reconcile_model(ctx, namespace, name)

    monkeypatch.setattr(resync, "RESYNCED", (("Model", flaky),))
    assert resync.resync_pass(cluster.context()) == 2
    assert failed == ["other"]
    assert cluster.get("Model", "smollm2")["status"]["state"] == "READY"
    # A stopped loop ends its pass before the next object.
    stop = threading.Event()
    stop.set()
    assert resync.resync_pass(cluster.context(), stop) == 0
