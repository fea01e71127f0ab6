"""HTCondor for shiftbot: an isolated worker process per pool, a fake schedd for demos and tests.

Layout (nothing here imports ``htcondor2``/``classad2`` at module level except the modules that
only ever run inside the worker: :mod:`bot.condor.backend`, :mod:`bot.condor.demo`,
:mod:`bot.condor.ops`, :mod:`bot.condor.analyze` and :mod:`bot.condor.jobenv`):

- :mod:`bot.condor.service` -- :class:`CondorService`, what the ``condor`` handlers call.
- :mod:`bot.condor.worker` -- the spawned worker process and its asyncio client (deadlines,
  kill and respawn).
- :mod:`bot.condor.ops` -- the operations the worker runs (q, analyze, act, submit, ...);
  :mod:`bot.condor.analyze` approximates ``condor_q -better-analyze``;
  :mod:`bot.condor.submitdesc` splits multi-queue submit descriptions and restricts
  ``getenv``; :mod:`bot.condor.configcheck` is check-config for the pools (bot process).
- :mod:`bot.condor.backend` / :mod:`bot.condor.demo` -- a real pool (htcondor2) or the fake;
  :mod:`bot.condor.jobenv` models how condor_submit fills a job's ``Environment``.
- :mod:`bot.condor.constraints` -- validation and quoting of everything that becomes a constraint.
- :mod:`bot.condor.errors` -- plain, picklable errors with one-line messages.
- :mod:`bot.condor.holdcodes`, :mod:`bot.condor.states` -- tables shipped with the handler.
"""
