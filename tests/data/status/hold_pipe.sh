#!/bin/sh
# Exits at once with a verdict, but leaves a child that keeps stdout open.
sleep 100000 &
echo "HOLD WARNING - parent done | kept=1"
exit 1
