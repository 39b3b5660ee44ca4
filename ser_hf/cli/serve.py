"""``ser-hf serve``: an HTTP service, a live WebSocket and a web page for one emotion model."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  ser-hf serve --model outputs/rav4                      # then open http://127.0.0.1:8000/
  ser-hf serve --model outputs/rav4 --host 0.0.0.0 --port 9000 --max-upload-mb 10 --max-duration 120

  curl -F file=@clip.wav http://127.0.0.1:8000/predict
  curl -F files=@a.wav -F files=@b.flac http://127.0.0.1:8000/predict/batch
  curl --data-binary @samples.raw -H 'content-type: application/octet-stream' \\
       'http://127.0.0.1:8000/predict/pcm?sampling_rate=16000&dtype=int16'

Endpoints: / (web page), /health, /labels, /predict, /predict/pcm, /predict/batch, /stream (WebSocket),
/docs (OpenAPI). Bad requests get a 4xx with {"detail": ...}; a full queue gets 503 with Retry-After.
Needs the serve extra: pip install 'ser-hf[serve]'."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from ser_hf.service.settings import MIB, ServiceSettings

    defaults = ServiceSettings()
    parser = subparsers.add_parser(
        "serve", help="serve a model over HTTP + WebSocket with a web page (record, upload, live)",
        description="Serve an emotion model: upload files or raw PCM, batch requests, stream live audio over a "
                    "WebSocket, and use the web page at / to record from the microphone.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="checkpoint directory, preset name (see `ser-hf models list`) or Hub id")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0: the network)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_bytes / MIB, metavar="MB",
                        help=f"largest file or PCM body accepted (default {defaults.max_upload_bytes / MIB:g} MiB)")
    parser.add_argument("--max-duration", type=float, default=defaults.max_duration, metavar="SECONDS",
                        help=f"longest audio accepted per file (default {defaults.max_duration:g} s)")
    parser.add_argument("--max-concurrent", type=int, default=defaults.max_concurrent, metavar="N",
                        help=f"requests decoded and scored at once (default {defaults.max_concurrent})")
    parser.add_argument("--max-queued", type=int, default=defaults.max_queued, metavar="N",
                        help=f"requests waiting for a slot before 503 (default {defaults.max_queued})")
    parser.add_argument("--queue-timeout", type=float, default=defaults.queue_timeout, metavar="SECONDS",
                        help=f"longest wait for a slot before 503 (default {defaults.queue_timeout:g} s)")
    parser.add_argument("--max-batch-files", type=int, default=defaults.max_batch_files, metavar="N",
                        help=f"files per /predict/batch request (default {defaults.max_batch_files})")
    parser.add_argument("--max-streams", type=int, default=defaults.max_streams, metavar="N",
                        help=f"live WebSocket streams at once (default {defaults.max_streams})")
    parser.add_argument("--micro-batch", type=int, default=defaults.micro_batch, metavar="N",
                        help=f"concurrent clips scored in one forward pass (default {defaults.micro_batch}: each alone; on "
                             f"CPU batching measured no faster; try 8 on a GPU)")
    parser.add_argument("--model-workers", type=int, default=defaults.model_workers, metavar="N",
                        help=f"threads running the model (default {defaults.model_workers})")
    parser.add_argument("--device", default=None, help="where the model runs: cpu (default) or e.g. cuda")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch threads (default: one per core; fewer help on a machine shared with other work)")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                        help="uvicorn log level (default info)")
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import importlib.util

    from ser_hf.errors import SERError

    missing = [name for name in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(name) is None]
    if missing:
        raise SERError(f"`ser-hf serve` needs {', '.join(missing)}, which are not installed; install the serve extra: "
                       f"pip install 'ser-hf[serve]'.")
    from ser_hf.service.server import serve
    from ser_hf.service.settings import MIB, ServiceSettings

    settings = ServiceSettings(
        max_upload_bytes=int(args.max_upload_mb * MIB), max_duration=args.max_duration,
        max_concurrent=args.max_concurrent, max_queued=args.max_queued, queue_timeout=args.queue_timeout,
        max_batch_files=args.max_batch_files, max_streams=args.max_streams, micro_batch=args.micro_batch,
        model_workers=args.model_workers,
    )
    if args.threads is not None and args.threads < 1:
        raise SERError(f"--threads must be a positive integer, got {args.threads}.")
    serve(args.model, host=args.host, port=args.port, settings=settings, log_level=args.log_level,
          device=args.device, threads=args.threads)
    return 0
