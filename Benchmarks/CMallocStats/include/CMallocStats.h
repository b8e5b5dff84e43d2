#ifndef CMALLOCSTATS_H
#define CMALLOCSTATS_H
#include <stddef.h>

/// Bytes the C heap has handed out and not taken back (glibc's mallinfo2: allocated chunks, mmapped
/// ones included), for the benchmark's measurements of what cached data costs.
size_t cwo_heap_in_use(void);

#endif
