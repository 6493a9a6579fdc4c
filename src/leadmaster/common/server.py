"""How both services run under uvicorn: one process, uvloop + httptools, our JSON logs only."""

from typing import Any

import uvicorn


def serve(app: Any, host: str, port: int) -> None:
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        # Our middleware logs each request once, as JSON; uvicorn's own logging config would add text lines.
        access_log=False,
        log_config=None,
        lifespan="on",
        # A SIGTERM must end the process within 10 s whatever the app is doing (issue 3).
        timeout_graceful_shutdown=5,
    )
