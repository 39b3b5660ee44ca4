"""``ser-hf serve``: an HTTP service, a live WebSocket and a web page for one emotion model."""

from __future__ import annotations

import argparse
import dataclasses
import math

from ser_hf.cli.numbers import check_flags, number
from ser_hf.ranges import Range

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
/docs (OpenAPI). Bad requests get a 4xx with {"detail": ...}; every refusal for load (queue, decoding or
body budget, connections) is a JSON 503 with Retry-After.

Access (for a server other machines reach):
  python -c 'import secrets; print(secrets.token_urlsafe(32))' > key.txt
  ser-hf serve --host 0.0.0.0 --api-key-file key.txt --allowed-origin https://app.example.com
  curl -H "Authorization: Bearer $(cat key.txt)" -F file=@clip.wav http://HOST:8000/predict
With a key (--api-key-file, $SER_HF_API_KEY or --api-key; a flag is visible to other users in `ps`), every
endpoint but /health and the web page's files needs 'Authorization: Bearer KEY' or 'X-API-Key: KEY' (401
without); the page at / asks for the key once and keeps it for the browser tab. Browser requests (every
WebSocket and POST) from another site's page are refused (403) unless its origin is given with
--allowed-origin. Serving a non-loopback --host without a key logs a warning. The key travels in clear
over http: put a reverse proxy with TLS in front. A client address that sends --max-key-failures wrong
keys (10) within --key-failure-window seconds (60) gets 429 with Retry-After, its key not checked, until
the oldest of them leaves the window (behind a proxy, uvicorn takes the address from X-Forwarded-For
only when the proxy is trusted: FORWARDED_ALLOW_IPS, 127.0.0.1 by default).

Slow and heavy clients: a request body must arrive within --body-timeout (408), headers within
--header-timeout, idle keep-alive connections close after --keep-alive-timeout; past --max-connections idle
connections are closed first. Decoding is capped per request (--max-decode-mb, 413) and for the whole
process (--decode-budget-mb, 503), as are request bodies held at once (--body-budget-mb, 503).
Needs the serve extra: pip install 'ser-hf[serve]'."""


#: What `ser-hf serve` serves without --model: the ready-made 4-emotion model shipped with ser_hf.
DEFAULT_MODEL = "emotion-whisper-base"

#: ServiceSettings fields that ``ser-hf serve`` exposes as flags (``--max-duration`` ...), with their metavars.
SETTINGS_FLAGS = {"max_duration": "SECONDS", "max_concurrent": "N", "max_queued": "N", "queue_timeout": "SECONDS",
                  "max_batch_files": "N", "max_streams": "N", "micro_batch": "N", "model_workers": "N",
                  "max_channels": "N", "body_timeout": "SECONDS", "header_timeout": "SECONDS",
                  "keep_alive_timeout": "SECONDS", "max_connections": "N", "stream_idle_timeout": "SECONDS"}
#: ServiceSettings byte sizes that ``ser-hf serve`` takes in MiB: field -> flag.
MIB_FLAGS = {"max_upload_bytes": "max-upload-mb", "max_decoded_bytes": "max-decode-mb",
             "decode_budget_bytes": "decode-budget-mb", "body_budget_bytes": "body-budget-mb"}
#: What a size flag takes: more than 0 (ServiceSettings refuses 0 bytes) and at most a pebibyte, far past any upload
#: or memory, so that the size in bytes stays a finite float (1e308 MiB would be infinite bytes).
SIZE_MIB = Range(0, 2**30, low_open=True, noun="a size in MiB")
#: What --port takes: a TCP port; 0 asks the system for any free one, which uvicorn's log line shows.
PORT = Range(0, 65535, integer=True, noun="a TCP port (an integer)")


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
    parser.add_argument("--port", type=number(PORT, "e.g. --port 8000, or 0 for any free port"), default=8000,
                        help="TCP port, 0 to 65535 (default 8000; 0: any free port, shown in uvicorn's log)")
    for name, flag in MIB_FLAGS.items():
        spec = next(f for f in dataclasses.fields(ServiceSettings) if f.name == name)
        default = getattr(defaults, name) / MIB
        parser.add_argument(f"--{flag}", type=number(SIZE_MIB, f"e.g. --{flag} {default:g} (the default)"),
                            default=default, metavar="MB", help=f"{spec.metadata['help']} In MiB (default {default:g} MiB).")
    for name, metavar in SETTINGS_FLAGS.items():
        # Help text and default come from ServiceSettings itself, so the flag and the library never disagree.
        spec = next(f for f in dataclasses.fields(ServiceSettings) if f.name == name)
        default = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default, metavar=metavar,
                            help=f"{spec.metadata['help']} (default {default:g})")
    access = parser.add_argument_group("access control (see below)")
    access.add_argument("--api-key", default=None, metavar="KEY",
                        help="key every endpoint but /health and the web page requires (8-256 printable ASCII "
                             "characters); prefer --api-key-file or $SER_HF_API_KEY, which `ps` does not show")
    access.add_argument("--api-key-file", default=None, metavar="FILE", help="read the key from the first line of FILE")
    access.add_argument("--max-key-failures", type=int, default=10, metavar="N",
                        help="wrong API keys one client address may send within --key-failure-window before its "
                             "requests get 429 with Retry-After, the key unchecked (default 10; 0: no limit)")
    access.add_argument("--key-failure-window", type=float, default=60.0, metavar="SECONDS",
                        help="the window over which wrong keys are counted (default 60)")
    access.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                        help="a browser origin (scheme://host[:port]) allowed besides the server's own, for "
                             "/stream and POSTs; repeatable; * allows any (default: same origin only)")
    parser.add_argument("--test-time-copies", action="store_true",
                        help="score every clip, window and stream also as the copies the model's probe trained on "
                             "(0.9x/1.1x speed, light noise; as ser-hf predict --test-time-copies): 1 + copies "
                             "forward passes each, so for batch use more than for live audio; /health lists them")
    parser.add_argument("--device", default=None, help="where the model runs: cpu (default) or e.g. cuda")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch threads, at most one per core (default: one per core; fewer help on a machine shared "
                             "with other work)")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                        help="uvicorn log level (default info)")
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import importlib.util

    from ser_hf.errors import SERError
    from ser_hf.processes import available_cores

    cores = available_cores()
    # torch takes up to 2**31 - 1 threads (more raised a raw ValueError) and starts them all at the first forward pass;
    # its intra-op threads beyond the cores only wait for each other
    check_flags(("--threads", args.threads, Range(1, cores, integer=True, noun="a positive integer"),
                 f"at most one per core this process may use ({cores} here); leave it out for one per core"))
    missing = [name for name in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(name) is None]
    if missing:
        raise SERError(f"`ser-hf serve` needs {', '.join(missing)}, which are not installed; install the serve extra: "
                       f"pip install 'ser-hf[serve]'.")
    from ser_hf.service.access import AccessPolicy, resolve_api_key
    from ser_hf.service.server import serve
    from ser_hf.service.settings import MIB, ServiceSettings

    # rounded up: a size of a few bytes in MiB (1e-7) is still a positive size, not 0 bytes
    sizes = {name: math.ceil(getattr(args, flag.replace("-", "_")) * MIB) for name, flag in MIB_FLAGS.items()}
    settings = ServiceSettings(**sizes, **{name: getattr(args, name) for name in SETTINGS_FLAGS})
    access = AccessPolicy(api_key=resolve_api_key(args.api_key, args.api_key_file),
                          allowed_origins=tuple(args.allowed_origin), max_key_failures=args.max_key_failures,
                          key_failure_window=args.key_failure_window)
    serve(args.model, host=args.host, port=args.port, settings=settings, log_level=args.log_level,
          device=args.device, threads=args.threads, access=access, test_time_copies=args.test_time_copies)
    return 0
