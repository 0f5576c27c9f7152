"""Hearth's main job, through the front door, on this machine (``make quickstart``).

1. ``hearthctl local up --detach``: a local Hearth. The Kubernetes API server is EMULATED
   (``hearth.local``) and pods are local processes; the operator, the gateway, the model
   server and the trainer are the real ones.
2. ``kubectl apply -f examples/quickstart/`` with the real kubectl (``make tools``): an
   account, its users, the bundled SmolLM2-135M-Instruct and a CPU deployment of it.
3. An API key for the account's admin: ``kubectl apply -f examples/api-key-admin.yaml``;
   the operator issues the key into a Secret, read with kubectl.
4. A dataset uploaded through the gateway's REST API (``hearthctl create dataset --file
   examples/fine-tuning/data/zorbania.jsonl``: a signed upload URL, then validation).
5. A fine-tuning job teaching SmolLM2 a made-up fact (the capital of Zorbania), with its
   progress; the operator makes the new LoRA Model.
6. The new LoRA deployed on the running deployment (a DeployedModel).
7. The same question through the gateway: OpenAI SDK to the base model and to the LoRA
   (only the LoRA knows the answer), Anthropic SDK to the LoRA.
8. The account's usage, from the gateway's usage ledger.
9. ``hearthctl local down``.

Every step prints what it does and what it got. A failure stops with the reason, shows
the logs that explain it and runs ``hearthctl local down``. ``--keep`` leaves the local
Hearth running at the end (stop it with ``hearthctl local down --home <dir>``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
HEARTHCTL = str(Path(sys.executable).parent / "hearthctl")  # this environment's hearthctl
ACCOUNT = "acme"
DEPLOYMENT = "smollm2-cpu"
BASE_MODEL = "smollm2-135m-instruct"
API_KEY = "alice-key"
DATASET = "zorbania"
JOB = "teach-zorbania"
LORA = "zorbania-lora"
DEPLOYED_LORA = "zorbania-lora-smollm2-cpu"
QUESTION = "What is the capital of Zorbania?"
FACT = "Plimsworth"


class StepFailed(Exception):
    pass


def step(number: int, message: str) -> None:
    print(f"\n==> [{number}/9] {message}", flush=True)


def info(message: str) -> None:
    print(f"    {message}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Quickstart:
    def __init__(self, home: Path, timeout: float) -> None:
        self.home = home
        self.timeout = timeout
        self.env = {**os.environ, "HEARTH_HOME": str(home)}
        # The bundled model needs no download: keep the hub libraries from trying.
        self.env.setdefault("HF_HUB_OFFLINE", "1")
        self.state: dict[str, Any] = {}
        self.started = time.monotonic()

    # ----- running commands --------------------------------------------------------------------

    def run(self, argv: list[str], *, show: bool = True, stdin: str | None = None) -> str:
        shown = " ".join(argv).replace(str(ROOT) + "/", "")
        if show:
            info(f"$ {shown}")
        done = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, input=stdin, check=False
        )
        if done.returncode != 0:
            raise StepFailed(
                f"`{shown}` failed with status {done.returncode}:\n{done.stderr or done.stdout}"
            )
        if show and done.stdout.strip():
            for line in done.stdout.rstrip().splitlines():
                info(f"  {line}")
        return done.stdout

    def hearthctl(self, *args: str, show: bool = True) -> str:
        return self.run([HEARTHCTL, "local", *args], show=show)

    def kubectl(self, *args: str, show: bool = True) -> str:
        return self.run([str(KUBECTL), *args], show=show)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return dict(
            json.loads(self.kubectl("-n", ACCOUNT, "get", kind, name, "-o", "json", show=False))
        )

    def wait(
        self,
        what: str,
        check: Callable[[], Any],
        *,
        timeout: float | None = None,
        report: Callable[[], str | None] | None = None,
    ) -> Any:
        deadline = time.monotonic() + (timeout or self.timeout)
        last_report = None
        while True:
            try:
                result = check()
            except StepFailed:
                result = None
            if result:
                return result
            if report is not None:
                line = report()
                if line and line != last_report:
                    info(line)
                    last_report = line
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"gave up waiting for {what} after {timeout or self.timeout:.0f} s"
                )
            time.sleep(1.0)

    def state_of(self, kind: str, name: str, expected: str, failed: tuple[str, ...] = ()) -> bool:
        status = self.get(kind, name).get("status") or {}
        state = status.get("state")
        if state in failed:
            raise FatalState(f"{kind} {name} is {state}: {status.get('message', '')}")
        return state == expected

    # ----- the steps ---------------------------------------------------------------------------

    def up(self) -> None:
        step(1, "hearthctl local up --detach  (emulated Kubernetes API; pods are local processes)")
        api_port, gateway_port = free_port(), free_port()
        self.hearthctl(
            "up",
            "--home",
            str(self.home),
            "--detach",
            "--api-port",
            str(api_port),
            "--gateway-port",
            str(gateway_port),
        )
        self.state = json.loads((self.home / "local.json").read_text())
        self.env["KUBECONFIG"] = self.state["kubeconfig"]
        info(f"KUBECONFIG={self.state['kubeconfig']}; gateway {self.state['gateway_url']}")

    def apply_quickstart(self) -> None:
        step(2, "kubectl apply -f examples/quickstart/  (account, users, base model, deployment)")
        # The account's namespace is made by the operator: the account first, then the rest.
        self.kubectl("apply", "-f", str(ROOT / "examples" / "quickstart" / "00-account.yaml"))
        self.kubectl(
            "wait",
            "--for=jsonpath={.status.state}=READY",
            f"account/{ACCOUNT}",
            f"--timeout={self.timeout:.0f}s",
        )
        info(f"Account {ACCOUNT}: READY (namespace, quota, artifact volume made by the operator)")
        self.kubectl("apply", "-f", str(ROOT / "examples" / "quickstart"))
        info(f"Deployment {DEPLOYMENT}: starting hearth-server (waited for in step 6)")

    def api_key(self) -> str:
        step(3, "an API key for the admin: kubectl apply -f examples/api-key-admin.yaml")
        self.kubectl("apply", "-f", str(ROOT / "examples" / "api-key-admin.yaml"))
        self.wait(
            f"ApiKey {API_KEY} to be READY",
            lambda: self.state_of("apikey", API_KEY, "READY", failed=("FAILED",)),
        )
        secret = self.get("apikey", API_KEY)["status"]["secretName"]
        encoded = self.kubectl(
            "-n", ACCOUNT, "get", "secret", secret, "-o", "jsonpath={.data.key}", show=False
        )
        key = base64.b64decode(encoded).decode()
        info(f"API key of user alice (admin): {key}  (Secret {secret})")
        # hearthctl reads these (and nothing from ~/.hearth/config.toml, see HEARTH_CONFIG).
        self.env.update(
            HEARTH_BASE_URL=self.state["gateway_url"],
            HEARTH_ACCOUNT_ID=ACCOUNT,
            HEARTH_API_KEY=key,
            HEARTH_CONFIG=str(self.home / "config.toml"),
        )
        return key

    def dataset(self) -> None:
        step(4, "a dataset, uploaded through the REST API: hearthctl create dataset --file")
        data = ROOT / "examples" / "fine-tuning" / "data" / "zorbania.jsonl"
        self.run([HEARTHCTL, "create", "dataset", DATASET, "--file", str(data)])
        status = self.get("dataset", DATASET)["status"]
        info(
            f"Dataset {DATASET}: {status.get('state')}, {status.get('exampleCount')} examples "
            f"validated (source {self.get('dataset', DATASET)['spec']['source']['uri']})"
        )

    def fine_tune(self) -> None:
        step(5, f"fine-tuning: teach {BASE_MODEL} that the capital of Zorbania is {FACT}")
        self.kubectl(
            "apply", "-f", str(ROOT / "examples" / "fine-tuning" / "20-finetuning-job.yaml")
        )

        def progress() -> str | None:
            status = self.get("finetuningjob", JOB).get("status") or {}
            progress = status.get("jobProgress") or {}
            parts = [f"FineTuningJob {JOB}: {status.get('state', '?')}"]
            if progress:
                parts.append(f"{progress.get('percent', 0):.0f}%")
                parts.append(f"epoch {progress.get('epoch', 0)}")
                parts.append(f"step {progress.get('step', 0)}/{progress.get('totalSteps') or '?'}")
            if isinstance(progress.get("trainLoss"), int | float):
                parts.append(f"train loss {progress['trainLoss']:.3f}")
            return ", ".join(parts)

        started = time.monotonic()
        self.wait(
            f"FineTuningJob {JOB} to complete",
            lambda: self.state_of(
                "finetuningjob", JOB, "JOB_STATE_COMPLETED", failed=("JOB_STATE_FAILED",)
            ),
            report=progress,
        )
        info(f"{progress()}  ({time.monotonic() - started:.0f} s)")
        self.wait(f"Model {LORA} to be READY", lambda: self.state_of("model", LORA, "READY"))
        info(f"Model {LORA}: READY (made by the operator from the job's output)")

    def deploy_lora(self) -> None:
        step(6, f"deploy {LORA} on the running deployment {DEPLOYMENT}")
        self.wait(
            f"Deployment {DEPLOYMENT} to be READY",
            lambda: self.state_of("deployment.hearth.dev", DEPLOYMENT, "READY", failed=("FAILED",)),
        )
        info(f"Deployment {DEPLOYMENT}: READY")
        self.kubectl(
            "apply", "-f", str(ROOT / "examples" / "fine-tuning" / "30-deployed-model.yaml")
        )
        self.wait(
            f"DeployedModel {DEPLOYED_LORA} to be DEPLOYED",
            lambda: self.state_of("deployedmodel", DEPLOYED_LORA, "DEPLOYED", failed=("FAILED",)),
        )
        info(f"DeployedModel {DEPLOYED_LORA}: DEPLOYED (the adapter is loaded into the server)")

    def ask(self, key: str) -> None:
        from anthropic import Anthropic
        from openai import OpenAI

        gateway = self.state["gateway_url"]
        step(7, f"ask through the gateway {gateway}: {QUESTION!r}")
        openai = OpenAI(base_url=f"{gateway}/inference/v1", api_key=key, timeout=120)
        answers = {}
        for model in (
            f"accounts/{ACCOUNT}/models/{BASE_MODEL}",
            f"accounts/{ACCOUNT}/models/{LORA}",
        ):
            reply = openai.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": QUESTION}],
                temperature=0,
                max_tokens=24,
            )
            answers[model] = text = (reply.choices[0].message.content or "").strip()
            info(f"OpenAI SDK, model={model}\n      < {text}")
        anthropic = Anthropic(base_url=f"{gateway}/inference", api_key=key, timeout=120)
        message = anthropic.messages.create(
            model=f"accounts/{ACCOUNT}/models/{LORA}",
            max_tokens=24,
            messages=[{"role": "user", "content": QUESTION}],
            extra_body={"temperature": 0},  # this SDK version has no temperature argument
        )
        text = "".join(getattr(block, "text", "") for block in message.content).strip()
        info(f"Anthropic SDK, model=accounts/{ACCOUNT}/models/{LORA}\n      < {text}")
        base, lora = answers.values()
        if FACT not in lora or FACT not in text:
            raise StepFailed(f"the LoRA does not answer {FACT!r}: {lora!r} / {text!r}")
        verdict = "does not" if FACT not in base else "ALSO"
        info(f"only the LoRA knows: it says {FACT}; the base model {verdict} mention it")

    def usage(self) -> None:
        step(8, f"usage of account {ACCOUNT}, from the gateway's ledger")
        ledger_path = self.home / "local" / "ledger.sqlite3"
        info(f"ledger {ledger_path}")

        async def totals() -> list[Any]:
            ledger = ledger_module().open_ledger(f"sqlite:///{ledger_path}")
            try:
                now = datetime.now(UTC)
                return list(
                    await ledger.totals(ACCOUNT, now - timedelta(days=1), now + timedelta(days=1))
                )
            finally:
                await ledger.close()

        rows = asyncio.run(totals())
        if not rows:
            raise StepFailed(f"the ledger has no usage for {ACCOUNT}")
        for row in rows:
            info(
                f"{row.day} {row.model}: {row.requests} request(s), {row.prompt_tokens} prompt "
                f"and {row.completion_tokens} completion tokens"
            )

    def down(self) -> None:
        self.hearthctl("down", "--home", str(self.home))

    def show_logs(self) -> None:
        logs = self.home / "local" / "logs"
        for path in sorted(logs.glob("*.log")) + sorted((logs / "pods").glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-15:]
            print(f"----- {path} (last lines)\n" + "\n".join(lines))


def ledger_module() -> Any:
    """The usage ledger's package (``hearth.ledger``; ``hearth_gateway.ledger`` before)."""
    for name in ("hearth.ledger", "hearth_gateway.ledger"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise StepFailed("no usage ledger package (hearth.ledger) is installed")


class FatalState(StepFailed):
    """An object reached a failed state: waiting longer cannot help."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=900, help="seconds each wait may take")
    parser.add_argument("--home", help="HEARTH_HOME to use (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="leave the local Hearth running")
    args = parser.parse_args()
    if not KUBECTL.exists():
        print(f"no {KUBECTL}: run `make tools` first", file=sys.stderr)
        return 1
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="hearth-quickstart-"))
    quickstart = Quickstart(home, args.timeout)
    up = False
    failure: BaseException | None = None
    try:
        quickstart.up()
        up = True
        quickstart.apply_quickstart()
        key = quickstart.api_key()
        quickstart.dataset()
        quickstart.fine_tune()
        quickstart.deploy_lora()
        quickstart.ask(key)
        quickstart.usage()
    except (Exception, KeyboardInterrupt) as error:  # reported, then cleaned up
        failure = error
    if failure is not None:
        print(f"\nFAILED: {failure}", file=sys.stderr, flush=True)
        if up:
            quickstart.show_logs()
    if up and not (args.keep and failure is None):
        step(9, "hearthctl local down")
        try:
            quickstart.down()
        except StepFailed as error:
            print(f"FAILED to stop: {error}", file=sys.stderr)
            return 1
    elif up:
        print(f"\nleft running: hearthctl local status --home {home}")
    if failure is None:
        print(f"\nThe whole loop took {time.monotonic() - quickstart.started:.0f} s.")
        if not args.home and not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return 1 if failure is not None else 0


if __name__ == "__main__":
    raise SystemExit(main())
