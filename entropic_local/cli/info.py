"""``entropic-local info``: the llama.cpp build, this machine, and the engine configuration
chosen for a model on it (and why), for bug reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from .options import CONTEXT_SETTINGS, engine_options, verbose_option


def _numba_cache() -> dict:
    """Where numba keeps the compiled kernels: ``$NUMBA_CACHE_DIR``, else ``__pycache__``
    beside the kernels when writable, else numba's per-user cache."""
    env = os.environ.get("NUMBA_CACHE_DIR")
    if env:
        return {"dir": env, "source": "NUMBA_CACHE_DIR"}
    here = Path(__file__).resolve().parents[1] / "kernels" / "__pycache__"
    parent = here if here.exists() else here.parent
    if os.access(parent, os.W_OK):
        return {"dir": str(here), "source": "beside the kernels"}
    return {"dir": str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "numba"),
            "source": "numba's per-user cache (the package directory is read-only)"}


def gather(model: str | None, threads: int | None, engine_opts: dict) -> dict:
    """Everything ``info`` reports, as one JSON-ready dict."""
    from ..engine.backend import THREADS_ENV, default_threads
    from ..engine.choose import choose_config
    from ..engine.config import FLASH_ATTN_DEFAULT
    from ..engine.hardware import detect
    from ..engine.probe import FAULT_ENV, PROBE_ENV, cache_path, fault
    from ..registry import model_label, resolve_model

    hw = detect()
    n_threads = threads or default_threads()
    out = {
        "hardware": hw.to_dict(),
        "threads": {"chosen": n_threads, "physical_cores": hw.physical_cores,
                    "source": "-t" if threads else (THREADS_ENV if os.environ.get(THREADS_ENV) else
                                                    "physical cores")},
        "flash_attn_default": FLASH_ATTN_DEFAULT,
        "numba_cache": _numba_cache(),
        "probe_env": {PROBE_ENV: os.environ.get(PROBE_ENV), FAULT_ENV: os.environ.get(FAULT_ENV)},
    }
    path = resolve_model(model)
    out["model"] = {"name": model_label(model, path), "path": str(path)}
    configs = {}
    verdict = None
    for workload in ("single", "batch"):
        cfg, verdict = choose_config(path, workload, n_threads=n_threads, **engine_opts)
        configs[workload] = cfg.to_dict()
    out["configuration"] = configs
    out["probe"] = {**verdict.to_dict(), "cache": str(cache_path(hw, path, fault()))}
    return out


def format_info(d: dict) -> str:
    hw = d["hardware"]
    lines = [
        f"llama-cpp-python {hw['llama_cpp_python']} ({hw['library_dir']})",
        f"system info:      {hw['system_info']}",
        f"CPU:              {hw['cpu_model']}; {hw['physical_cores']} physical cores, {hw['logical_cpus']} "
        f"logical; AMX: {'yes' if hw['amx'] else 'no'}; flags: {' '.join(hw['cpu_flags_of_note']) or '-'}",
        f"extra buffer types: {', '.join(hw['extra_buffer_types']) or 'none'}",
        "devices:          " + "; ".join(
            f"{x['name']} ({x['type']}, {x['description']}"
            + (f", {x['memory_total'] / 2**30:.1f} GiB" if x["type"] != "CPU" else "") + ")"
            for x in hw["devices"]) if hw["devices"] else "devices:          (none listed)",
        f"threads:          {d['threads']['chosen']} ({d['threads']['source']})",
        f"flash attention:  default {d['flash_attn_default']}",
        f"numba cache:      {d['numba_cache']['dir']} ({d['numba_cache']['source']})",
        f"model:            {d['model']['name']} ({d['model']['path']})",
        f"probe:            {d['probe']['source']}" + (f": {d['probe']['detail']}" if d['probe']['detail'] else ""),
    ]
    for workload, c in d["configuration"].items():
        lines.append(f"{workload + ' sequence' if workload == 'single' else 'batch':<18}repack {'on' if c['repack'] else 'off'}, "
                     f"-b {c['n_batch']}, -ub {c['n_ubatch']}, -fa {c['flash_attn']}, -ngl {c['n_gpu_layers']}: "
                     f"{c['reason']}")
    return "\n".join(lines)


@click.command("info", context_settings=CONTEXT_SETTINGS)
@click.option("-m", "--model", default=None, metavar="MODEL",
              help="The model whose configuration to show (default: smollm2-135m).")
@click.option("-t", "--threads", type=click.IntRange(min=1), default=None, help="CPU threads to plan for.")
@engine_options
@click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object (for bug reports).")
@verbose_option()
def info_command(model, threads, engine_opts, as_json, verbose):
    """Show the llama.cpp build, this machine (CPU features, GPU devices, threads) and the
    engine configuration chosen for a model on it, with the reason (like llama.cpp's
    system info)."""
    d = gather(model, threads, engine_opts)
    click.echo(json.dumps(d, indent=2) if as_json else format_info(d))
