"""One module version as the host holds it.

``ServableVersion`` describes a version (name, version, digest, codec, examples, allowed devices,
memory it needs, and how to load its model onto a device); it comes from a package
(``ServableVersion.from_package``) or straight from a model in memory (``ServableVersion.from_model``).
``LoadedVersion`` is a servable version at run time: its model on a device, its micro-batcher, its input
validator, and the reference count that keeps it alive while requests use it.
"""

from __future__ import annotations

import copy
import hashlib
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import jsonschema
import numpy as np
import pluggy
import torch

from ..codec import TaskCodec
from ..errors import json_pointer
from ..model import ReasoningModel
from ..model.engine_choice import describe_step
from ..model.onnx_step import StepFunction, check_engine, step_for_engine
from ..model.precision import ResolvedPrecision, check_precision, resolve_precision
from ..package import Package
from ..package.errors import SelfTestFailed
from ..solving import Rows, grade_examples, solve_inputs, solve_tokens
from ..views import Candidate, choose, decode_candidate, needs_more_views, views_of
from .batching import MicroBatcher, RowResult
from .compute import run_on_device
from .errors import InvalidInput

Json = dict[str, Any]


def weights_digest(model: torch.nn.Module) -> str:
    """``sha256:<hex>`` over a model's state dict (names, shapes, dtypes and bytes), in key order."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{tuple(t.shape)}:{t.dtype};".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return "sha256:" + digest.hexdigest()


@dataclass(eq=False)
class ServableVersion:
    """Everything the host needs to load, verify and serve one version of a module."""

    name: str
    version: str
    digest: str
    codec: TaskCodec
    examples: list[tuple[Json, Json]]
    allowed_devices: tuple[str, ...]
    memory_bytes: int
    load_model: Callable[[str], ReasoningModel]  # device → model in eval mode on that device
    source: str = "memory"
    evaluation: dict[str, Any] | None = None  # the package's evaluation section (bf16 verdict for precision auto)
    _validator: Any = field(default=None, repr=False)

    @classmethod
    def from_model(
        cls,
        name: str,
        version: str,
        model: ReasoningModel,
        codec: TaskCodec,
        examples: list[tuple[Json, Json]] | None = None,
        *,
        allowed_devices: Sequence[str] = ("cpu", "cuda"),
        digest: str | None = None,
    ) -> "ServableVersion":
        """A version made from a model in memory; the digest defaults to the weights' sha256."""
        model = model.eval()
        cpu_model = model.to("cpu")

        def load_model(device: str) -> ReasoningModel:
            return cpu_model if torch.device(device).type == "cpu" else copy.deepcopy(cpu_model).to(device)

        memory = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
        return cls(
            name,
            version,
            digest or weights_digest(model),
            codec,
            list(examples or []),
            tuple(allowed_devices),
            memory,
            load_model,
        )

    @classmethod
    def from_package(cls, pkg: Package, plugins: pluggy.PluginManager | None = None) -> "ServableVersion":
        """A version from an opened, verified package; its codec comes from ``plugins`` (the host's manager)."""
        manifest = pkg.manifest
        runtime = getattr(manifest, "runtime", None)
        devices = tuple(getattr(runtime, "devices", None) or ("cpu",))
        # The manifest states what the model needs; without it the package size (weights
        # dominate it) is the estimate.
        memory = getattr(runtime, "memory_bytes", None) or os.path.getsize(pkg.path)

        def load_model(device: str) -> ReasoningModel:
            return pkg.load_model(device=device).eval()

        evaluation = getattr(manifest, "evaluation", None)
        return cls(
            manifest.name,
            manifest.version,
            pkg.digest,
            pkg.codec(plugins),
            list(pkg.examples),
            devices,
            int(memory),
            load_model,
            source=str(getattr(pkg, "path", "package")),
            evaluation=evaluation.model_dump() if evaluation is not None else None,
        )

    @property
    def input_validator(self) -> Any:
        """The compiled JSON Schema validator of the codec's input schema."""
        if self._validator is None:
            schema = self.codec.input_schema()
            validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
            self._validator = validator_cls(schema)
        return self._validator

    def allows(self, device: str) -> bool:
        """Does the manifest allow ``device`` ("cuda:1" is allowed by "cuda")?"""
        kind = torch.device(device).type
        return device in self.allowed_devices or kind in self.allowed_devices


class LoadedVersion:
    """A version at run time: model on a device, batcher, reference count (see module docstring).

    Reference counting: every request ``acquire``s the version before it starts and ``release``s
    it when done; the host retires a version (swap, unpin) and frees it when the count is zero.
    The counters are guarded by the host's placement lock, not by this object.
    """

    def __init__(
        self,
        spec: ServableVersion,
        *,
        window_s: float = 0.002,
        max_batch_size: int = 64,
        wait_fraction: float = 0.1,
        cpu_threads: int | None = None,
        views: int = 1,
        engine: str = "eager",
        cuda_graphs: bool = False,
        precision: str = "fp32",
    ) -> None:
        self.spec = spec
        self.engine = check_engine(engine)
        self.precision_asked = check_precision(precision)
        self.precision: ResolvedPrecision | None = None  # resolved when loaded
        self.cuda_graphs = cuda_graphs
        self.step: StepFunction | None = None  # the engine's supervision step; None: eager
        self.views = views
        self._extra_views = views_of(spec.codec, views)[1:]
        self.wait_fraction = wait_fraction
        self.cpu_threads = cpu_threads
        self.window_s = window_s
        self.max_batch_size = max_batch_size
        self.device: str | None = None  # device reserved for (or holding) the model
        self.model: ReasoningModel | None = None
        self.batcher: MicroBatcher | None = None
        self.refcount = 0
        self.retired = False
        self.closed = False
        self.last_used = time.monotonic()
        self.load_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<LoadedVersion {self.name} {self.version} on {self.device} refs={self.refcount}>"

    @classmethod
    def from_package(cls, pkg: Any, device: str = "cpu", **options: Any) -> "LoadedVersion":
        """Load an opened package onto ``device`` (outside any host: no budget, no slot).

        The version starts a batcher thread; call ``unload()`` when done with it.
        """
        loaded = cls(ServableVersion.from_package(pkg), **options)
        loaded.load(device)
        return loaded

    name = property(lambda self: self.spec.name, doc="The module's name.")
    version = property(lambda self: self.spec.version, doc="This version.")
    digest = property(lambda self: self.spec.digest, doc="The digest of the package (or weights) it serves.")

    @property
    def resident(self) -> bool:
        """Is the model loaded and ready to compute?"""
        return self.model is not None

    # ------------------------------------------------------------------------ lifecycle
    def load(self, device: str) -> None:
        """Load the model onto ``device`` and start the batcher.

        With the ``onnx`` engine, a model on the CPU gets its ONNX Runtime step here (exported once);
        on a CUDA device the model runs eager (ONNX Runtime is this project's CPU engine), from CUDA
        graphs with ``cuda_graphs``.
        """
        model = self.spec.load_model(device)
        on_cpu = torch.device(device).type == "cpu"
        self.precision = resolve_precision(self.precision_asked, device, self.spec.evaluation)
        check = self._check_inputs()
        self.step = step_for_engine(
            model,
            self.engine if on_cpu else "eager",
            threads=self.cpu_threads,
            cuda_graphs=self.cuda_graphs,
            precision=self.precision.precision,
            check_tokens=check[0],
            check_puzzle_ids=check[1],
            answer_table=self.spec.codec.answer_token_table(),
        )
        self.device = device
        self.batcher = MicroBatcher(
            self.run_batch,
            window_s=self.window_s,
            max_batch_size=self.max_batch_size,
            wait_fraction=self.wait_fraction,
            name=f"trm-batcher-{self.name}-{self.version}",
        )
        self.model = model  # last: ``resident`` turns true only once everything is in place

    def _check_inputs(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The shipped examples, encoded: the inputs an ONNX step must answer exactly as eager does."""
        codec, rows, ids = self.spec.codec, [], []
        for data, _ in self.spec.examples:
            try:
                rows.append(np.asarray(codec.encode_input(data), dtype=np.int64))
                ids.append(int(codec.puzzle_id(data)))
            except Exception:  # noqa: BLE001 - a broken example is the self-test's to report
                continue
        return (np.stack(rows), np.asarray(ids, dtype=np.int64)) if rows else (None, None)

    @property
    def computing(self) -> str:
        """How this version's steps compute: precision (and why, when chosen), engine, threads."""
        precision = self.precision.describe() if self.precision is not None else self.precision_asked
        return f"{precision}; {describe_step(self.step)} on {self.device}"

    def unload(self) -> None:
        """Stop the batcher and drop the model (the version may be loaded again later).

        Only called on idle versions, so no batch is running; the worker thread ends by itself.
        """
        batcher, self.batcher = self.batcher, None
        self.model = None
        self.step = None
        if batcher is not None:
            batcher.close(wait=False)

    # ------------------------------------------------------------------------ computing
    def validate_input(self, data: Any, path_prefix: Sequence[Any] = ()) -> None:
        """Raise ``InvalidInput`` (with a JSON pointer) if ``data`` breaks the codec's input schema."""
        error = jsonschema.exceptions.best_match(self.spec.input_validator.iter_errors(data))
        if error is not None:
            raise InvalidInput(
                f"input does not match the {self.spec.codec.name!r} input schema of {self.name} "
                f"{self.version}: {error.message}",
                json_pointer([*path_prefix, *error.absolute_path]),
            )

    def encode(self, data: Json, path_prefix: Sequence[Any] = ()) -> tuple[np.ndarray, int]:
        """Validate and encode one input: (tokens (L,), puzzle id)."""
        self.validate_input(data, path_prefix)
        codec = self.spec.codec
        try:
            return np.asarray(codec.encode_input(data), dtype=np.int64), int(codec.puzzle_id(data))
        except InvalidInput:
            raise
        except Exception as exc:  # codec errors carry a path; anything else is still the input's fault
            path = getattr(exc, "path", "")
            message = getattr(exc, "message", str(exc))
            raise InvalidInput(
                f"{self.name} {self.version} cannot encode the input: {message}", json_pointer(path_prefix) + path
            ) from exc

    def run_batch(self, tokens: np.ndarray, puzzle_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Solve a (B, L) batch with early halting on this version's device; numpy results.

        Runs on the device's compute thread (``trm_modules.host.compute``).
        """
        model = self.model
        if model is None:
            raise RuntimeError(f"{self.name} {self.version} is not loaded")
        device = self.device or "cpu"
        return run_on_device(device, self._solve_tokens, model, device, tokens, puzzle_ids)

    def _solve_tokens(self, model: ReasoningModel, device: str, tokens: np.ndarray, puzzle_ids: np.ndarray) -> Rows:
        # Intra-op threads are a per-thread setting: this changes only the compute thread.
        if self.cpu_threads and device == "cpu" and torch.get_num_threads() != self.cpu_threads:
            torch.set_num_threads(self.cpu_threads)
        precision = self.precision.precision if self.precision is not None else "fp32"
        return solve_tokens(
            model,
            tokens,
            puzzle_ids,
            answer_table=self.spec.codec.answer_token_table(),
            step=self.step,
            precision=precision,
        )

    def first_candidate(self, data: Json, row: RowResult) -> Candidate:
        """The model's first answer to ``data`` (``row``), decoded and rule-checked."""
        return decode_candidate(self.spec.codec, row.tokens, data, row.steps, row.confidence)

    def wants_more_views(self, first: Candidate) -> bool:
        """Would this version seek the answer in further test-time views (``trm_modules.views``)?"""
        return bool(self._extra_views) and needs_more_views(first)

    def submit(self, tokens: np.ndarray, puzzle_id: int) -> Future:
        """Queue one encoded input on the batcher; its future resolves to the ``RowResult``."""
        batcher = self.batcher
        if batcher is None:
            raise RuntimeError(f"{self.name} {self.version} is not loaded")
        return batcher.submit(tokens, puzzle_id)

    def submit_views(self, tokens: np.ndarray, puzzle_id: int) -> list[Future]:
        """Queue the other test-time views of an input on the batcher (they batch with whatever waits)."""
        return [self.submit(view.apply(tokens), puzzle_id) for view in self._extra_views]

    def answer_with_views(
        self, data: Json, tokens: np.ndarray, puzzle_id: int, first: Candidate, pending: list[Future] | None = None
    ) -> tuple[Candidate, int, int]:
        """(chosen answer, steps of all views, views solved), after the first answer ``first``.

        ``pending``: the views already queued by ``submit_views``; queued here when the first answer
        wants them. Blocks while they are solved.
        """
        candidates = [first]
        if pending is None and self.wants_more_views(first):
            pending = self.submit_views(tokens, puzzle_id)
        for view, future in zip(self._extra_views, pending or ()):
            row = future.result()
            candidates.append(
                decode_candidate(self.spec.codec, view.invert(row.tokens), data, row.steps, row.confidence)
            )
        return choose(candidates), sum(c.steps for c in candidates), len(candidates)

    def self_test(self) -> None:
        """Run every shipped example through the loaded model (``trm_modules.solving``, on this version's
        device thread); ``SelfTestFailed`` names the first example whose answer neither equals the
        expected output nor passes the codec's rules."""
        examples = self.spec.examples
        if not examples:
            return
        for i, (inp, _) in enumerate(examples):  # a broken example is the package's fault: say where
            self.validate_input(inp, ("examples", i, "input"))
        answers = solve_inputs(None, self.spec.codec, [inp for inp, _ in examples], solve=self.run_batch)
        results = grade_examples([str(i) for i in range(len(examples))], examples, answers)
        SelfTestFailed.raise_for(results, examples, f"{self.name} {self.version}")
