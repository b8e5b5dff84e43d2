#ifndef CWO_GLOBAL_EXECUTOR_HOOK_H
#define CWO_GLOBAL_EXECUTOR_HOOK_H

/// Where the jobs of Swift's global executor go once redirected: called with each job (a `swift::Job *`).
typedef void (*cwo_job_sink)(void *job);

/// Sends every job enqueued on Swift's global concurrent executor to `sink` instead of the runtime's own
/// thread pool. Returns 0 (and changes nothing) if another hook is installed already.
int cwo_redirect_global_jobs(cwo_job_sink sink);

#endif
