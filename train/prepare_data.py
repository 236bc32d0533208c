"""Prepare a face-to-voice training dataset from talking-face videos: `ftv_train.data.cli` (also `ftv-prepare-data`)."""

from ftv_train.data.cli import main

raise SystemExit(main())
