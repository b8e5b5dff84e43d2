import ControllerRuntime
import Testing

import Foundation

@Suite struct IdleMemoryTests {
    @Test func quietMeansEnoughRoundsInARowUnderTheCPUBudget() {
        var quiet = IdleMemory.QuietRounds(rounds: 2, cpuPerRound: 0.15)
        var cpu = 10.0
        // CPU seconds used in each round, and whether the process counts as quiet after it.
        let rounds: [(used: Double, quiet: Bool)] = [
            (2.0, false),  // busy (a burst)
            (0.01, false),  // quiet, one round
            (0.01, true),  // two rounds
            (0.0, true),  // and on
            (0.3, false),  // busy again
            (0.1, false),
            (0.14, true),
        ]
        let first = quiet.record(cpuSeconds: cpu)
        #expect(first == false)  // the first sample only starts the count
        for (index, round) in rounds.enumerated() {
            cpu += round.used
            let answer = quiet.record(cpuSeconds: cpu)
            #expect(answer == round.quiet, "round \(index + 1)")
        }
    }

    @Test func theExecutableIsPagedOutWhenQuietAndAgainOnlyWhenMoreThanItsWorkingSetCameBack() {
        let mib = 1 << 20
        var schedule = IdleMemory.PageOutSchedule(slack: mib)
        // Each round: quiet or not, the MiB of files mapped, and whether to page out.
        let rounds: [(quiet: Bool, mapped: Int, pageOut: Bool)] = [
            (false, 18 * mib, false),  // starting, busy
            (true, 18 * mib, true),  // quiet: out
            (true, 11 * mib, false),  // mapped back at once: the working set
            (true, 11 * mib + mib / 2, false),  // within the slack
            (true, 13 * mib, true),  // a quiet task brought more back
            (true, 11 * mib, false),
            (false, 17 * mib, false),  // a burst: never while busy
            (false, 18 * mib, false),
            (true, 18 * mib, true),  // quiet again: out
            (false, 18 * mib, false),  // busy before it settled
            (true, 18 * mib, true),  // the last working set still counts
        ]
        for (index, round) in rounds.enumerated() {
            let answer = schedule.round(quiet: round.quiet, mappedFileBytes: round.mapped)
            #expect(answer == round.pageOut, "round \(index + 1)")
        }
    }

    #if os(Linux)
    @Test func pagingOutTheExecutableLeavesLessOfItResident() throws {
        let ranges = IdleMemory.executableRanges()
        try #require(!ranges.isEmpty, "no mapping of /proc/self/exe in /proc/self/maps")
        // This very code is mapped from the executable.
        let code: @convention(c) () -> Void = {}
        let address = unsafeBitCast(code, to: UInt.self)
        #expect(ranges.contains { $0.contains(address) })

        let before = residentKiB(of: ranges)
        let mappedBefore = IdleMemory.mappedFileBytes()
        #expect(before > 0)
        #expect(mappedBefore >= before * 1024)
        #expect(IdleMemory.pageOutExecutable() == ranges.reduce(0) { $0 + $1.count })
        // The tests running beside this one fault some pages back in; the ones no code needs stay out.
        let after = residentKiB(of: ranges)
        #expect(after < before, "resident: \(before) KiB before, \(after) KiB after")
        #expect(IdleMemory.mappedFileBytes() < mappedBefore)
    }

    /// The resident size of the mappings at these ranges, from /proc/self/smaps.
    func residentKiB(of ranges: [Range<UInt>]) -> Int {
        guard let smaps = try? String(contentsOfFile: "/proc/self/smaps", encoding: .utf8) else { return 0 }
        var total = 0
        var inside = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let first = fields.first, first.contains("-"), !first.hasSuffix(":") {
                let bounds = first.split(separator: "-")
                let start = bounds.first.flatMap { UInt($0, radix: 16) }
                inside = start.map { start in ranges.contains { $0.lowerBound == start } } ?? false
            } else if inside, fields.first == "Rss:", fields.count > 1 {
                total += Int(fields[1]) ?? 0
            }
        }
        return total
    }

    #endif
}
