"""Entry point of the encoder service: `python -m services.encoder` (settings from IMSEARCH_ENCODER_*)."""

from imsearch.common.runner import run_until_signal
from services.encoder.app import start_encoder
from services.encoder.settings import EncoderSettings


def main() -> None:
    app = start_encoder(EncoderSettings())
    run_until_signal(f"encoder listening on {app.address}", app.stop)


if __name__ == "__main__":
    main()
