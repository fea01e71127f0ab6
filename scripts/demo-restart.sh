#!/bin/sh
# The demo's restart target (config/demo.yaml: restart gwcelery-demo component=worker):
# pretends to restart one GWCelery component. Harmless: it prints, sleeps a little and leaves
# the marker the demo's nagios check (scripts/demo-check-gwcelery) reads, so `status` recovers.
# shiftbot runs it without a shell, with a minimal environment (no bot secrets) and a timeout.
set -eu
component="${1:?usage: demo-restart.sh COMPONENT}"
echo "stopping gwcelery ${component} (demo: nothing is stopped)"
sleep 1
echo "starting gwcelery ${component} (demo: nothing is started)"
echo "environment the restart sees: $(env | cut -d= -f1 | sort | tr '\n' ' ')"
state="$(dirname "$0")/../var/demo-state"
mkdir -p "$state" && touch "$state/gwcelery.restarted"
echo "gwcelery ${component} restarted"
