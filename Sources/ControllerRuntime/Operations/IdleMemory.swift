#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc

/// `mallopt(3)` and `malloc_trim(3)`; malloc.h is not part of Swift's Glibc module.
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32
#endif

/// What a long-running process holds and does not use, handed back to the system: the heap freed after a
/// burst, which glibc keeps otherwise, and the pages of the process's own executable that only hold the
/// file's contents. The kernel maps code a folio and more at a time around each page fault, so a start
/// and a first burst leave most of a large binary mapped, of which a quiet process needs a fraction.
public enum IdleMemory {
    /// Limits glibc's malloc arenas (it gives every thread that contends for malloc one of its own, and
    /// keeps freed memory in each).
    public static func limitArenas(_ count: Int32) {
        #if canImport(Glibc)
        _ = glibcMallopt(-8 /* M_ARENA_MAX, malloc.h */, count)
        #endif
    }

    /// Returns the heap's free pages to the system (about a millisecond for cwo's heap).
    public static func trimHeap() {
        #if canImport(Glibc)
        _ = glibcMallocTrim(0)
        #endif
    }

    /// CPU time (user + system) of the whole process so far, in seconds.
    public static func processCPUSeconds() -> Double {
        #if canImport(Glibc)
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
        #else
        return 0
        #endif
    }

    /// Tells, from the process's CPU time sampled once a round, whether it is quiet: the last `rounds`
    /// rounds each used under `cpuPerRound` seconds.
    public struct QuietRounds: Sendable {
        public let rounds: Int
        public let cpuPerRound: Double
        private var quiet = 0
        private var lastCPU: Double?

        public init(rounds: Int, cpuPerRound: Double) {
            self.rounds = rounds
            self.cpuPerRound = cpuPerRound
        }

        /// Records the CPU seconds used so far; true while the process has been quiet long enough.
        public mutating func record(cpuSeconds: Double) -> Bool {
            defer { lastCPU = cpuSeconds }
            guard let lastCPU else { return false }
            quiet = cpuSeconds - lastCPU < cpuPerRound ? quiet + 1 : 0
            return quiet >= rounds
        }
    }

    /// When to page the executable out again, from the bytes of files the process maps, sampled once a
    /// round. A quiet process maps some code back right after (each fault maps the cached pages around it),
    /// its working set: measured the round after a page-out, it is the baseline. Code that comes back
    /// beyond it by more than `slack` (a burst ran, or a quiet task such as forgetting desired states
    /// touched code spread over the binary) is paged out again once the process is quiet.
    public struct PageOutSchedule: Sendable {
        public let slack: Int
        private var baseline = 0
        private var settling = false

        public init(slack: Int = 1 << 20) { self.slack = slack }

        /// True when the executable should be paged out now.
        public mutating func round(quiet: Bool, mappedFileBytes mapped: Int) -> Bool {
            guard quiet else {
                settling = false
                return false
            }
            if settling {
                baseline = mapped
                settling = false
                return false
            }
            guard mapped > baseline + slack else { return false }
            settling = true
            return true
        }
    }

    /// Bytes of files this process has in memory and mapped (its executable, the C libraries): the third
    /// field of /proc/self/statm, RssFile + RssShmem.
    public static func mappedFileBytes() -> Int {
        #if canImport(Glibc)
        guard let statm = readFile("/proc/self/statm") else { return 0 }
        let fields = statm.split(separator: UInt8(ascii: " "))
        guard fields.count > 2, let pages = Int(String(decoding: fields[2], as: UTF8.self)) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
        return 0
        #endif
    }

    /// Advises the kernel to page out every mapping of the executable (`madvise(MADV_PAGEOUT)`, Linux
    /// 5.4): clean file pages leave the process (and the page cache, where nothing else holds them), nothing
    /// is written anywhere, and what runs next is mapped again on first use. Pages written since they were
    /// mapped (relocations, globals) are anonymous memory, which the kernel keeps without swap; pages another
    /// process also maps are left alone.
    /// Returns the bytes advised; 0 where /proc is not mounted or the kernel refuses.
    @discardableResult
    public static func pageOutExecutable() -> Int {
        #if canImport(Glibc)
        let pageOut: Int32 = 21  // MADV_PAGEOUT; not every libc's headers name it
        var total = 0
        for range in executableRanges() {
            guard let start = UnsafeMutableRawPointer(bitPattern: range.lowerBound) else { continue }
            if madvise(start, range.count, pageOut) == 0 { total += range.count }
        }
        return total
        #else
        return 0
        #endif
    }

    /// The address ranges this process maps from its executable (/proc/self/exe), read from /proc/self/maps.
    public static func executableRanges() -> [Range<UInt>] {
        #if canImport(Glibc)
        guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
            let maps = readFile("/proc/self/maps")
        else { return [] }
        return maps.split(separator: UInt8(ascii: "\n")).compactMap { line in
            // start-end perms offset dev inode   path
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6,
                String(decoding: fields[5].drop(while: { $0 == UInt8(ascii: " ") }), as: UTF8.self) == executable
            else { return nil }
            let bounds = fields[0].split(separator: UInt8(ascii: "-"))
            guard bounds.count == 2,
                let start = UInt(String(decoding: bounds[0], as: UTF8.self), radix: 16),
                let end = UInt(String(decoding: bounds[1], as: UTF8.self), radix: 16), start < end
            else { return nil }
            return start..<end
        }
        #else
        return []
        #endif
    }

    /// A file read to its end (/proc reports a size of 0 for its files, which Foundation reads anyway).
    private static func readFile(_ path: String) -> Data? {
        try? Data(contentsOf: URL(fileURLWithPath: path))
    }
}
