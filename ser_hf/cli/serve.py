"""``ser-hf serve``: an HTTP service, a live WebSocket and a web page for one emotion model."""

from __future__ import annotations

import argparse
import dataclasses

EPILOG = """\
examples:
  ser-hf serve                                           # the shipped emotion-whisper-base, http://127.0.0.1:8000/
  ser-hf serve --model outputs/rav4                      # your own checkpoint
  ser-hf serve --model outputs/rav4 --host 0.0.0.0 --port 9000 --max-upload-mb 10 --max-duration 120

  curl -F file=@clip.wav http://127.0.0.1:8000/predict
  curl -F files=@a.wav -F files=@b.flac http://127.0.0.1:8000/predict/batch
  curl --data-binary @samples.raw -H 'content-type: application/octet-stream' \\
       'http://127.0.0.1:8000/predict/pcm?sampling_rate=16000&dtype=int16'

Endpoints: / (web page), /health, /labels, /predict, /predict/pcm, /predict/batch, /stream (WebSocket),
/docs (OpenAPI). Bad requests get a 4xx with {"detail": ...}; a full queue gets 503 with Retry-After.
Needs the serve extra: pip install 'ser-hf[serve]'."""


#: What `ser-hf serve` serves without --model: the ready-made 4-emotion model shipped with ser_hf.
DEFAULT_MODEL = "emotion-whisper-base"

#: ServiceSettings fields that ``ser-hf serve`` exposes as flags (``--max-duration`` ...), with their metavars.
SETTINGS_FLAGS = {"max_duration": "SECONDS", "max_concurrent": "N", "max_queued": "N", "queue_timeout": "SECONDS",
                  "max_batch_files": "N", "max_streams": "N", "micro_batch": "N", "model_workers": "N"}


def register(subparsers: argparse._SubParsersAction) -> None:
    from ser_hf.service.settings import MIB, ServiceSettings

    defaults = ServiceSettings()
    parser = subparsers.add_parser(
        "serve", help="serve a model over HTTP + WebSocket with a web page (record, upload, live)",
        description="Serve an emotion model: upload files or raw PCM, batch requests, stream live audio over a "
                    "WebSocket, and use the web page at / to record from the microphone.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="MODEL",
                        help=f"checkpoint directory, released model name (see `ser-hf models list`) or Hub id "
                             f"(default: {DEFAULT_MODEL}, shipped with ser_hf; non-commercial use only)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0: the network)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_bytes / MIB, metavar="MB",
                        help=f"largest file or PCM body accepted (default {defaults.max_upload_bytes / MIB:g} MiB)")
    for name, metavar in SETTINGS_FLAGS.items():
        # Help text and default come from ServiceSettings itself, so the flag and the library never disagree.
        spec = next(f for f in dataclasses.fields(ServiceSettings) if f.name == name)
        default = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default, metavar=metavar,
                            help=f"{spec.metadata['help']} (default {default:g})")
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

    settings = ServiceSettings(max_upload_bytes=int(args.max_upload_mb * MIB),
                               **{name: getattr(args, name) for name in SETTINGS_FLAGS})
    if args.threads is not None and args.threads < 1:
        raise SERError(f"--threads must be a positive integer, got {args.threads}.")
    serve(args.model, host=args.host, port=args.port, settings=settings, log_level=args.log_level,
          device=args.device, threads=args.threads)
    return 0
