"""`amp enhance`: batch Real-ESRGAN enhancement of files and folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.cli.output import ProgressBar, exits_on_amp_error, print_json, stderr
from engine.device import resolve_device, resolve_dtype
from engine.enhance.batch import STAGES, BatchReport, EnhanceJob, FileResult, run_batch
from engine.enhance.models import DEFAULT_MODEL, load_enhancement_model
from engine.enhance.photo import AlphaMode
from engine.enhance.upscaler import COMPILE_MODES, TileSettings, Upscaler
from engine.errors import ImageReadError, OptionError
from engine.io.decode import DEFAULT_MAX_PIXELS
from engine.io.discover import find_images
from engine.resources import ResourceMeter, ResourceUsage

OUTPUT_FORMATS = ("same", "jpeg", "png", "tiff", "webp")


@exits_on_amp_error
def enhance(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Image files and folders (searched recursively) to enhance.", show_default=False
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Output root; every result is written below it.", show_default=False
        ),
    ],
    scale: Annotated[
        float | None,
        typer.Option(
            "--scale",
            "-s",
            help="Output scale (any value, e.g. 2, 4, 1.5). The network runs at its native scale, "
            "then a Lanczos resize reaches this one. Default: the model's native scale.",
            show_default=False,
        ),
    ] = None,
    denoise: Annotated[
        float | None,
        typer.Option(
            "--denoise",
            "-d",
            help="Denoise strength in [0, 1] for realesr-general-x4v3: its weights are blended "
            "with realesr-general-wdn-x4v3 (1 = full denoise, 0 = keep grain). Default 0.5.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="A model name from `amp models list`, or the path to a .pth file."
        ),
    ] = DEFAULT_MODEL,
    tile: Annotated[
        str,
        typer.Option(
            help="Tile size in input pixels: auto (the largest that fits free device memory, "
            "the whole image if it fits), 0 (always whole images) or a number. Out of memory, "
            "the tile is halved and the image retried."
        ),
    ] = "auto",
    tile_batch: Annotated[
        int, typer.Option(help="Tiles of equal shape run together in one forward pass.")
    ] = 1,
    tile_pad: Annotated[
        int, typer.Option(help="Context pixels around each tile, hiding seams between tiles.")
    ] = 10,
    pre_pad: Annotated[
        int,
        typer.Option(
            help="Reflection padding at the image's bottom/right edge before the network."
        ),
    ] = 0,
    precision: Annotated[
        str,
        typer.Option(help="auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 or bf16."),
    ] = "auto",
    compile_mode: Annotated[
        str,
        typer.Option(
            "--compile",
            help="off, or a torch.compile mode: default, max-autotune, "
            "max-autotune-no-cudagraphs, reduce-overhead (CUDA graphs). Each new tile shape "
            "is compiled on first use (seconds to a minute), so it pays on long runs of "
            "same-sized photos; see benchmarks/RESULTS.md for measured gains.",
        ),
    ] = "off",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    path_template: Annotated[
        str,
        typer.Option(
            help="Where each result goes under --out. Fields: {year} {month} {day} (EXIF "
            "DateTimeOriginal, else the file's mtime), {filename} {stem} {ext}. "
            "E.g. 'year={year}/month={month}/{filename}'.",
        ),
    ] = "{filename}",
    output_format: Annotated[
        str,
        typer.Option(
            "--format", help="Output format: same (as each input), jpeg, png, tiff or webp."
        ),
    ] = "same",
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality, 1-100.")] = 95,
    alpha: Annotated[
        str,
        typer.Option(
            help="How an alpha channel is upscaled: network (as a grey image) or bicubic."
        ),
    ] = "network",
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace existing outputs; by default they are skipped, so a rerun resumes."
        ),
    ] = False,
    max_pixels: Annotated[
        int,
        typer.Option(help="Refuse inputs with more pixels than this (decompression-bomb guard)."),
    ] = DEFAULT_MAX_PIXELS,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            show_default=False,
            help="Run on Ray: 'local' starts Ray on this machine, 'auto' joins the one running "
            "here, or host:6379 / ray://host:10001 (inputs, weights and --out on shared storage "
            "at the same paths). Needs pip install '.[ray]'.",
        ),
    ] = None,
    ray_actors: Annotated[
        int | None,
        typer.Option(
            show_default=False, help="Ray actors (default: one per GPU, else one per CPU core)."
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", help="Write one JSON report to stdout instead of the progress bar and table."
        ),
    ] = False,
) -> None:
    """Enhance photos with Real-ESRGAN: upscale (x2, x4, any scale) and denoise.

    Originals are never modified. Each result is written atomically; existing results are
    skipped, so an interrupted run resumes. A file that cannot be read or enhanced is
    reported and skipped, and the exit code is 1 if any file failed.
    """
    if output_format not in OUTPUT_FORMATS:
        raise OptionError(
            f"unknown --format {output_format!r}: use one of {', '.join(OUTPUT_FORMATS)}"
        )
    if alpha not in ("network", "bicubic"):
        raise OptionError(f"unknown --alpha {alpha!r}: use network or bicubic")
    if not 1 <= quality <= 100:
        raise OptionError(f"--quality must be within 1..100, got {quality}")
    if scale is not None and scale <= 0:
        raise OptionError(f"--scale must be positive, got {scale}")
    if compile_mode not in ("off", *COMPILE_MODES):
        raise OptionError(
            f"unknown --compile {compile_mode!r}: use off or one of {', '.join(COMPILE_MODES)}"
        )
    files = find_images(inputs)
    if not files:
        raise ImageReadError(", ".join(map(str, inputs)), "no images found there")

    job = EnhanceJob(
        out_root=out,
        path_template=path_template,
        outscale=scale,
        alpha=_alpha(alpha),
        output_format=None if output_format == "same" else output_format,
        quality=quality,
        overwrite=overwrite,
        max_pixels=max_pixels,
    )
    tiles = TileSettings(_tile_px(tile), tile_pad, pre_pad, tile_batch)
    compiled = None if compile_mode == "off" else compile_mode
    with ProgressBar(len(files), "enhance", enabled=not json_output) as bar:
        if ray_address is None:
            report, usage, settings = _run_here(
                files, job, model, denoise, device, precision, tiles, compiled, _on_result(bar)
            )
        else:
            report, usage, settings = _run_on_ray(
                files,
                job,
                model,
                denoise,
                device,
                precision,
                tiles,
                compiled,
                ray_address,
                ray_actors,
                _on_result(bar),
            )
    settings.update(
        outscale=scale if scale is not None else settings["native_scale"],
        tile=tile,
        tile_batch=tile_batch,
        tile_pad=tile_pad,
        pre_pad=pre_pad,
    )
    if json_output:
        print_json(_report_document(report, usage, settings))
    else:
        _print_summary(report, usage, settings)
    if report.count("failed"):
        raise typer.Exit(code=1)


def _run_here(
    files: list[Path],
    job: EnhanceJob,
    model: str,
    denoise: float | None,
    device: str,
    precision: str,
    tiles: TileSettings,
    compile_mode: str | None,
    on_result: Callable[[FileResult], None],
) -> tuple[BatchReport, ResourceUsage, dict[str, object]]:
    torch_device = resolve_device(device)
    dtype = resolve_dtype(precision, torch_device)
    gpu_index = (torch_device.index or 0) if torch_device.type == "cuda" else None
    with ResourceMeter(gpu_index=gpu_index) as meter:
        loaded = load_enhancement_model(model, denoise)
        meter.io.add_read(loaded.weights_bytes)
        upscaler = Upscaler(
            loaded.network,
            loaded.spec,
            device=torch_device,
            dtype=dtype,
            tiles=tiles,
            compile_mode=compile_mode,
        )
        report = run_batch(files, upscaler, job, io=meter.io, on_result=on_result)
    settings: dict[str, object] = {
        "model": loaded.name,
        "network": loaded.spec.arch,
        "native_scale": loaded.spec.scale,
        "denoise": loaded.denoise,
        "device": str(torch_device),
        "precision": str(dtype).removeprefix("torch."),
        "compile": upscaler.compile_mode or "off",
    }
    return report, meter.usage(), settings


def _run_on_ray(
    files: list[Path],
    job: EnhanceJob,
    model: str,
    denoise: float | None,
    device: str,
    precision: str,
    tiles: TileSettings,
    compile_mode: str | None,
    address: str,
    actors: int | None,
    on_result: Callable[[FileResult], None],
) -> tuple[BatchReport, ResourceUsage, dict[str, object]]:
    from engine.distributed.ray_enhance import run_enhance_on_ray

    with ResourceMeter() as meter:
        report = run_enhance_on_ray(
            files,
            model=model,
            denoise=denoise,
            device_spec=device,
            precision=precision,
            tiles=tiles,
            compile_mode=compile_mode,
            job=job,
            address=None if address == "local" else address,
            actors=actors,
            io=meter.io,
            on_result=on_result,
        )
    settings: dict[str, object] = {
        "model": report.model,
        "network": report.network,
        "native_scale": report.native_scale,
        "denoise": report.denoise,
        "device": f"ray ({report.device}, {report.plan.actors if report.plan else 0} actors)",
        "precision": report.precision,
        "compile": compile_mode or "off",  # as handed to every actor
    }
    return report, meter.usage(), settings


def _tile_px(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise OptionError(f"--tile must be auto or a number of pixels, got {value!r}") from None


def _alpha(value: str) -> AlphaMode:
    return "bicubic" if value == "bicubic" else "network"


def _on_result(bar: ProgressBar) -> Callable[[FileResult], None]:
    def report(result: FileResult) -> None:
        if result.status == "failed":
            stderr.print(f"[yellow]skipped[/] {result.source}: {result.error}", highlight=False)
        bar.advance(counted=result.status == "enhanced", megapixels=result.input_megapixels)

    return report


def _report_document(
    report: BatchReport, usage: ResourceUsage, settings: dict[str, object]
) -> dict[str, object]:
    return {
        "settings": settings,
        "summary": _summary(report, usage),
        "nodes": [node.to_dict() for node in getattr(report, "nodes", [])],
        "stage_seconds": {k: round(v, 4) for k, v in report.stage_seconds.items()},
        "resource_usage": usage.to_dict(),
        "files": [r.to_dict() for r in report.results],
    }


def _summary(report: BatchReport, usage: ResourceUsage) -> dict[str, float | int]:
    wall = max(usage.wall_seconds, 1e-9)
    return {
        "files": len(report.results),
        "enhanced": report.count("enhanced"),
        "skipped": report.count("skipped"),
        "failed": report.count("failed"),
        "input_megapixels": round(report.enhanced_megapixels, 4),
        "images_per_second": round(report.count("enhanced") / wall, 4),
        "megapixels_per_second": round(report.enhanced_megapixels / wall, 4),
    }


def _print_summary(report: BatchReport, usage: ResourceUsage, settings: dict[str, object]) -> None:
    summary = _summary(report, usage)
    table = Table(title="amp enhance", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    denoise = "" if settings["denoise"] is None else f", denoise {settings['denoise']}"
    table.add_row(
        "model",
        f"{settings['model']} ({settings['network']} x{settings['native_scale']}) "
        f"-> x{settings['outscale']}{denoise}",
    )
    table.add_row(
        "device",
        f"{settings['device']} {settings['precision']}, tile {settings['tile']}"
        + ("" if settings["compile"] == "off" else f", compiled ({settings['compile']})"),
    )
    table.add_row(
        "files",
        f"{summary['enhanced']} enhanced, {summary['skipped']} skipped (already done), "
        f"{summary['failed']} failed",
    )
    table.add_row(
        "throughput",
        f"{summary['images_per_second']:.3f} images/s, {summary['megapixels_per_second']:.3f} MP/s "
        f"({summary['input_megapixels']:.2f} MP in {usage.wall_seconds:.1f} s)",
    )
    table.add_row("stages", ", ".join(f"{s} {report.stage_seconds[s]:.2f} s" for s in STAGES))
    gpu = "n/a (no GPU)" if usage.gpu_utilization is None else f"{usage.gpu_utilization:.0%}"
    table.add_row(
        "resources",
        f"CPU {usage.cpu_seconds:.1f} s, peak RSS {usage.peak_rss_mb:.0f} MiB, GPU util {gpu}, "
        f"read {usage.storage_read_bytes / 1e6:.1f} MB, "
        f"wrote {usage.storage_write_bytes / 1e6:.1f} MB",
    )
    for node in getattr(report, "nodes", []):
        table.add_row("node", node.describe())
    stderr.print(table)
    for result in report.results:
        if result.status == "failed":
            stderr.print(f"[red]failed[/] {result.source}: {result.error}", highlight=False)
