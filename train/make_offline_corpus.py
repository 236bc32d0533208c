"""Build the offline face-to-voice corpus: `ftv_train.corpus.cli` (also `ftv-make-offline-corpus`)."""

from ftv_train.corpus.cli import main

if __name__ == "__main__":  # worker pools (forkserver/spawn) re-import this file
    raise SystemExit(main())
