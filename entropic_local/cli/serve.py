"""``entropic-local serve [MODEL]``: the OpenAI-compatible server (``entropic_local.server``),
run by uvicorn until SIGINT or SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import sys

import click

from ..errors import UsageError
from .options import CONTEXT_SETTINGS, model_options, sampler_options, verbose_option

DEFAULT_SERVE_CTX = 2048
API_KEY_ENV = "ENTROPIC_LOCAL_API_KEY"


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (IPv6 when the host is one), or a clear error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}", hint="check --host") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}",
                         hint="choose another --port (0: any free one)") from None
    sock.set_inheritable(True)
    return sock


@click.command("serve", context_settings=CONTEXT_SETTINGS)
@click.argument("model_arg", metavar="[MODEL]", required=False)
@model_options(attention=None)
@sampler_options(seed="serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; think of --api-key then).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on (0: any free one, printed).")
@click.option("-p", "--parallel", type=click.IntRange(1, 256), default=4, show_default=True,
              help="Requests decoded together (continuous batching); each has --n-ctx tokens of context.")
@click.option("--api-key", default=None, metavar="KEY",
              help=f"Require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}, else none).")
@click.option("--queue-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Requests that may wait for a slot; beyond it: 503 with Retry-After.")
@click.option("--max-body", type=click.IntRange(min=1024), default=8 * 1024 * 1024, show_default=True,
              help="Largest request body in bytes (beyond it: 413).")
@click.option("--no-prefix-cache", is_flag=True, help="Do not keep ended requests' KV cells for reuse.")
@verbose_option("Show llama.cpp's log, uvicorn's access log and full tracebacks on errors.")
def serve_command(model_arg, model, n_ctx, threads, engine_opts, sampler, flags, seed, host, port,
                  parallel, api_key, queue_size, max_body, no_prefix_cache, verbose):
    """Serve MODEL over the OpenAI HTTP API (chat and completions, streaming, logprobs with
    per-token entropy and varentropy) at http://HOST:PORT/v1.

    \b
    Loads the model once, prints the URL, serves until Ctrl-C or SIGTERM (open streams end
    with a final chunk; exit status 0). --n-ctx is each request's context (default 2048);
    the KV cache holds --parallel times that. --sampler and the sampling flags set the chain
    every request starts from; a request's own fields (temperature, top_p, sampler...) win.

    \b
      entropic-local serve smollm2-135m --port 8080 --parallel 8
      curl http://127.0.0.1:8080/v1/models
    """
    try:
        import uvicorn

        from ..server.app import create_app
    except ImportError as e:
        raise UsageError(f"the server needs the 'server' extra ({e.name} is missing)",
                         hint="pip install 'entropic-local[server]'") from None
    from ..api import load
    from ..samplers.chain import SamplerChain

    if model_arg and model and model_arg != model:
        raise UsageError(f"two models given ({model_arg!r} and -m {model!r})", hint="give one")
    model = model_arg or model
    chain = SamplerChain.from_options(sampler, **flags)
    api_key = api_key or os.environ.get(API_KEY_ENV) or None
    sock = _listen(host, port)
    m = load(model, n_ctx=n_ctx if n_ctx is not None else DEFAULT_SERVE_CTX, n_threads=threads,
             seed=seed, verbose=verbose, workload="batch", **engine_opts)
    app = create_app(m, parallel=parallel, n_cells=parallel * m.n_ctx, queue_size=queue_size, api_key=api_key,
                     sampler=chain.spec(), max_body=max_body, registry_name=model, keep_prefix=not no_prefix_cache)
    state = app.state.server
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    url = f"http://{shown}:{bound[1]}/v1"

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if not self.should_exit:
                click.echo(f"entropic-local: serving {m.name} at {url} (parallel {parallel}, context "
                           f"{m.n_ctx} per request{', API key required' if api_key else ''}; Ctrl-C to stop)")
                click.echo(f"entropic-local: chat page at {url[:-len('/v1')]}/")
                sys.stdout.flush()

        def handle_exit(self, sig, frame):
            if state.runtime is not None:  # end the open streams with a final chunk
                state.runtime.shutdown(wait=None)
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, log_level="info" if verbose else "warning", access_log=verbose,
                            timeout_graceful_shutdown=15, lifespan="on", ws="none")
    server = Server(config)
    # uvicorn catches SIGINT/SIGTERM while it serves and raises them again when it returns:
    # after a clean shutdown they must do nothing more (exit 0)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        m.close()
