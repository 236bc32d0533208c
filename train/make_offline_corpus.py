"""Build the offline face-to-voice corpus: `ftv_train.corpus.cli` (also `ftv-make-offline-corpus`)."""

from ftv_train.corpus.cli import main

raise SystemExit(main())
