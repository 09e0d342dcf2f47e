"""Trigger specs for `stargraph serve` from a YAML file (the operator gets them from Kubernetes instead)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from stargraph.models import IRBase, describe_validation_error
from stargraph.triggers.specs import CronSpec, WebhookSpec

__all__ = ["ServeConfig", "load_serve_config"]


class ServeConfig(IRBase):
    cron: list[CronSpec] = []
    webhook: list[WebhookSpec] = []


def load_serve_config(path: Path) -> dict[str, Any]:
    """The `deps` entries for the file's specs; `ValueError` naming the field when the file is invalid."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        config = ServeConfig.model_validate(raw)
    except OSError as exc:
        raise ValueError(str(exc)) from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from exc
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from exc
    return {"cron_specs": config.cron, "webhook_specs": config.webhook}
