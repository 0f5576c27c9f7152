"""Read a dataset from its URI and validate it with the shared rules in ``hearth.datasets``.

The format and its rules live in the torch-free ``hearth.datasets``, which the operator
also uses for ConfigMap datasets; this module adds only what needs the trainer's sources
(``pvc://``, ``https://``, ``s3://``).
"""

from __future__ import annotations

from typing import Any

from hearth.datasets import (
    DEFAULT_MAX_ERRORS,
    DatasetInvalidError,
    Example,
    Format,
    ValidationReport,
    validate_lines,
)
from hearth_trainer.sources import open_lines


def validate(
    uri: str, fmt: Format, tokenizer: Any = None, max_errors: int = DEFAULT_MAX_ERRORS
) -> tuple[ValidationReport, list[Example]]:
    """Read ``uri`` and validate it. Raises ``DatasetSourceError`` when it cannot be read."""
    return validate_lines(open_lines(uri), fmt, tokenizer, max_errors)


def load_examples(uri: str, fmt: Format, tokenizer: Any = None) -> list[Example]:
    """The examples of a valid dataset; raises :class:`DatasetInvalidError` otherwise."""
    report, examples = validate(uri, fmt, tokenizer)
    if not report.valid:
        raise DatasetInvalidError(report)
    return examples
