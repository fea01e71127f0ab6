"""Prints binary junk (not text) and exits 0."""
import os
import sys

sys.stdout.buffer.write(bytes(range(256)) * 4 + os.urandom(512))
