"""``manifest.json``: pydantic models, JSON-Schema validation, the format-version rule, canonical JSON.

``spec/manifest.schema.json`` is the single source of truth for the shape of a manifest (a copy
ships in this package as ``manifest.schema.json``); the pydantic models give typed access
and the few semantic rules a schema cannot express (SPDX syntax, a buildable ``TRMConfig``).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import warnings
from importlib import resources
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..codec import TaskSpec
from ..errors import UnknownArchitecture, json_pointer
from .errors import ArchitectureUnavailable, ManifestInvalid, UnsupportedFormatVersion

#: The format this release writes; it reads every 1.x (newer minors with a warning).
FORMAT_VERSION = "1.1"  # 1.1 adds the optional task.provider and provenance.data_files
FORMAT_MAJOR, FORMAT_MINOR = (int(part) for part in FORMAT_VERSION.split("."))
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "signature.json"
RESERVED_NAMES = frozenset({MANIFEST_NAME, SIGNATURE_NAME})


class NewerFormatWarning(UserWarning):
    """A package uses a newer minor format version; it loads, but fields this release ignores exist."""


class Author(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    email: str | None = None
    url: str | None = None


class CodecProvider(BaseModel):
    """``task.provider``: the distribution (and its version) that provided the codec when the package was built."""

    model_config = ConfigDict(extra="ignore")
    distribution: str
    version: str | None = None

    def install_hint(self) -> str:
        """What to install to get the codec: ``pip install 'NAME==VERSION'``."""
        return (
            f"pip install '{self.distribution}=={self.version}'"
            if self.version
            else f"pip install '{self.distribution}'"
        )


class Task(TaskSpec):
    """``task`` of the manifest: unknown keys are ignored (newer minor formats may add some)."""

    model_config = ConfigDict(extra="ignore")
    provider: CodecProvider | None = None


class ModelInfo(BaseModel):
    """``model``: the architecture's name (an installed plugin provides it) and its full config, validated by
    that architecture's config model (``TRMConfig`` for ``"trm"``, ``HRMConfig`` for ``"hrm"`` …)."""

    model_config = ConfigDict(extra="ignore")
    architecture: str = "trm"
    config: Any
    parameters: int
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    weights: str = "weights.safetensors"

    @model_validator(mode="after")
    def _config_of_its_architecture(self) -> "ModelInfo":
        from ..plugins import get_architecture

        self.config = get_architecture(self.architecture).config(self.config)  # ConfigError is a ValueError
        return self


class Runtime(BaseModel):
    model_config = ConfigDict(extra="ignore")
    min_trm_modules: str
    devices: list[Literal["cpu", "cuda", "mps"]]
    memory_bytes: int


class Evaluation(BaseModel):
    """How well the module does, on what; extra metrics are kept as given."""

    model_config = ConfigDict(extra="allow")
    dataset: str
    metric: str
    value: float
    steps: int
    per_step_accuracy: list[float] | None = None
    mean_steps_halting: float | None = None
    accuracy_halting: float | None = None
    accuracy_1_step: float | None = None
    examples: int | None = None


class FeedbackWindow(BaseModel):
    model_config = ConfigDict(extra="allow")
    start: str
    end: str
    events: int | None = None


class Provenance(BaseModel):
    """Where the weights come from: parent package, recipe, data, feedback window."""

    model_config = ConfigDict(extra="allow")
    created_at: str
    parent_digest: str | None = None
    recipe: str | None = None
    command: str | None = None
    data: str | None = None
    feedback_window: FeedbackWindow | None = None
    hardware: str | None = None
    wall_time_s: float | None = None
    optimizer_steps: int | None = None
    #: Held-out exact accuracy against optimiser step over every sitting of the run (the card plots it).
    history: list[dict[str, Any]] | None = None
    #: The data files trained on: ``{name, sha256, rows, role, layout}`` each (format 1.1).
    data_files: list[dict[str, Any]] | None = None


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    path: str
    size: int
    sha256: str


class Manifest(BaseModel):
    """The parsed ``manifest.json`` of a package (see spec/SPEC.md for every field)."""

    model_config = ConfigDict(extra="ignore")
    format_version: str = FORMAT_VERSION
    name: str
    version: str
    module_id: str
    title: str
    description: str = ""
    authors: list[Author] = Field(default_factory=list)
    license: str
    task: Task
    model: ModelInfo
    runtime: Runtime
    evaluation: Evaluation | None = None
    provenance: Provenance | None = None
    files: list[FileEntry]

    def file(self, path: str) -> FileEntry | None:
        """The ``files`` entry for ``path``, or None."""
        for entry in self.files:
            if entry.path == path:
                return entry
        return None

    def to_json_dict(self) -> dict[str, Any]:
        """The manifest as JSON data, with absent optional values left out (not written as null)."""
        data = self.model_dump(mode="json")
        for section in ("evaluation", "provenance"):
            if data.get(section) is None:
                data.pop(section, None)
            else:
                data[section] = {k: v for k, v in data[section].items() if v is not None}
        if data["task"].get("provider") is None:
            data["task"].pop("provider", None)
        for author in data["authors"]:
            for key in [k for k, v in author.items() if v is None]:
                del author[key]
        return data


def canonical_json(data: Any) -> bytes:
    """The canonical bytes of JSON data: UTF-8, keys sorted, no insignificant whitespace.

    This is what signatures cover (spec/SPEC.md, "Canonical JSON").
    """
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


@functools.lru_cache(maxsize=1)
def manifest_schema() -> dict[str, Any]:
    """The manifest JSON Schema shipped with this package (identical to spec/manifest.schema.json)."""
    text = resources.files(__package__).joinpath("manifest.schema.json").read_text("utf-8")
    return json.loads(text)


def _without_additional_properties(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_additional_properties(v) for k, v in schema.items() if k != "additionalProperties"}
    if isinstance(schema, list):
        return [_without_additional_properties(v) for v in schema]
    return schema


@functools.lru_cache(maxsize=2)
def _validator(tolerate_unknown_fields: bool) -> jsonschema.Draft202012Validator:
    schema = manifest_schema()
    if tolerate_unknown_fields:
        schema = _without_additional_properties(copy.deepcopy(schema))
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def check_format_version(data: Any) -> bool:
    """Apply the format-version rule; True when the package is a newer minor of our major.

    A newer major raises ``UnsupportedFormatVersion`` naming the release the package asks for.
    """
    version = data.get("format_version") if isinstance(data, dict) else None
    if not isinstance(version, str) or not re.fullmatch(r"\d{1,4}\.\d{1,4}", version):
        raise ManifestInvalid(
            f"format_version must be a 'MAJOR.MINOR' string, got {version!r}",
            file=MANIFEST_NAME,
            path="/format_version",
        )
    major, minor = (int(p) for p in version.split("."))
    if major != FORMAT_MAJOR:
        from .. import __version__

        runtime = data.get("runtime") if isinstance(data.get("runtime"), dict) else {}
        wanted = runtime.get("min_trm_modules")
        needs = (
            f"trm-modules {wanted} or later (as its runtime.min_trm_modules says)"
            if isinstance(wanted, str)
            else f"a trm-modules release that reads package format {major}.x"
        )
        raise UnsupportedFormatVersion(
            f"package format {version} is not readable by trm-modules {__version__}, which reads format "
            f"{FORMAT_MAJOR}.x; install {needs}",
            file=MANIFEST_NAME,
            path="/format_version",
        )
    if minor > FORMAT_MINOR:
        warnings.warn(
            f"package format {version} is newer than {FORMAT_VERSION}; it loads, but fields "
            f"added after format {FORMAT_VERSION} are ignored",
            NewerFormatWarning,
            stacklevel=3,
        )
        return True
    return False


_SPDX_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.\-+:]+)")
_SPDX_ID = re.compile(r"^(DocumentRef-[A-Za-z0-9.\-]+:)?(LicenseRef-[A-Za-z0-9.\-]+|[A-Za-z0-9][A-Za-z0-9.\-]*\+?)$")


def check_spdx_expression(expression: str) -> str | None:
    """Why ``expression`` is not SPDX license-expression syntax, or None if it is."""
    tokens: list[str] = []
    pos = 0
    text = expression.rstrip()
    while pos < len(text):
        match = _SPDX_TOKEN.match(text, pos)
        if not match:
            return f"unexpected character at position {pos}"
        tokens.append(match.group(1))
        pos = match.end()
    index = 0

    def parse_expression() -> str | None:
        nonlocal index
        problem = parse_term()
        while problem is None and index < len(tokens) and tokens[index] in ("AND", "OR"):
            index += 1
            problem = parse_term()
        return problem

    def parse_term() -> str | None:
        nonlocal index
        if index >= len(tokens):
            return "the expression ends where a license id was expected"
        token = tokens[index]
        if token == "(":
            index += 1
            problem = parse_expression()
            if problem:
                return problem
            if index >= len(tokens) or tokens[index] != ")":
                return "unbalanced parenthesis"
            index += 1
            return None
        if token in ("AND", "OR", "WITH", ")") or not _SPDX_ID.match(token):
            return f"{token!r} is not a license id"
        index += 1
        if index < len(tokens) and tokens[index] == "WITH":
            index += 1
            if index >= len(tokens) or not _SPDX_ID.match(tokens[index]):
                return "WITH must be followed by an exception id"
            index += 1
        return None

    problem = parse_expression()
    if problem is None and index != len(tokens):
        problem = f"unexpected {tokens[index]!r}"
    return problem


def parse_manifest(data: Any) -> Manifest:
    """Validate manifest JSON data (format version, schema, semantics) into a ``Manifest``.

    Raises ``ManifestInvalid`` (or ``UnsupportedFormatVersion``) with a JSON pointer to the fault.
    """
    if not isinstance(data, dict):
        raise ManifestInvalid("the manifest must be a JSON object", file=MANIFEST_NAME)
    newer_minor = check_format_version(data)
    error = jsonschema.exceptions.best_match(_validator(newer_minor).iter_errors(data))
    if error is not None:
        raise ManifestInvalid(
            f"manifest breaks the schema: {error.message}", file=MANIFEST_NAME, path=json_pointer(error.absolute_path)
        )
    problem = check_spdx_expression(data["license"])
    if problem:
        raise ManifestInvalid(
            f"license {data['license']!r} is not an SPDX expression: {problem}", file=MANIFEST_NAME, path="/license"
        )
    architecture = data["model"]["architecture"]
    try:
        from ..plugins import get_architecture

        get_architecture(architecture)
    except UnknownArchitecture as exc:
        raise ArchitectureUnavailable(
            str(exc), architecture=architecture, file=MANIFEST_NAME, path="/model/architecture"
        ) from exc
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ManifestInvalid(
            f"manifest is inconsistent: {first['msg']}", file=MANIFEST_NAME, path=json_pointer(first["loc"])
        ) from exc
    paths = [entry.path for entry in manifest.files]
    if len(set(paths)) != len(paths):
        raise ManifestInvalid("files lists a path more than once", file=MANIFEST_NAME, path="/files")
    for index, path in enumerate(paths):
        if path in RESERVED_NAMES:
            raise ManifestInvalid(
                f"files must not list {path} (it is never covered by its own digest)",
                file=MANIFEST_NAME,
                path=f"/files/{index}/path",
            )
    if manifest.file(manifest.model.weights) is None:
        raise ManifestInvalid(
            f"model.weights names {manifest.model.weights!r}, which files does not list",
            file=MANIFEST_NAME,
            path="/model/weights",
        )
    return manifest
