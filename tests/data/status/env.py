"""A plugin that reports its environment's variable names (OK) and one variable's value."""
import os
import sys

print("ENV OK - " + " ".join(sorted(os.environ)))
print(os.environ.get(sys.argv[1], "<unset>") if len(sys.argv) > 1 else "")
