#!/bin/sh
# Starts a grandchild that would outlive us, writes its pid to $1, then hangs.
sleep 100000 &
echo $! > "$1"
echo "CHILDREN OK - started"
exec sleep 100000
