"""Serve the stand-in: ``python -m spotify_pipeline_tools.standin --host 127.0.0.1 --port 8090``."""

from __future__ import annotations

import argparse
import os

from werkzeug.serving import make_server

from .catalogue import build_demo_catalogue
from .server import MODES, RESTRICTIONS, create_app


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, build the demo catalogue and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m spotify_pipeline_tools.standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--seed", type=int, default=2023, help="demo catalogue seed")
    parser.add_argument("--restrict", default="", help=f"comma list among {sorted(RESTRICTIONS)}")
    parser.add_argument(
        "--mode", default="extended", choices=sorted(MODES), help="tier of app to mimic (default extended)"
    )
    args = parser.parse_args(argv)
    client_id = os.environ.get("SPOTIFY_CLIENT_ID")
    client_secret = os.environ.get("SPOTIFY_CLIENT_SECRET")
    if not client_id or not client_secret:
        parser.error("SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET must be set")
    restricted = MODES[args.mode] | frozenset(r for r in args.restrict.split(",") if r)
    app = create_app(build_demo_catalogue(args.seed), client_id, client_secret, restricted=restricted)
    server = make_server(args.host, args.port, app, threaded=True)
    # Printed only once the socket is bound, so callers can wait for this line as a readiness signal.
    print(f"spotify stand-in listening on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
