"""`python -m services.index [--config FILE] [--listen HOST:PORT ...]`; see `--help`.

Settings: flags > IMSEARCH_INDEX_* > the file's [index] table (--config or IMSEARCH_CONFIG).
"""

import sys

from imsearch.core.app import run_service
from services.index.app import start_index
from services.index.settings import IndexSettings

if __name__ == "__main__":
    run_service("index", IndexSettings, start_index, sys.argv[1:])
