#!/bin/sh
# Prints a line, then kills itself with the signal named in $1.
echo "DYING OK - about to die"
kill -s "$1" $$
sleep 5
