"""`python -m services.gateway [--config FILE] [--listen HOST:PORT ...]`; see `--help`.

Settings: flags > IMSEARCH_GATEWAY_* > the file's [gateway] table (--config or IMSEARCH_CONFIG).
"""

import sys

from imsearch.core.app import run_service
from services.gateway.app import start_gateway
from services.gateway.settings import GatewaySettings

if __name__ == "__main__":
    run_service("gateway", GatewaySettings, start_gateway, sys.argv[1:])
