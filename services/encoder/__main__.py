"""`python -m services.encoder [--config FILE] [--listen HOST:PORT ...]`; see `--help`.

Settings: flags > IMSEARCH_ENCODER_* > the file's [encoder] table (--config or IMSEARCH_CONFIG).
"""

import sys

from imsearch.core.app import run_service
from services.encoder.app import start_encoder
from services.encoder.settings import EncoderSettings

if __name__ == "__main__":
    run_service("encoder", EncoderSettings, start_encoder, sys.argv[1:])
