#!/bin/sh
# Prints a line, then never ends.
echo "HANG OK - about to hang"
exec sleep 100000
