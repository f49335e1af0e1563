"""``python -m dicom_sync_dagster.configure``: the subcommand on its own."""

import sys

from . import main

sys.exit(main())
