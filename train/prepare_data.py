"""Prepare a face-to-voice training dataset from talking-face videos: `ftv_train.data.cli` (also `ftv-prepare-data`)."""

from ftv_train.data.cli import main

if __name__ == "__main__":  # worker pools (forkserver/spawn) re-import this file
    raise SystemExit(main())
