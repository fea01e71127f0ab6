#!/bin/sh
# Prints the text in $2 and exits with $1.
printf '%s\n' "$2"
exit "$1"
