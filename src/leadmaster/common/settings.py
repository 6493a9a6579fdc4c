"""Settings both services share: empty variables as unset, and one line naming each bad variable (CONTRACT §3.1)."""

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationError
from pydantic_settings import BaseSettings

from leadmaster.common.logs import LogFormat


def _empty_is_unset(value: Any) -> Any:
    return value or None


# A variable that may be left empty: `VAR=` counts as not set.
OptionalText = Annotated[str | None, AfterValidator(_empty_is_unset)]
# json or pretty; empty or unset: pretty on a terminal, json otherwise (common.logs). Emptiness is
# handled before validation, where an empty string is not one of the two choices.
OptionalLogFormat = Annotated[LogFormat | None, BeforeValidator(_empty_is_unset)]


def variable_name(settings_cls: type[BaseSettings], loc: str) -> str:
    """The environment variable behind a validation error's `loc` (a field name or already an alias)."""
    field = settings_cls.model_fields.get(loc)
    if field is None:
        return loc  # pydantic-settings reports aliased fields under the alias, i.e. the variable itself
    if isinstance(field.validation_alias, str):
        return field.validation_alias
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    return f"{prefix}{loc}".upper()


def describe_error(exc: ValidationError, settings_cls: type[BaseSettings]) -> str:
    """`VAR='value' is invalid: why`, for every bad variable, on one line (a validator's own text is kept)."""
    parts: list[str] = []
    for err in exc.errors():
        ctx_error = (err.get("ctx") or {}).get("error")
        if ctx_error is not None:
            # Our validators' messages already name the variable and its value.
            parts.append(str(ctx_error))
            continue
        var = variable_name(settings_cls, str(err["loc"][0])) if err.get("loc") else "configuration"
        if err["type"] == "missing":
            parts.append(f"{var} is not set")
        else:
            parts.append(f"{var}={err.get('input')!r} is invalid: {err['msg']}")
    return "; ".join(parts).replace("\n", " ")
