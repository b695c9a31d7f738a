"""Entry point of the index service: `python -m services.index` (settings from IMSEARCH_INDEX_*)."""

from imsearch.common.runner import run_until_signal
from services.index.app import start_index
from services.index.settings import IndexSettings


def main() -> None:
    app = start_index(IndexSettings())
    run_until_signal(f"index listening on {app.address}", app.stop)


if __name__ == "__main__":
    main()
