"""Durable jobs and periodic tasks, kept in the catalogue database (CAIRN_JOB).

Work that must survive a restart or a crash runs here: the data service's archive, restore,
write and delete of two-level storage, restores for prepared downloads, purges of expired
sessions and preparedIds, and whatever later rooms declare. A room declares its work once
(:class:`Kind`, :class:`Periodic`) and the server registers it with the process's
:class:`Scheduler` where it is assembled (``cairn.startup``).

A job is requested with :meth:`Scheduler.enqueue` inside the transaction of the change that
causes it, so a rolled-back change requests nothing. Every process sharing the database
claims due jobs of the kinds it knows; a claim is exclusive, kept alive by heartbeats, and
recovered from a process that dies. A handler returns (done), returns :class:`Again` (run
again later, e.g. a lock was busy) or raises (a failure: retried with back-off until the
kind's attempts are spent, then FAILED with its error). Jobs carry a priority (lower runs
first), a "not before" time, an optional key (requests with one key are merged while they
wait and never run at once), progress and a cancel flag. ``cairn jobs list|show|retry|cancel``
shows and steers them.
"""

from cairn.jobs.kinds import JobContext, Kind, Periodic, backoff, keep_first
from cairn.jobs.model import Again, Cancelled, Failed, Job, Pending, State
from cairn.jobs.queue import JobQueue, Line, fold
from cairn.jobs.scheduler import Scheduler, process_name

__all__ = ["Again", "Cancelled", "Failed", "Job", "JobContext", "JobQueue", "Kind", "Line",
           "Pending", "Periodic", "Scheduler", "State", "backoff", "fold", "keep_first",
           "process_name"]
