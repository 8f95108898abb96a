"""The base of every resource model: camelCase field names as users write them, strict
types (a string where an integer belongs is an error, as in the API server), and unknown
fields kept for forward compatibility but listed so `validate` can report them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from tensorfusion.api.advice import Advice
from tensorfusion.api.names import (
    dns_subdomain_problem,
    label_value_problem,
    qualified_name_problem,
)

GROUP = "tensor-fusion.ai"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"


class ApiModel(BaseModel):
    """A part of a manifest. Subclasses declare fields with camelCase aliases."""

    model_config = ConfigDict(
        strict=True,
        extra="allow",
        populate_by_name=True,
        validate_default=False,
        serialize_by_alias=True,
    )

    # False for parts we only partly model (e.g. a PodSpec): their other fields are legitimate,
    # so listing them as unknown would only be noise.
    report_unknown_fields: ClassVar[bool] = True

    def unknown_fields(self, path: str = "") -> Iterator[str]:
        """Paths of fields present in the input that this model does not know."""
        for model, at in self.parts(path):
            if model.report_unknown_fields:
                for key in model.model_extra or {}:
                    yield _join(at, key)

    def advice(self, path: str = "") -> Iterator[tuple[str, str]]:
        """(path, remark) of each value that passes upstream's checks but not our stricter
        ones (fields annotated with `Advice`)."""
        for model, at in self.parts(path):
            for name, field in type(model).model_fields.items():
                for rule in field.metadata:
                    if isinstance(rule, Advice) and (remark := rule.remark(getattr(model, name))):
                        yield _join(at, field.alias or name), remark
            for sub_path, remark in model.remarks():
                yield _join(at, sub_path), remark

    def remarks(self) -> Iterator[tuple[str, str]]:
        """(path below this model, remark) of advisory checks across fields; see `advice`."""
        return iter(())

    def parts(self, path: str = "") -> Iterator[tuple[ApiModel, str]]:
        """This model and every model within it, each with its path."""
        yield self, path
        for name, field in type(self).model_fields.items():
            yield from _parts_in(getattr(self, name), _join(path, field.alias or name))


def field_problem(path: str, message: str) -> PydanticCustomError:
    """An error found by a cross-field check, reported at `path` below the model's own."""
    return PydanticCustomError("field", "{message}", {"message": message, "path": path})


def field_problems(problems: Sequence[tuple[str, str]]) -> PydanticCustomError:
    """Every error one check found (a nested model's), each reported at its own path below
    the model's; pydantic lets a validator raise only one error, so they travel together."""
    message = "; ".join(f"{path}: {text}" for path, text in problems)
    return PydanticCustomError("fields", "{message}", {"message": message, "problems": problems})


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _parts_in(value: object, path: str, depth: int = 0) -> Iterator[tuple[ApiModel, str]]:
    # Models sit at most two containers deep (dict[str, list[Model]]); free-form documents
    # below that are not walked, so a YAML alias bomb in one costs nothing here.
    if isinstance(value, ApiModel):
        yield from value.parts(path)
    elif depth < 2 and isinstance(value, list):
        for index, item in enumerate(value):
            yield from _parts_in(item, f"{path}[{index}]", depth + 1)
    elif depth < 2 and isinstance(value, dict):
        for key, item in value.items():
            yield from _parts_in(item, f"{path}[{key!r}]", depth + 1)


def _check_keys(mapping: dict[str, str], check_values: bool) -> dict[str, str]:
    for key, value in mapping.items():
        if problem := qualified_name_problem(key):
            raise ValueError(problem)
        if check_values and (problem := label_value_problem(value)):
            raise ValueError(f"{key}: {problem}")
    return mapping


def _check_object_name(name: str) -> str:
    if problem := dns_subdomain_problem(name):
        raise ValueError(problem)
    return name


ObjectName = Annotated[str, AfterValidator(_check_object_name)]
Labels = Annotated[dict[str, str], AfterValidator(lambda m: _check_keys(m, check_values=True))]
Annotations = Annotated[
    dict[str, str], AfterValidator(lambda m: _check_keys(m, check_values=False))
]


class ObjectMeta(ApiModel):
    """`metadata` of any object. Server-set fields are accepted and not interpreted."""

    report_unknown_fields: ClassVar[bool] = False

    name: ObjectName | None = None
    generate_name: str | None = Field(default=None, alias="generateName")
    namespace: ObjectName | None = None
    labels: Labels = Field(default_factory=dict)
    annotations: Annotations = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")


class TopLevelObject(ApiModel):
    """An object with apiVersion/kind/metadata; `name` is required unless generateName."""

    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: ObjectMeta

    @model_validator(mode="after")
    def _named(self) -> TopLevelObject:
        if not self.metadata.name and not self.metadata.generate_name:
            raise field_problem("metadata.name", "required: every object needs a name")
        return self


class TensorFusionObject(TopLevelObject):
    """An object of our API group; subclasses narrow `kind` to their own name."""

    api_version: Literal["tensor-fusion.ai/v1"] = Field(alias="apiVersion")


def first_duplicate(names: Iterable[str]) -> tuple[int, str] | None:
    """(index, name) of the first name seen before, or None; for lists keyed by name."""
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            return index, name
        seen.add(name)
    return None
