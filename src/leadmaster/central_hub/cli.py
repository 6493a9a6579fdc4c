"""`central-hub` console script: validate settings (exit 2 on a bad one), then serve with uvicorn."""

import sys

from pydantic import ValidationError

from leadmaster.central_hub.config import Settings
from leadmaster.common.files import private_umask
from leadmaster.common.logs import configure_logging
from leadmaster.common.server import serve
from leadmaster.common.settings import describe_error


def main() -> None:
    private_umask()  # before anything opens a file (serve() sets it too, for any other caller)
    try:
        settings = Settings()
    except ValidationError as exc:
        # One line, naming the variable and its value (CONTRACT §3.1); exit 2 = bad configuration.
        print(f"central-hub: {describe_error(exc, Settings)}", file=sys.stderr)
        sys.exit(2)
    configure_logging("central-hub", settings.log_level, settings.log_format)
    from leadmaster.central_hub.app import create_app

    serve(create_app(settings), settings.host, settings.port, settings.request_read_timeout)

if __name__ == "__main__":
    main()
