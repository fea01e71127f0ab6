"""Exits with a verdict but leaves a grandchild in a session of its own holding stdout open
(out of reach of the process-group kill). Its pid goes to the file named in argv[1]."""
import os
import sys
import time

pid = os.fork()
if pid == 0:
    os.setsid()
    with open(sys.argv[1], "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(100000)
    os._exit(0)
print("ESCAPED OK - parent done", flush=True)
time.sleep(0.2)
