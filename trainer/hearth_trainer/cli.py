"""``hearth-trainer``: validate datasets and train LoRA adapters.

Exit codes (the operator maps them to Dataset / FineTuningJob states):

====  ==========================================================================
0     success (validate: the dataset is valid; train: the adapter is published)
1     the dataset is invalid (validation errors; JSON report on stdout)
2     bad command line or settings (argparse errors, out-of-range values)
3     an input cannot be read: dataset URI, base model or warm-start adapter
4     training failed (unexpected error; the message is on stderr)
75    interrupted by SIGTERM/SIGINT after writing a checkpoint: run again with the
      same ``--output`` to resume (EX_TEMPFAIL)
====  ==========================================================================
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from hearth.datasets import FORMATS, DatasetInvalidError, check_format
from hearth_trainer.datasets import validate
from hearth_trainer.sources import DatasetSourceError

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 75

log = logging.getLogger("hearth_trainer")


def _format(value: str) -> str:
    try:
        return check_format(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hearth-trainer", description="LoRA supervised fine-tuning for Hearth."
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (stderr)")
    sub = parser.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="validate a JSONL dataset")
    v.add_argument("dataset", metavar="DATASET_URI", help="path, file://, pvc://, https://, s3://")
    v.add_argument("--format", type=_format, default="CHAT", help=f"one of {', '.join(FORMATS)}")
    v.add_argument("--base-model", help="count tokens with this model's tokenizer and template")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.add_argument("--max-errors", type=int, default=20, help="errors kept in the report")
    v.add_argument("--result-file", type=Path, help="also write the JSON report here")

    t = sub.add_parser("train", help="train a LoRA adapter")
    t.add_argument("--base-model", help="model URI (builtin://, pvc://, file://, hf://, path)")
    t.add_argument("--warm-start-from", help="PEFT adapter URI to continue training")
    t.add_argument("--dataset", required=True, help="training JSONL URI")
    t.add_argument("--output", required=True, type=Path, help="output directory (resumable)")
    t.add_argument("--format", type=_format, default="CHAT")
    t.add_argument("--evaluation-dataset", help="evaluation JSONL URI")
    t.add_argument(
        "--eval-auto-carveout",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="hold out part of the dataset for evaluation when no evaluation dataset is given",
    )
    t.add_argument("--epochs", type=int, default=1)
    t.add_argument("--learning-rate", type=float, default=1e-4)
    t.add_argument("--learning-rate-warmup-steps", type=int, default=0)
    t.add_argument("--lr-schedule", choices=("cosine", "linear", "constant"), default="cosine")
    t.add_argument("--lora-rank", type=int, default=8)
    t.add_argument("--lora-alpha", type=int, help="default: 2 x rank")
    t.add_argument("--max-context-length", type=int, default=8192)
    t.add_argument("--batch-size", type=int, default=32768, help="padded tokens per batch")
    t.add_argument("--batch-size-samples", type=int, help="at most this many examples per batch")
    t.add_argument("--gradient-accumulation-steps", type=int, default=1)
    t.add_argument("--optimizer-weight-decay", type=float, default=0.0)
    t.add_argument("--early-stop", action=argparse.BooleanOptionalAction, default=False)
    t.add_argument("--early-stop-patience", type=int, default=2)
    t.add_argument("--eval-steps", type=int, help="evaluate every N steps (default: per epoch)")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--checkpoint-steps", type=int, default=50)
    t.add_argument("--micro-batch-tokens", type=int, default=4096, help="memory knob only")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    t.add_argument("--dtype", default="auto", help="auto (fp32 on CPU, bf16 on GPU), float32 ...")
    t.add_argument("--progress-file", type=Path, help="default: OUTPUT/progress.jsonl")
    t.add_argument("--result-file", type=Path, help="also write the result JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "validate":
        return _validate(args)
    return _train(args)


def _write(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        log.warning("could not write %s: %s", path, exc)


def _emit(data: dict[str, Any], result_file: Path | None) -> None:
    """JSON on stdout, and in ``result_file`` when given."""
    print(json.dumps(data, indent=2))
    if result_file is not None:
        _write(result_file, data)


def _load_tokenizer(uri: str) -> Any:
    import transformers

    from hearth_server.models import resolve_model

    path = resolve_model(uri).path
    hf: Any = transformers
    return hf.AutoTokenizer.from_pretrained(str(path))


def _validate(args: argparse.Namespace) -> int:
    from hearth_server.models import ModelResolutionError

    try:
        tokenizer = _load_tokenizer(args.base_model) if args.base_model else None
        report, _ = validate(args.dataset, args.format, tokenizer, args.max_errors)
    except (DatasetSourceError, ModelResolutionError) as exc:
        data = {"valid": False, "error": str(exc)}
        if args.json:
            print(json.dumps(data, indent=2))
        if args.result_file is not None:
            _write(args.result_file, data)
        print(f"hearth-trainer: {exc}", file=sys.stderr)
        return EXIT_INPUT
    data = {"dataset": args.dataset, **report.to_json()}
    if args.json:
        print(json.dumps(data, indent=2))
    if args.result_file is not None:
        _write(args.result_file, data)
    if not args.json:
        status = "valid" if report.valid else "INVALID"
        print(
            f"{args.dataset}: {status}: {report.example_count} examples, "
            f"~{report.estimated_token_count} tokens ({report.token_count_method}), "
            f"{report.average_turn_count:.2f} turns/example",
            file=sys.stderr,
        )
        for err in report.errors:
            print(f"  {err}", file=sys.stderr)
        if report.error_count > len(report.errors):
            print(f"  ... and {report.error_count - len(report.errors)} more", file=sys.stderr)
    return EXIT_OK if report.valid else EXIT_INVALID


class _StopFlag:
    """Set by SIGTERM/SIGINT: the trainer checkpoints after the current step and exits."""

    def __init__(self) -> None:
        self.set = False

    def __call__(self) -> bool:
        return self.set

    def handle(self, signum: int, _frame: object) -> None:
        log.warning("signal %d: stopping after this step and writing a checkpoint", signum)
        self.set = True


def _train(args: argparse.Namespace) -> int:
    # Handlers first: a SIGTERM during the slow imports below must not kill us mid-way.
    stop = _StopFlag()
    previous = {s: signal.signal(s, stop.handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _run_training(args, stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run_training(args: argparse.Namespace, stop: _StopFlag) -> int:
    from hearth_server.models import ModelResolutionError
    from hearth_trainer.config import TrainConfig
    from hearth_trainer.reporting import default_reporters
    from hearth_trainer.train import TrainingError, train

    cfg = TrainConfig(
        dataset=args.dataset,
        output=args.output,
        base_model=args.base_model,
        warm_start_from=args.warm_start_from,
        format=args.format,
        evaluation_dataset=args.evaluation_dataset,
        eval_auto_carveout=args.eval_auto_carveout,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        learning_rate_warmup_steps=args.learning_rate_warmup_steps,
        lr_schedule=args.lr_schedule,
        lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha,
        max_context_length=args.max_context_length,
        batch_size=args.batch_size,
        batch_size_samples=args.batch_size_samples,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        optimizer_weight_decay=args.optimizer_weight_decay,
        early_stop=args.early_stop,
        early_stop_patience=args.early_stop_patience,
        eval_steps=args.eval_steps,
        seed=args.seed,
        checkpoint_steps=args.checkpoint_steps,
        micro_batch_tokens=args.micro_batch_tokens,
        device=args.device,
        dtype=args.dtype,
        progress_file=args.progress_file or args.output / "progress.jsonl",
    )
    try:
        cfg.check()
    except ValueError as exc:
        print(f"hearth-trainer train: {exc}", file=sys.stderr)
        return EXIT_USAGE
    reporter = default_reporters(cfg.progress_file)
    try:
        result = train(cfg, reporter, stop)
    except DatasetInvalidError as exc:
        data = {"status": "failed", "reason": "DatasetInvalid", **exc.report.to_json()}
        _emit(data, args.result_file)
        print(f"hearth-trainer train: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except (DatasetSourceError, ModelResolutionError) as exc:
        print(f"hearth-trainer train: {exc}", file=sys.stderr)
        _failure(args.result_file, "InputUnavailable", str(exc))
        return EXIT_INPUT
    except TrainingError as exc:
        print(f"hearth-trainer train: {exc}", file=sys.stderr)
        _failure(args.result_file, "TrainingFailed", str(exc))
        return EXIT_FAILED
    except Exception as exc:
        log.exception("training failed")
        _failure(args.result_file, "TrainingFailed", f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED
    if result.get("status") == "interrupted":
        _emit(result, args.result_file)
        return EXIT_INTERRUPTED
    _emit({k: v for k, v in result.items() if k != "config"}, args.result_file)
    return EXIT_OK


def _failure(result_file: Path | None, reason: str, message: str) -> None:
    if result_file is not None:
        _write(result_file, {"status": "failed", "reason": reason, "message": message})


if __name__ == "__main__":
    sys.exit(main())
