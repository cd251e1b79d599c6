"""`trm` commands of the package area: pack, inspect, verify, keygen, sign, solve, export-onnx,
publish, install, yank, modules. Thin shells over ``trm_modules.package``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import InputError
from ..views import DEFAULT_VIEWS
from .errors import reported

console = Console()
errors = Console(stderr=True)

#: The package argument of every command that takes one: a path or NAME[@SPEC] (``locate_package``).
PackageArgument = Annotated[
    str, typer.Argument(help="A .trm file, or NAME[@SPEC] of an installed or published module.")
]
#: ``--trusted-keys`` of every command that checks signatures.
TrustedKeysOption = Annotated[
    Optional[Path], typer.Option("--trusted-keys", help="Require a signature by one of these keys.")
]
#: ``--registry`` of the registry commands.
RegistryOption = Annotated[
    Optional[Path], typer.Option(help="Registry folder (default: TRM_REGISTRY or the repo's registry/).")
]


def _task_override(task: Optional[str]) -> Optional[dict]:
    if task is None:
        return None
    text = Path(task).read_text("utf-8") if Path(task).is_file() else task
    try:
        return json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"--task must be JSON or a JSON file ({exc})") from exc


def parse_author(text: str) -> dict[str, str]:
    """``{"name", "email"?, "url"?}`` of an ``--author`` value: ``Ada Lovelace <ada@example.org> https://…``."""
    import re

    email = re.search(r"<([^<>@\s]+@[^<>\s]+)>", text)
    url = re.search(r"\bhttps?://\S+", text)
    name = text
    for found in (email, url):
        if found is not None:
            name = name.replace(found.group(0), " ")
    name = " ".join(name.split())
    if not name:
        raise typer.BadParameter(f"--author needs a name (e.g. 'Ada Lovelace <ada@example.org>'), got {text!r}")
    return {"name": name, **({"email": email.group(1)} if email else {}), **({"url": url.group(0)} if url else {})}


def pack(
    run_dir: Path = typer.Argument(..., help="A training run directory (written by `trm train`)."),
    name: str = typer.Option(..., "--name", help="Module name, a lowercase slug (e.g. sudoku-4x4)."),
    version: str = typer.Option(..., "--version", help="Semantic version of this package (e.g. 1.0.0)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Package file (default NAME-VERSION.trm)."),
    task: Optional[str] = typer.Option(
        None, help='Override task.json: JSON like {"codec": "sudoku", "params": {...}} or a file.'
    ),
    title: Optional[str] = typer.Option(None, help="Human title."),
    description: str = typer.Option("", help="One-paragraph description."),
    license: str = typer.Option("Apache-2.0", help="SPDX license expression."),
    module_id: Optional[str] = typer.Option(None, help="Stable module IRI (default urn:trm-modules:module:NAME)."),
    parent_digest: Optional[str] = typer.Option(None, help="Digest of the package this one was retrained from."),
    key: Optional[Path] = typer.Option(None, help="Sign with this ed25519 private key."),
    changes: Optional[str] = typer.Option(
        None, help="Lineage: what changed from the parent version (stored as provenance.changes)."
    ),
    outside: Optional[Path] = typer.Option(
        None,
        "--outside",
        help="JSON rows of bench/outside_puzzles.py --json for this module: stored as "
        "evaluation.outside and shown in the model card.",
    ),
    training_state: bool = typer.Option(
        False,
        "--training-state",
        help="Carry the live weights and optimiser moments, so `trm train --init-from` continues the run "
        "exactly (a pre-release of a run that spans sittings; about three times the weights' size).",
    ),
    compare: Optional[list[Path]] = typer.Option(
        None,
        "--compare",
        metavar="PACKAGE",
        help="Another version of the task (e.g. another architecture) to put side by side with this one in the "
        "card: parameters, CPU-minutes, held-out exact, outside first answer / default, steps. Repeatable.",
    ),
    authors: list[str] = typer.Option(
        [],
        "--author",
        metavar="'NAME <EMAIL>'",
        help="An author of the module (repeatable): a name, optionally followed by <email> and/or a URL.",
    ),
    allow_failing_examples: bool = typer.Option(
        False,
        "--allow-failing-examples",
        help="Pack even when the model solves none of the run's examples: its own (wrong) answers are recorded "
        "as the self-test, which `trm verify` then reports as breaking the task's rules.",
    ),
) -> None:
    """Build a .trm package from a training run.

    Its examples (the install self-test) are run examples the model solves, judged by their outputs and
    the task's rules; a model that solves none is refused unless --allow-failing-examples.
    """
    from ..lifecycle import pack_run
    from ..package import open_package

    with reported():
        compared = [open_package(other).manifest.model_dump(mode="json", exclude_none=True) for other in compare or []]
        path = pack_run(
            run_dir,
            name=name,
            version=version,
            out_path=output,
            task=_task_override(task),
            parent_digest=parent_digest,
            title=title,
            description=description,
            license=license,
            module_id=module_id,
            signing_key=key,
            changes=changes,
            training_state=training_state,
            outside=json.loads(outside.read_text("utf-8")) if outside else None,
            compare=compared,
            authors=[parse_author(a) for a in authors],
            allow_failing_examples=allow_failing_examples,
        )
        package = open_package(path)
        console.print(
            f"packed {package.name}@{package.version} → {path} ({path.stat().st_size:,} bytes, {package.digest})"
        )


def calibrate_halting(
    package: Path = typer.Argument(..., help="A .trm package whose halting to calibrate."),
    version: str = typer.Option(..., "--version", help="Version of the new package (e.g. 1.0.1)."),
    output: Path = typer.Option(..., "--output", "-o", help="Package file to write."),
    key: Optional[Path] = typer.Option(None, help="Sign with this ed25519 private key."),
    changes: Optional[str] = typer.Option(None, help="Lineage text (default: halting calibrated; weights unchanged)."),
    outside: Optional[Path] = typer.Option(None, "--outside", help="JSON rows of bench/outside_puzzles.py --json."),
    trusted_keys: Optional[Path] = typer.Option(
        None, "--trusted-keys", help="Require a signature by one of these keys."
    ),
) -> None:
    """A new version of a package with its halting calibrated on held-out puzzles (weights unchanged)."""
    from ..package import open_package
    from ..lifecycle.recalibrate import recalibrate_package

    with reported():
        path = recalibrate_package(
            package,
            version=version,
            out_path=output,
            changes=changes,
            trusted_keys=trusted_keys,
            signing_key=key,
            outside=json.loads(outside.read_text("utf-8")) if outside else None,
        )
        new = open_package(path)
        halting = new.halting or {}
        console.print(
            f"packed {new.name}@{new.version} → {path} ({path.stat().st_size:,} bytes, {new.digest}); "
            f"halting {json.dumps({k: halting.get(k) for k in ('threshold', 'min_steps', 'accuracy')})}"
        )


def inspect(
    package: PackageArgument,
    as_json: bool = typer.Option(False, "--json", help="Print the manifest (plus digest) as JSON."),
) -> None:
    """Show a package's manifest (checked like any open)."""
    from ..package.registry import find_package

    with reported():
        pkg = find_package(package)
    m = pkg.manifest
    if as_json:
        typer.echo(
            json.dumps({"digest": pkg.digest, "signed_by": pkg.signed_by, "manifest": m.to_json_dict()}, indent=2)
        )
        return
    table = Table(title=f"{m.name}@{m.version}", show_header=False)
    rows = [
        ("title", m.title),
        ("module_id", m.module_id),
        ("digest", pkg.digest),
        ("signed by", pkg.signed_by or "unsigned"),
        ("license", m.license),
        ("authors", ", ".join(a.name for a in m.authors) or "—"),
        (
            "task",
            f"{m.task.codec} {json.dumps(m.task.params, sort_keys=True)}"
            + (
                f" (codec from {m.task.provider.distribution} {m.task.provider.version or ''})".replace(" )", ")")
                if m.task.provider
                else ""
            ),
        ),
        (
            "data files",
            "; ".join(
                f"{f.get('name')} ({f.get('role', '')}, {f.get('rows')} rows, sha256:{str(f.get('sha256'))[:16]}…)"
                for f in ((m.provenance.data_files if m.provenance else None) or [])
            )
            or "—",
        ),
        (
            "model",
            f"{m.model.architecture}{(' mlp_t' if m.model.config.mlp_t else ' attention') if m.model.architecture == 'trm' else ''}, "
            f"{m.model.parameters:,} parameters, "
            f"{m.model.dtype}, H={getattr(m.model.config, 'H_cycles', '-')} L={getattr(m.model.config, 'L_cycles', '-')} "
            f"steps≤{m.model.config.halt_max_steps}",
        ),
        (
            "runtime",
            f"trm-modules ≥ {m.runtime.min_trm_modules}, {', '.join(m.runtime.devices)}, "
            f"~{m.runtime.memory_bytes / 2**20:.1f} MiB",
        ),
        (
            "evaluation",
            f"{m.evaluation.metric} {m.evaluation.value:.4f} on {m.evaluation.dataset} ({m.evaluation.steps} steps)"
            if m.evaluation
            else "—",
        ),
        ("created", m.provenance.created_at if m.provenance else "—"),
        ("parent", (m.provenance.parent_digest if m.provenance else None) or "—"),
        ("format", m.format_version),
        ("examples", str(len(pkg.examples))),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    files = Table("file", "size", "sha256")
    for entry in m.files:
        files.add_row(entry.path, f"{entry.size:,}", entry.sha256[:16] + "…")
    console.print(files)


def verify(
    package: PackageArgument,
    trusted_keys: Optional[Path] = typer.Option(
        None, "--trusted-keys", help="Folder of trusted *.pub keys (or one key file)."
    ),
    examples: bool = typer.Option(True, "--examples/--no-examples", help="Run the shipped examples."),
    device: str = typer.Option("cpu", help="Device for the examples."),
) -> None:
    """Check structure, schema, digests, signature, tensors against the config, and run the examples."""
    from ..package import verify_package
    from ..package.registry import locate_package

    with reported():
        report = verify_package(locate_package(package).path, trusted_keys, run_examples=examples, device=device)
    for check, detail in report.checks:
        mark = "[bold yellow]?[/]" if check in report.unverified else "[green]✓[/]"
        console.print(f"{mark} {check}: {detail}", highlight=False)
    doubts = [
        what
        for check, what in (("signature", "signer unverified"), ("examples", "self-test breaks the rules"))
        if check in report.unverified
    ]
    doubt = f" [bold yellow]({'; '.join(doubts)})[/]" if doubts else ""
    console.print(
        f"[bold green]OK[/] {report.package.name}@{report.package.version} {report.package.digest}{doubt}",
        highlight=False,
    )


def keygen(
    output: Path = typer.Option(..., "--output", "-o", help="Folder for NAME.key (private) and NAME.pub."),
    name: str = typer.Option("trm-signing", help="Key file base name."),
) -> None:
    """Create an ed25519 signing key pair."""
    from ..package import generate_keypair
    from ..package.signing import key_id, load_public_key

    with reported():
        private, public = generate_keypair(output, name)
        console.print(
            f"private key {private} (keep secret)\npublic key  {public}\nkey id      {key_id(load_public_key(public))}"
        )


def sign(
    package: Path = typer.Argument(..., help="A .trm package file (rewritten in place unless -o)."),
    key: Path = typer.Option(..., "--key", help="ed25519 private key (from `trm keygen`)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the signed package here instead."),
) -> None:
    """Sign a package: add (or replace) signature.json."""
    from ..package import open_package, sign_package

    with reported():
        path = sign_package(package, key, output)
        console.print(f"signed {path} by key {open_package(path).signed_by}")


def solve(
    package: PackageArgument,
    input: Path = typer.Option(..., "--input", help="JSONL file: one task input per line ('-' for stdin)."),
    output: Path = typer.Option(..., "--output", help="JSONL file for the answers ('-' for stdout)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    max_steps: Optional[int] = typer.Option(None, help="Supervision steps at most (default: the model's)."),
    no_halt: bool = typer.Option(False, "--no-halt", help="Run every step; no early halting."),
    batch_size: int = typer.Option(256, help="Inputs per batch."),
    views: int = typer.Option(
        DEFAULT_VIEWS,
        min=1,
        help="Test-time views an answer the task's rules reject is sought in (1: the model's first answer only).",
    ),
    trusted_keys: TrustedKeysOption = None,
    engine: Optional[str] = typer.Option(
        None,
        help="What computes the supervision steps: auto (the default, or "
        "$TRM_ENGINE: eager or ONNX Runtime on 1 core or all, whichever measures "
        "faster for this model when it loads, answers identical), eager (PyTorch) "
        "or onnx (ONNX Runtime on the CPU; the onnx extra).",
    ),
    precision: Optional[str] = typer.Option(
        None,
        help="fp32, bf16 (autocast) or auto (the default, or "
        "$TRM_PRECISION: bf16 only where this device measures fast at it and "
        "the package's evaluation shows bf16 keeps its answers).",
    ),
    cuda_graphs: Optional[bool] = typer.Option(
        None,
        "--cuda-graphs/--no-cuda-graphs",
        help="With --device cuda: replay the steps from CUDA graphs "
        "(default $TRM_CUDA_GRAPHS, off; not yet timed on a GPU).",
    ),
) -> None:
    """Answer a JSONL file of task inputs; one {"output", "steps", "confidence", "valid", "views"} or {"error"} per line."""
    import numpy as np

    from ..model.engine_choice import describe_step
    from ..model.onnx_step import check_engine, step_for_engine
    from ..model.precision import check_precision, resolve_precision
    from ..package.registry import find_package
    from ..settings import Settings
    from ..solving import answer_jsonl

    with reported():
        chosen = check_engine(engine if engine is not None else Settings.engine_from_environment())
        asked = check_precision(precision if precision is not None else Settings.precision_from_environment())
        try:
            text = sys.stdin.read() if str(input) == "-" else input.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read --input {input}: {exc}") from None  # bad input: exit 2
        pkg = find_package(package, trusted_keys=trusted_keys)
        model = pkg.load_model(device)
        evaluation = pkg.manifest.evaluation
        resolved = resolve_precision(asked, device, evaluation.model_dump() if evaluation is not None else None)
        graphs = cuda_graphs if cuda_graphs is not None else Settings().cuda_graphs
        codec = pkg.codec()
        check = [inp for inp, _ in pkg.examples]
        step = step_for_engine(
            model,
            chosen,
            cuda_graphs=graphs,
            precision=resolved.precision,
            check_tokens=np.stack([codec.encode_input(d) for d in check]) if check else None,
            check_puzzle_ids=np.asarray([codec.puzzle_id(d) for d in check]) if check else None,
            answer_table=codec.answer_token_table(),
            shapes=sorted({1, max(1, min(16, batch_size, len(text.splitlines())))}),
        )
        errors.print(
            f"{pkg.name}@{pkg.version} computes in {resolved.describe()}; {describe_step(step)}",
            highlight=False,
            soft_wrap=True,
        )
        lines = [line for line in text.splitlines() if line.strip()]
        results = answer_jsonl(
            model,
            pkg.codec(),
            pkg.input_validator,
            lines,
            max_steps=max_steps,
            halt=not no_halt,
            batch_size=batch_size,
            views=views,
            step=step,
            precision=resolved.precision,
        )
    body = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in results)
    if str(output) == "-":
        sys.stdout.write(body)
    else:
        try:
            output.write_text(body, "utf-8")
        except OSError as exc:  # the answers are not lost: they go to stdout instead
            errors.print(
                f"[bold red]error:[/] cannot write --output {output}: {exc}; answers follow on stdout",
                markup=True,
                highlight=False,
            )
            sys.stdout.write(body)
            raise typer.Exit(1) from None
    failed = sum("error" in r for r in results)
    errors.print(f"{len(results) - failed} answered, {failed} failed ({pkg.name}@{pkg.version})", highlight=False)
    if failed:
        raise typer.Exit(1)


def export_onnx(
    package: PackageArgument,
    output: Path = typer.Option(..., "--output", "-o", help="ONNX file to write."),
    max_steps: Optional[int] = typer.Option(None, help="Unrolled supervision steps (default: the model's maximum)."),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare with torch on the examples (onnxruntime)."),
) -> None:
    """Export the model as ONNX (recursion unrolled, no halting) and check it against torch."""
    from ..package.onnx_export import check_onnx, export_onnx as export
    from ..package.registry import find_package

    with reported():
        pkg = find_package(package)
        path = export(pkg, output, max_steps=max_steps)
        console.print(f"wrote {path} ({path.stat().st_size:,} bytes)")
        if check:
            result = check_onnx(pkg, path, max_steps=max_steps)
            console.print(
                f"onnxruntime vs torch on {result.examples} examples: {result.identical} identical answers, "
                f"max confidence difference {result.max_confidence_difference:.2e}"
            )
            if not result.ok:
                raise typer.Exit(1)


def _registry(path: Optional[Path]):
    from ..package.registry import DirectoryRegistry, default_registry

    return DirectoryRegistry(path, create=True) if path is not None else default_registry()


def publish(package: PackageArgument, registry: RegistryOption = None, trusted_keys: TrustedKeysOption = None) -> None:
    """Verify a package and add it to a registry (never overwrites a published version)."""
    from ..package.registry import locate_package

    from ..package import open_package
    from ..package.signing import copy_public_key

    with reported():
        reg = _registry(registry)
        entry = reg.publish(locate_package(package).path, trusted_keys=trusted_keys)
        console.print(f"published {entry.name}@{entry.version} → {reg.root / entry.file} ({entry.digest})")
        keys = reg.root / "keys"
        if keys.is_dir():
            return
        # `trm serve --registry` trusts the signers whose *.pub files are in keys/: without the folder it refuses all.
        signer = open_package(reg.path_of(entry)).signed_by
        copied = copy_public_key(trusted_keys, signer, keys) if signer and trusted_keys is not None else None
        if copied is not None and signer:
            console.print(
                f"{reg.root} had no keys/ folder: the signer's key from --trusted-keys ({signer[:16]}…) is "
                f"now {copied}, so `trm serve --registry {reg.root}` accepts its packages",
                soft_wrap=True,
            )
        elif signer:
            console.print(
                f"note: {reg.root} has no keys/ folder, so `trm serve --registry {reg.root}` refuses every "
                f"package: put the signer's public key (key id {signer[:16]}…) there (mkdir {keys} and copy "
                "its .pub file in), or publish with --trusted-keys DIR to have it copied",
                soft_wrap=True,
            )
        else:
            console.print(
                f"note: {entry.name}@{entry.version} is unsigned: `trm serve --registry {reg.root}` refuses "
                "it unless started with --allow-unsigned; sign it with `trm sign` and put the public key in "
                f"{keys}",
                soft_wrap=True,
            )


def install(
    requirement: str = typer.Argument(..., help="NAME or NAME@SPEC (^1.2, ~1.2.3, >=1,<2, 1.2.3)."),
    registry: Optional[str] = typer.Option(
        None,
        help="Registry to install from: a folder, or the URL of one served "
        "over HTTP (trm serve's /registry, any static web server).",
    ),
    token: Optional[str] = typer.Option(
        None, "--token", envvar="TRM_TOKEN", help="Bearer token for an HTTP registry that needs one (trm serve's does)."
    ),
    trusted_keys: TrustedKeysOption = None,
) -> None:
    """Install the best matching, non-yanked version into TRM_HOME (runs its self-test first)."""
    from ..package.registry import install as install_module, installed_registry

    with reported():
        if registry is not None and registry.startswith(("http://", "https://")):
            from ..package.http_registry import HttpRegistry
            from ..settings import Settings

            headers = {"Authorization": f"Bearer {token}"} if token else None
            source = HttpRegistry(registry, Settings().home / "cache" / "registry", headers=headers)
        else:
            source = _registry(Path(registry) if registry is not None else None)
        entry, _ = install_module(requirement, source=source, trusted_keys=trusted_keys)
        console.print(f"installed {entry.name}@{entry.version} → {installed_registry().root / entry.file}")


def yank(
    requirement: str = typer.Argument(..., help="NAME@VERSION to yank."),
    registry: RegistryOption = None,
    reason: Optional[str] = typer.Option(None, help="Why (shown to users)."),
    undo: bool = typer.Option(False, "--undo", help="Un-yank instead."),
) -> None:
    """Mark a published version yanked: specifiers skip it; an exact pin still resolves."""
    from ..package.registry import split_requirement

    name, version = split_requirement(requirement)
    if not version:
        raise typer.BadParameter("give NAME@VERSION")
    with reported():
        entry = _registry(registry).yank(name, version, reason=reason, yanked=not undo)
        console.print(f"{entry.name}@{entry.version} {'yanked' if entry.yanked else 'restored'}")


def modules(
    registry: Optional[Path] = typer.Option(None, help="Registry folder to list as available."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List installed modules and those available in the registry."""
    from ..package.registry import default_registry_path, installed_registry

    with reported():
        sources = [("installed", installed_registry())]
        if registry is not None or default_registry_path() is not None:
            sources.append(("available", _registry(registry)))
        rows = [(where, e) for where, reg in sources for e in reg.list()]
    if as_json:
        typer.echo(json.dumps([{"where": where, **e.to_json()} for where, e in rows], indent=2))
        return
    table = Table("where", "name", "version", "digest", "size", "yanked")
    for where, e in rows:
        table.add_row(where, e.name, e.version, e.digest[:19] + "…", f"{e.size:,}", "yes" if e.yanked else "")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.command("pack")(pack)
    app.command("calibrate-halting")(calibrate_halting)
    app.command("inspect")(inspect)
    app.command("verify")(verify)
    app.command("keygen")(keygen)
    app.command("sign")(sign)
    app.command("solve")(solve)
    app.command("export-onnx")(export_onnx)
    app.command("publish")(publish)
    app.command("install")(install)
    app.command("yank")(yank)
    app.command("modules")(modules)
