#include "CGlobalExecutorHook.h"
#include <stddef.h>

// The Swift runtime's hook for jobs enqueued on the global executor (swift/Runtime/Concurrency.h): the
// runtime calls it, with the Swift calling convention, in place of its own enqueue when it is set. In a
// binary with the Swift runtime linked in statically it is not exported, so it is reached at link time.
typedef __attribute__((swiftcall)) void (*cwo_original_enqueue)(void *job);
extern __attribute__((swiftcall)) void (*swift_task_enqueueGlobal_hook)(void *job, cwo_original_enqueue original);

static cwo_job_sink redirected;

static __attribute__((swiftcall)) void cwo_enqueue(void *job, cwo_original_enqueue original) {
    (void)original;
    redirected(job);
}

int cwo_redirect_global_jobs(cwo_job_sink sink) {
    if (swift_task_enqueueGlobal_hook != NULL || sink == NULL) return 0;
    redirected = sink;
    __atomic_store_n(&swift_task_enqueueGlobal_hook, cwo_enqueue, __ATOMIC_SEQ_CST);
    return 1;
}
