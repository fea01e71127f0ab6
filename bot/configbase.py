"""What every config model and config check shares: the strict base model, problems with
their key path and hint, and the error that carries them (``bot/config.py`` re-exports them;
feature and integration sections import them from here without importing the core config)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from bot.secrets import masker


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str
    hint: str = ""
    # A warning is printed by check-config but does not fail it (nor stop the console).
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        text = f"{text} ({self.hint})" if self.hint else text
        # Masked here, so no way of printing a problem can show a secret.
        return masker.mask(f"warning: {text}" if self.severity == "warning" else text)


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(masker.mask(str(p)) for p in problems))


def format_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _hint_for(error: dict[str, Any], model: type[BaseModel] | None) -> str:
    if error["type"] == "extra_forbidden" and model is not None:
        name = str(error["loc"][-1])
        close = difflib.get_close_matches(name, list(model.model_fields), n=1)
        if close:
            return f"did you mean '{close[0]}'?"
        return "allowed: " + ", ".join(f for f in model.model_fields if f != "source_dir")
    return ""


def hint_for(error: dict[str, Any], root: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The hint for a validation error at ``loc`` inside ``root`` (feature sections too)."""
    return _hint_for(error, _model_at(loc, root))


def _model_at(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The model class that owns the last key of ``loc`` (for 'did you mean' hints)."""
    model: Any = root
    for part in loc[:-1]:
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(str(part))
            if field is None:
                return None
            model = _unwrap(field.annotation)
        elif isinstance(part, (int, str)) and model is not None:
            continue
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Find the model inside ``X | None``, ``dict[str, X]`` and ``list[X]``."""
    args = getattr(annotation, "__args__", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in args or ():
        found = _unwrap(arg)
        if found is not None:
            return found
    return None


def secret_value(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None
