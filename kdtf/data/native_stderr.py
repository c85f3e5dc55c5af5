"""Keeps the JPEG decoder's own complaints about a corrupt file off the terminal.

libjpeg, inside TensorFlow's decoder, writes lines such as "Improper call to JPEG library
in state 201" or "Corrupt JPEG data: premature end of data segment" straight to file
descriptor 2, beside kdtf's own count of the images it skipped. While a pass decodes,
descriptor 2 goes to a temporary file; afterwards every line that is not such a decoder
line is written back, so no other message is lost.
"""

import contextlib
import os
import re
import sys
import tempfile

__all__ = ["DECODER_NOISE", "without_decoder_noise"]

DECODER_NOISE = re.compile(
    r"^(Improper call to JPEG library|Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters|"
    r"Not a JPEG file|Bogus marker length|Unsupported marker type|JPEG datastream contains no image)"
)


@contextlib.contextmanager
def without_decoder_noise():
    """Runs the block with the decoder's stderr lines dropped and every other line kept."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (an embedding host): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode("utf-8", "replace").splitlines(True) if not DECODER_NOISE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
