"""A verdict line, then argv[1] MiB of output (or forever with 'forever'); exit 2."""
import sys

sys.stdout.write("HUGE CRITICAL - lots of output | lines=1\n")
chunk = ("x" * 1023 + "\n") * 1024
if sys.argv[1] == "forever":
    while True:
        sys.stdout.write(chunk)
for _ in range(int(sys.argv[1])):
    sys.stdout.write(chunk)
sys.exit(2)
