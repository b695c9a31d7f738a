"""Entry point of the gateway: `python -m services.gateway` (settings from IMSEARCH_GATEWAY_*)."""

from imsearch.common.runner import run_until_signal
from services.gateway.app import start_gateway
from services.gateway.settings import GatewaySettings


def main() -> None:
    app = start_gateway(GatewaySettings())
    run_until_signal(f"gateway listening on {app.address}", app.stop)


if __name__ == "__main__":
    main()
